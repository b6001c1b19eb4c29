"""The configuration file: strict pydantic models (an unknown key is an error), load_config(),
and error messages that name the file, the key path, the line and what was expected.

Secrets never live in the file; they come from the environment (see secrets_from_env()).
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from costbot.config.base import Strict
from costbot.config.clouds import (
    AwsAccount,
    AwsConfig,
    AwsOrganization,
    AzureConfig,
    GcpConfig,
    GcpEndpoints,
    ProvidersConfig,
    known_aws_regions,
)
from costbot.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/costbot.yaml")
CONFIG_ENV = "COSTBOT_CONFIG"
SECRET_ENV = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")


__all__ = [
    "AwsAccount",
    "AwsConfig",
    "AwsOrganization",
    "AzureConfig",
    "GcpConfig",
    "GcpEndpoints",
    "ProvidersConfig",
    "Strict",
    "known_aws_regions",
]


Days = Annotated[float, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100)]


class IdleVolumeRule(Strict):
    """Thresholds for idle volumes/disks."""

    min_unattached_days: Days = 7
    min_stopped_days: Days = 30
    include_kubernetes: bool = False


class UnattachedIpRule(Strict):
    """Thresholds for reserved but unused public IPs."""

    min_unattached_days: Days = 1


class OversizedInstanceRule(Strict):
    """Thresholds for oversized instances (CPU over a look-back window)."""

    lookback_days: Annotated[int, Field(ge=1, le=63)] = 14
    max_avg_cpu_percent: Percent = 10
    max_peak_cpu_percent: Percent = 40
    peak_percentile: Annotated[float, Field(ge=50, le=100)] = 100
    target_peak_percent: Percent = 80
    target_avg_percent: Percent = 40
    min_coverage_percent: Percent = 80


class Rules(Strict):
    """The waste rules and their thresholds."""

    idle_volume: IdleVolumeRule = IdleVolumeRule()
    unattached_ip: UnattachedIpRule = UnattachedIpRule()
    oversized_instance: OversizedInstanceRule = OversizedInstanceRule()


class ExcludedResource(Strict):
    """One resource never to be reported, until a date, for a stated reason."""

    id: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)]
    until: date | None = None


class Exclusions(Strict):
    """What is never a finding."""

    skip_tag: Annotated[str, Field(min_length=1)] = "costbot:skip"
    keep_until_tag: Annotated[str, Field(min_length=1)] = "costbot:keep-until"
    resources: list[ExcludedResource] = []


class StoreConfig(Strict):
    """Where findings and their history live."""

    path: Path = Path("costbot.db")


class PricingConfig(Strict):
    """Where prices come from."""

    source: Literal["live", "bundled"] = "live"
    cache_days: Annotated[int, Field(ge=0)] = 7


class ScanConfig(Strict):
    """How scans fan out."""

    concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    rate_limits: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9-]+$")], Annotated[float, Field(gt=0)]
    ] = {"ec2": 50, "cloudwatch": 20, "sts": 10}


_WINDOW = re.compile(
    r"^(?P<days>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:-(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun))?"
    r"(?:,(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:-(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun))?)*) "
    r"(?P<start>\d{2}:\d{2})-(?P<end>\d{2}:\d{2}) UTC$"
)


def _window(value: str | None) -> str | None:
    match = _WINDOW.match(value) if value is not None else None
    if match is not None:
        try:
            time.fromisoformat(match["start"]), time.fromisoformat(match["end"])
        except ValueError:
            match = None
    if value is not None and match is None:
        raise ValueError(
            "expected a window like 'Sat 02:00-06:00 UTC' or 'Mon-Fri 22:00-02:00 UTC', "
            f"got {value!r}"
        )
    return value


class CleanupConfig(Strict):
    """What the cleaners may do, and the rails around it."""

    execute: bool = False
    snapshot_before_delete: bool = True
    max_per_run: Annotated[int, Field(ge=0)] = 20
    approval_ttl_hours: Annotated[float, Field(gt=0)] = 72
    allow_resize: bool = False
    maintenance_window: Annotated[str | None, AfterValidator(_window)] = None
    cli_approvers: list[Annotated[str, Field(min_length=1)]] = []
    snapshot_timeout_minutes: Annotated[float, Field(gt=0)] = 60
    min_inventory_ratio: Annotated[float, Field(ge=0, le=1)] = 0.5


class SlackConfig(Strict):
    """Where summaries go and who may decide in Slack (tokens come only from the environment)."""

    channel: Annotated[str, Field(min_length=1)]
    approvers: list[Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]] = []
    approver_groups: list[Annotated[str, Field(pattern=r"^S[A-Z0-9]{2,}$")]] = []
    mode: Literal["socket", "http"] = "socket"
    api_base_url: Annotated[str, Field(pattern=r"^https?://")] = "https://slack.com/api/"


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"expected an IANA time zone like 'UTC' or 'Europe/Berlin', got {value!r}"
        ) from None
    return value


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(expression: str, timezone: str) -> Any:
    """An APScheduler CronTrigger that reads the day-of-week field as crontab does (0/7 = Sunday).

    APScheduler 3 counts weekdays from Monday = 0; numbers are turned into names first."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 5:
        fields[4] = re.sub(
            r"(?<![/\d])\d+",
            lambda m: _DOW_NAMES[int(m.group())] if int(m.group()) <= 7 else m.group(),
            fields[4],
        )
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


class ScheduleConfig(Strict):
    """When `costbot serve` runs each job (cron syntax; null disables the job)."""

    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    scan: str | None = "0 6 * * *"
    notify: str | None = "30 6 * * *"
    cleanup: str | None = "*/15 * * * *"
    digest: str | None = "0 9 * * MON"
    misfire_grace_seconds: Annotated[int, Field(ge=1)] = 3600

    @field_validator("scan", "notify", "cleanup", "digest")
    @classmethod
    def _valid_cron(cls, expression: str | None, info: ValidationInfo) -> str | None:
        if expression is None:
            return None
        try:
            cron_trigger(expression, info.data.get("timezone", "UTC"))
        except ValueError as exc:
            raise ValueError(
                f"expected a 5-field cron expression like '0 6 * * *', got {expression!r} ({exc})"
            ) from None
        return expression


class DigestConfig(Strict):
    """The weekly cost digest."""

    channel: str | None = None
    """Slack channel for the digest; null = slack.channel."""
    metric: Literal[
        "UnblendedCost", "AmortizedCost", "NetUnblendedCost", "NetAmortizedCost", "BlendedCost"
    ] = "UnblendedCost"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    rates: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Annotated[float, Field(gt=0)]] = {}
    """Conversion into `currency` (1 unit of the key = rate units of `currency`)."""
    timezone: Annotated[str, AfterValidator(_timezone)] = "UTC"
    settle_days: Annotated[int, Field(ge=0, le=31)] = 3
    """Days this recent are re-queried; older cached days are final."""


class ServeConfig(Strict):
    """The long-running service (`costbot serve`)."""

    listen: Annotated[str, Field(pattern=r"^[^:]*:\d{1,5}$")] = "0.0.0.0:8080"
    """Health (/healthz, /readyz), Prometheus /metrics, and /slack/events in Slack HTTP mode."""


class Config(Strict):
    """The whole costbot configuration."""

    providers: ProvidersConfig = ProvidersConfig()
    rules: Rules = Rules()
    exclusions: Exclusions = Exclusions()
    store: StoreConfig = StoreConfig()
    pricing: PricingConfig = PricingConfig()
    scan: ScanConfig = ScanConfig()
    cleanup: CleanupConfig = CleanupConfig()
    slack: SlackConfig | None = None
    schedule: ScheduleConfig = ScheduleConfig()
    digest: DigestConfig = DigestConfig()
    serve: ServeConfig = ServeConfig()


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file to use: --config, else $COSTBOT_CONFIG, else config/costbot.yaml."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config file; every mistake is a ConfigError naming file and key."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found (pass --config FILE or set {CONFIG_ENV}; "
            "config/costbot.example.yaml documents every key)",
            path=where,
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", path=where) from exc
    return parse_config(text, where)


def parse_config(text: str, where: str = "<config>") -> Config:
    """Validate YAML text as a Config."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{line}not valid YAML: {problem}", path=where) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of sections at the top level", path=where)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: -len(e["loc"]))
        first = errors[0]
        loc = tuple(first["loc"])
        key = _key_path(loc)
        line_no = _line_of(node, loc)
        message = _explain(first, loc)
        prefix = f"line {line_no}: " if line_no else ""
        others = {_key_path(tuple(e["loc"])) for e in errors[1:]}
        more = len({k for k in others if not key.startswith(k)})
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{prefix}{message}{suffix}", path=where, key=key) from None


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif _is_type_tag(str(item)):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _is_type_tag(item: str) -> bool:
    """Pydantic puts union member names (e.g. 'list[str]') in error locations; they are not keys."""
    return "[" in item or item in {"str", "int", "float", "bool", "literal['all']"}


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node on the error's key path."""
    line = None
    for item in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == item), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(item, int):
            node = node.value[item] if item < len(node.value) else None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _explain(error: Any, loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"unknown key '{loc[-1]}'{hint}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return "this key is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("expected"):
        return message
    for prefix, replacement in _PYDANTIC_PHRASES:
        if message.startswith(prefix):
            message = replacement + message.removeprefix(prefix)
            break
    if message.startswith(("greater", "less")):
        message = "a number " + message
    message = re.sub(r"a valid dictionary or instance of \w+", "a mapping of keys", message)
    return f"expected {message}; got {given!r}"


_PYDANTIC_PHRASES = (
    ("Input should be ", ""),
    ("String should match pattern ", "a string matching "),
    ("String should have at least ", "a string of at least "),
    ("List should have at least ", "a list of at least "),
)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Config
    for item in loc:
        if isinstance(item, int) or _is_type_tag(str(item)):
            continue
        field = model.model_fields.get(item) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


_SECRET_KEY = re.compile(r"token|secret|password|credential|private_key", re.IGNORECASE)


def masked(data: Any) -> Any:
    """A copy of a config dump with every secret-looking value replaced by '***'."""
    if isinstance(data, dict):
        return {
            k: ("***" if _SECRET_KEY.search(str(k)) and v else masked(v)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [masked(v) for v in data]
    return data


def secrets_from_env() -> dict[str, bool]:
    """Which secrets the environment provides (values are never returned)."""
    return {name: bool(os.environ.get(name)) for name in SECRET_ENV}
