"""Config: the example validates, documents every field, and mistakes name file, key and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from costbot.config import Config, config_path, load_config, masked, parse_config
from costbot.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "costbot.example.yaml"


def _field_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.add(path)
        for candidate in _models_in(field.annotation):
            paths |= _field_paths(candidate, f"{path}.")
    return paths


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _keys_in_example(text: str) -> set[str]:
    """Every key path in the example, including keys shown only in commented-out blocks."""
    uncommented = re.sub(r"^(\s*)# ?(\s*(?:- )?\w+:)", r"\1\2", text, flags=re.MULTILINE)
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in uncommented.splitlines():
        match = re.match(r"^(\s*)(?:- )?([a-z_]+):", line)
        if not match:
            continue
        indent = len(match.group(1)) + (2 if "- " in line[: len(match.group(0))] else 0)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([p for _, p in stack] + [match.group(2)])
        paths.add(path)
        stack.append((indent, match.group(2)))
    return paths


def test_example_config_validates() -> None:
    config = load_config(EXAMPLE)
    assert config.providers.aws is not None
    assert config.rules.idle_volume.min_unattached_days == 7


def test_example_documents_every_config_field() -> None:
    fields = _field_paths(Config)
    documented = _keys_in_example(EXAMPLE.read_text())
    missing = {f for f in fields if f not in documented}
    assert not missing, f"config/costbot.example.yaml lacks: {sorted(missing)}"


def test_example_values_equal_the_model_defaults_where_shown() -> None:
    example = yaml.safe_load(EXAMPLE.read_text())
    defaults = Config().model_dump(mode="json")
    for section in ("rules", "exclusions", "pricing", "scan"):
        assert example[section] == defaults[section], section


def test_empty_file_is_all_defaults() -> None:
    assert parse_config("", "x.yaml") == Config()


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("providers:\n  aws:\n    regoins: [us-east-1]\n", "providers.aws.regoins", "regions"),
        (
            "rules:\n  idle_volume:\n    min_unattached_dayz: 3\n",
            "rules.idle_volume.min_unattached_dayz",
            "min_unattached_days",
        ),
        ("exclusion:\n  skip_tag: x\n", "exclusion", "exclusions"),
    ],
)
def test_unknown_key_is_rejected_with_its_path_and_a_suggestion(
    text: str, key: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "conf.yaml")
    message = str(caught.value)
    assert message.startswith(f"conf.yaml: {key}: line ")
    assert f"did you mean '{expected}'" in message
    assert "\n" not in message


def test_bad_region_names_the_list_index_and_line() -> None:
    text = "providers:\n  aws:\n    regions:\n      - us-east-1\n      - us-est-1\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    assert str(caught.value).startswith("c.yaml: providers.aws.regions[1]: line 5: ")
    assert "us-est-1" in str(caught.value)


def test_regions_all_is_accepted() -> None:
    config = parse_config("providers:\n  aws:\n    regions: all\n")
    assert config.providers.aws is not None
    assert config.providers.aws.regions == "all"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "rules:\n  idle_volume:\n    min_unattached_days: -1\n",
            "rules.idle_volume.min_unattached_days",
        ),
        (
            "rules:\n  oversized_instance:\n    lookback_days: two weeks\n",
            "rules.oversized_instance.lookback_days",
        ),
        (
            "rules:\n  oversized_instance:\n    peak_percentile: 101\n",
            "rules.oversized_instance.peak_percentile",
        ),
        (
            "providers:\n  aws:\n    accounts:\n"
            "      - {id: '12', role_arn: 'arn:aws:iam::123456789012:role/x'}\n",
            "providers.aws.accounts[0].id",
        ),
        ("store: [1]\n", "store"),
        ("scan:\n  concurrency: 0\n", "scan.concurrency"),
    ],
)
def test_wrong_values_name_the_key_and_what_was_expected(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    assert str(caught.value).startswith(f"c.yaml: {key}: line ")
    assert "expected" in str(caught.value)


def test_zero_days_is_a_valid_threshold() -> None:
    config = parse_config("rules:\n  idle_volume: {min_unattached_days: 0}\n")
    assert config.rules.idle_volume.min_unattached_days == 0


def test_invalid_yaml_names_the_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^bad.yaml: line \d+: not valid YAML"):
        parse_config("providers:\n  aws: [\n", "bad.yaml")


def test_missing_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found.*--config"):
        load_config(tmp_path / "nope.yaml")


def test_config_path_prefers_flag_then_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSTBOT_CONFIG", "/etc/costbot.yaml")
    assert config_path("given.yaml") == Path("given.yaml")
    assert config_path(None) == Path("/etc/costbot.yaml")
    monkeypatch.delenv("COSTBOT_CONFIG")
    assert config_path(None) == Path("config/costbot.yaml")


def test_masking_hides_secret_looking_values_only() -> None:
    data = {"slack": {"bot_token": "xoxb-1", "channel": "#c"}, "list": [{"password": "p"}]}
    assert masked(data) == {
        "slack": {"bot_token": "***", "channel": "#c"},
        "list": [{"password": "***"}],
    }


def test_a_maintenance_window_the_engine_cannot_read_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"cleanup\.maintenance_window"):
        parse_config("cleanup:\n  maintenance_window: 'Mon-Wed-Fri 02:00-04:00 UTC'\n")
    config = parse_config("cleanup:\n  maintenance_window: 'Mon-Wed,Fri 02:00-04:00 UTC'\n")
    assert config.cleanup.maintenance_window == "Mon-Wed,Fri 02:00-04:00 UTC"
