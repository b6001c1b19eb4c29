"""Slack fixtures: the fake Web API server, a config pointing at it, and a real WebClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from costbot.config import SlackConfig
from costbot.slack.notify import web_client
from tests.slack.fake_slack import FakeSlack

TOKEN = "xoxb-test"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A fake Slack Web API on 127.0.0.1, stopped after the test."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_config(fake_slack: FakeSlack) -> SlackConfig:
    """Posts to #costs through the fake."""
    return SlackConfig(channel="#costs", api_base_url=fake_slack.url)


@pytest.fixture
def client(slack_config: SlackConfig) -> WebClient:
    """costbot's own WebClient factory (with its retry handlers), aimed at the fake."""
    return web_client(slack_config, token=TOKEN)
