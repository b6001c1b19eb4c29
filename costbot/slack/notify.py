"""Posting to Slack: the summary of new findings (dry-run verdicts included) as a root message
with threaded follow-ups, and cleanup outcomes as thread replies with the message updated."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from costbot.cleanup import Cleaners, CleanupLine, CleanupReport, Stage, dry_run_findings
from costbot.config import SlackConfig
from costbot.errors import ConfigError, SlackError
from costbot.model import Status
from costbot.slack.blocks import Actionable, Decider, escape, message_blocks, summary_messages
from costbot.store import Store, StoredFinding, utcnow

log = logging.getLogger(__name__)
ACTOR = "costbot:notify"
OUTCOME_STAGES = frozenset({Stage.CLEANED, Stage.FAILED, Stage.RESOLVED, Stage.EXPIRED})


def web_client(config: SlackConfig, token: str | None = None) -> WebClient:
    """A WebClient for the bot token in SLACK_BOT_TOKEN, retrying rate limits and resets."""
    token = token or os.environ.get("SLACK_BOT_TOKEN")
    if not token:
        raise ConfigError("SLACK_BOT_TOKEN is not set in the environment", key="slack")
    base = config.api_base_url if config.api_base_url.endswith("/") else config.api_base_url + "/"
    return WebClient(
        token=token,
        base_url=base,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(),
        ],
    )


def slack_call(what: str, call: Any, **kwargs: Any) -> Any:
    """Call the Web API; Slack's refusals and network failures become SlackError."""
    try:
        return call(**kwargs)
    except SlackApiError as exc:
        raise SlackError(f"Slack refused {what}: {exc.response.get('error', exc)}") from exc
    except (SlackClientError, OSError) as exc:
        raise SlackError(f"could not reach Slack for {what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class NotifyReport:
    """What `costbot notify` posted."""

    findings: int
    messages: int
    error: str | None = None


def notify(
    config: SlackConfig,
    store: Store,
    client: WebClient,
    cleaners: Cleaners,
    *,
    now: datetime | None = None,
) -> NotifyReport:
    """Dry-run and post every finding not yet posted; unposted findings stay open for next time."""
    moment = now or utcnow()
    pending = store.findings_to_notify()
    if not pending:
        return NotifyReport(0, 0)
    dry_run_findings(store, cleaners, pending, moment)
    findings = [store.get(f.id) for f in pending]
    messages = summary_messages(findings, actionable=set(cleaners), now=moment)
    root_ts: str | None = None
    posted = 0
    for n, message in enumerate(messages):
        try:
            answer = slack_call(
                "chat.postMessage",
                client.chat_postMessage,
                channel=config.channel,
                blocks=message.blocks,
                text=message.text,
                thread_ts=root_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackError as exc:
            return NotifyReport(
                posted,
                n,
                f"{exc} (channel {config.channel}); "
                f"{len(findings) - posted} findings stay unposted",
            )
        channel, ts = str(answer["channel"]), str(answer["ts"])
        root_ts = root_ts or ts
        for finding_id in message.finding_ids:
            store.mark_notified(
                finding_id, channel=channel, ts=ts, thread_ts=root_ts, actor=ACTOR, now=moment
            )
        posted += len(message.finding_ids)
    return NotifyReport(posted, len(messages))


def refresh_message(
    store: Store, client: WebClient, channel: str, ts: str, actionable: Actionable
) -> None:
    """Rebuild a posted message from the store and update it in place."""
    shown = store.findings_in_message(ts)
    if not shown:
        return
    is_root = shown[0].slack_thread_ts == ts
    thread = store.findings_in_thread(ts) if is_root else None
    deciders = deciders_of(store, shown)
    blocks = message_blocks(
        shown, thread=thread, actionable=actionable, now=utcnow(), deciders=deciders
    )
    slack_call(
        "chat.update",
        client.chat_update,
        channel=channel,
        ts=ts,
        blocks=blocks,
        text=f"costbot findings ({len(shown)})",
    )


def deciders_of(store: Store, findings: Sequence[StoredFinding]) -> dict[str, Decider]:
    """Who moved each finding into its current status, and when (one store query)."""
    last = store.last_moves([f.id for f in findings])
    return {
        f.id: Decider(e.actor, e.at)
        for f in findings
        if (e := last.get(f.id)) is not None and e.to_status == f.status
    }


def last_decider(store: Store, finding_id: str, status: Status) -> Decider | None:
    """Who moved one finding into `status`, if that is its latest move."""
    event = store.last_moves([finding_id]).get(finding_id)
    return Decider(event.actor, event.at) if event and event.to_status == status else None


def post_outcomes(
    store: Store,
    client: WebClient,
    report: CleanupReport | Sequence[CleanupLine],
    actionable: Actionable,
) -> None:
    """Reply in each finding's thread with its cleanup outcome and update its message."""
    lines = report.lines if isinstance(report, CleanupReport) else report
    for line in lines:
        if line.stage not in OUTCOME_STAGES:
            continue
        finding = store.get(line.finding_id)
        if not (finding.slack_channel and finding.slack_ts):
            continue
        icon = {Stage.CLEANED: "🧹", Stage.FAILED: "❌"}.get(line.stage, "📝")
        slack_call(
            "chat.postMessage",
            client.chat_postMessage,
            channel=finding.slack_channel,
            thread_ts=finding.slack_thread_ts or finding.slack_ts,
            text=f"{icon} `{escape(finding.resource_id)}`: {line.stage} — {escape(line.text)}",
        )
        refresh_message(store, client, finding.slack_channel, finding.slack_ts, actionable)
