"""Shared fixtures: an offline AWS environment, moto's in-process AWS, a fresh store, configs."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from costbot.config import Config, parse_config
from costbot.store import Store

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}


@pytest.fixture(autouse=True)
def offline_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach real AWS or read the developer's credentials."""
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_PRICING", "COSTBOT_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def aws() -> Iterator[None]:
    """moto's in-process AWS for the duration of the test."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty findings store in a temporary directory."""
    return Store(tmp_path / "costbot.db")


def make_config(yaml_text: str = "") -> Config:
    """A Config from YAML text (dedented); pricing defaults to the bundled table in tests."""
    text = textwrap.dedent(yaml_text)
    if "pricing:" not in text:
        text += "\npricing:\n  source: bundled\n"
    return parse_config(text, "<test>")
