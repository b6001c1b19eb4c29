"""The weekly cost digest: spend from the billing APIs (through the daily cache), the store's
waste and savings, computed with pandas, rendered as text, JSON, Markdown, Block Kit and a chart,
and posted to Slack."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from costbot.config import Config
from costbot.costs import CostSource, collect_costs
from costbot.digest.chart import render_chart
from costbot.digest.compute import (
    ANOMALY_HISTORY_DAYS,
    Digest,
    compute_digest,
    frame,
    last_complete_week,
    normal_week,
    week_bounds,
)
from costbot.digest.render import digest_blocks
from costbot.errors import ConfigError
from costbot.store import Store


def build_digest(
    config: Config,
    store: Store,
    sources: Sequence[CostSource],
    unavailable: dict[str, str],
    *,
    now: datetime,
    week: str | None = None,
) -> Digest:
    """The digest of `week` (default: the last complete ISO week in digest.timezone)."""
    today = now.astimezone(ZoneInfo(config.digest.timezone)).date()
    try:
        week = normal_week(week) if week else last_complete_week(today)
        start, end = week_bounds(week)
    except ValueError:
        raise ConfigError(f"expected a week like 2026-W46, got {week!r}", key="--week") from None
    history = start - timedelta(days=ANOMALY_HISTORY_DAYS)
    costs = collect_costs(
        store, sources, history, min(end, today), now=now, settle_days=config.digest.settle_days
    )
    return compute_digest(
        frame(costs.columns),
        store.findings(status=None),
        store.cleaned_times(),
        week=week,
        currency=config.digest.currency,
        rates=config.digest.rates,
        missing={**unavailable, **costs.missing},
        freshness=costs.fetched_at,
        now=now,
    )


def post_digest(config: Config, client: Any, digest: Digest, chart: Path | None) -> str:
    """Post the digest (and its chart, threaded) to Slack; returns the message ts."""
    from costbot.slack.notify import slack_call

    if config.slack is None:
        raise ConfigError("posting the digest needs a slack section", key="slack")
    channel = config.digest.channel or config.slack.channel
    answer = slack_call(
        "chat.postMessage",
        client.chat_postMessage,
        channel=channel,
        blocks=digest_blocks(digest),
        text=f"Weekly cloud costs {digest.week}",
    )
    with tempfile.TemporaryDirectory(prefix="costbot-digest-") as scratch:
        path = chart or render_chart(digest, Path(scratch) / f"costbot-{digest.week}.png")
        slack_call(
            "files.upload",
            client.files_upload_v2,
            channel=answer["channel"],
            thread_ts=answer["ts"],
            file=str(path),
            filename=path.name,
            title=f"Daily spend, 4 weeks to {digest.end - timedelta(days=1)}",
        )
    return str(answer["ts"])
