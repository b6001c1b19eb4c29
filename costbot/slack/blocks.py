"""Block Kit builders, as plain data: the summary post (split to respect Slack's limits),
one section per finding with its buttons, and the decided/cleaned states shown in place."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costbot.model import Kind, Provider, Status, short_id
from costbot.store import StoredFinding

ACTION_APPROVE = "costbot_approve"
ACTION_REJECT = "costbot_reject"
ACTION_SNOOZE = "costbot_snooze"
SNOOZE_DAYS = 7
MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
BLOCKS_PER_FINDING = 2
KIND_NAMES = {
    Kind.IDLE_VOLUME: "Idle volume",
    Kind.UNATTACHED_IP: "Unused public IP",
    Kind.OVERSIZED_INSTANCE: "Oversized instance",
}
BUTTON_STATUSES = frozenset({Status.OPEN, Status.NOTIFIED, Status.FAILED})
SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")

Block = dict[str, Any]
Actionable = Collection[tuple[Provider, Kind]]


@dataclass(frozen=True, slots=True)
class Decider:
    """Who last moved a finding, and when (for the in-place 'decided' line)."""

    actor: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    """One Slack message: its blocks, fallback text, and the findings it shows."""

    blocks: list[Block]
    text: str
    finding_ids: tuple[str, ...]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _who(actor: str) -> str:
    return f"<@{actor}>" if SLACK_USER.match(actor) else escape(actor)


def _usd(amount: float) -> str:
    return f"${amount:,.2f}"


def _block_id(finding_id: str, part: str) -> str:
    return f"{part}:{hashlib.sha1(finding_id.encode()).hexdigest()[:20]}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def header_blocks(findings: Sequence[StoredFinding]) -> list[Block]:
    """Header with totals by kind and provider."""
    total = sum(f.monthly_savings_usd for f in findings)
    kinds = Counter(KIND_NAMES.get(f.kind, str(f.kind)) for f in findings)
    providers = Counter(f.provider.upper() for f in findings)
    noun = "finding" if len(findings) == 1 else "findings"
    title = f"costbot: {len(findings)} {noun}, {_usd(total)}/month to save"
    return [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, MAX_HEADER_CHARS)}},
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": "*By kind*\n"
                    + "\n".join(f"{name}: {n}" for name, n in kinds.most_common()),
                },
                {
                    "type": "mrkdwn",
                    "text": "*By provider*\n"
                    + "\n".join(f"{name}: {n}" for name, n in providers.most_common()),
                },
            ],
        },
        {"type": "divider"},
    ]


def finding_blocks(
    finding: StoredFinding,
    *,
    actionable: Actionable,
    now: datetime,
    decider: Decider | None = None,
) -> list[Block]:
    """The finding's section, then its buttons (or a context line saying what was decided)."""
    short = short_id(finding.resource_id)
    name = f" _{escape(finding.name)}_" if finding.name and finding.name != short else ""
    age = max(0, (now - finding.first_seen).days)
    kind = KIND_NAMES.get(finding.kind, str(finding.kind))
    cost, saves = _usd(finding.monthly_cost_usd), _usd(finding.monthly_savings_usd)
    lines = [
        f"*{kind}* · `{escape(short)}`{name}",
        f"{finding.provider} · {escape(finding.account)} · {escape(finding.region)}",
        escape(finding.reason),
        f"→ {escape(finding.recommendation)}",
        f"Costs {cost}/mo · saves *{saves}/mo* · "
        + (f"found {age} day{'s' if age != 1 else ''} ago" if age else "new today"),
    ]
    opinion = finding.details.get("second_opinion")
    if isinstance(opinion, dict) and opinion.get("summary"):
        lines.append(f"Google Recommender: {escape(str(opinion['summary']))}")
    if finding.dry_run_verdict:
        mark = "✅" if finding.dry_run_ok else "⚠️"
        lines.append(f"Dry run: {mark} {escape(finding.dry_run_verdict)}")
    section: Block = {
        "type": "section",
        "block_id": _block_id(finding.id, "f"),
        "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), MAX_SECTION_CHARS)},
    }
    if finding.status in BUTTON_STATUSES:
        return [section, _buttons(finding, actionable)]
    return [section, _decided(finding, decider)]


def _buttons(finding: StoredFinding, actionable: Actionable) -> Block:
    elements: list[Block] = []
    if (Provider(finding.provider), finding.kind) in actionable:
        elements.append(
            {
                "type": "button",
                "action_id": ACTION_APPROVE,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": finding.id,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Approve cleanup?"},
                    "text": {
                        "type": "mrkdwn",
                        "text": _clip(
                            f"costbot will {escape(finding.recommendation)} for "
                            f"`{escape(short_id(finding.resource_id))}` after a fresh dry run.",
                            300,
                        ),
                    },
                    "confirm": {"type": "plain_text", "text": "Approve"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            }
        )
    elements.append(
        {
            "type": "button",
            "action_id": ACTION_REJECT,
            "style": "danger",
            "text": {"type": "plain_text", "text": "Reject"},
            "value": finding.id,
        }
    )
    elements.append(
        {
            "type": "button",
            "action_id": ACTION_SNOOZE,
            "text": {"type": "plain_text", "text": f"Snooze {SNOOZE_DAYS}d"},
            "value": finding.id,
        }
    )
    return {"type": "actions", "block_id": _block_id(finding.id, "a"), "elements": elements}


def _decided(finding: StoredFinding, decider: Decider | None) -> Block:
    who = f" by {_who(decider.actor)}" if decider else ""
    when = f" on {decider.at:%Y-%m-%d %H:%M} UTC" if decider else ""
    outcome = escape(finding.outcome or "")
    text = {
        Status.APPROVED: f"✅ Approved{who}{when} — cleanup queued (dry run again first)",
        Status.REJECTED: f"🚫 Rejected{who}{when}",
        Status.SNOOZED: f"😴 Snoozed{who}{when}"
        + (f" until {finding.snoozed_until:%Y-%m-%d}" if finding.snoozed_until else ""),
        Status.CLEANED: f"🧹 Cleaned — {outcome}"
        + (f" (approved by {_who(finding.approved_by)})" if finding.approved_by else ""),
        Status.RESOLVED: "✔️ Resolved: no longer wasteful",
    }.get(finding.status, f"{finding.status}{who}{when}")
    return {
        "type": "context",
        "block_id": _block_id(finding.id, "a"),
        "elements": [{"type": "mrkdwn", "text": _clip(text, MAX_SECTION_CHARS)}],
    }


def summary_messages(
    findings: Sequence[StoredFinding],
    *,
    actionable: Actionable,
    now: datetime,
) -> list[Message]:
    """The whole post: a root message with the header, then threaded follow-ups; every finding
    appears with its buttons and no message exceeds Slack's 50 blocks."""
    messages: list[Message] = []
    header = header_blocks(findings)
    first_room = (MAX_BLOCKS - len(header)) // BLOCKS_PER_FINDING
    rest_room = MAX_BLOCKS // BLOCKS_PER_FINDING
    chunks = [list(findings[:first_room])]
    chunks += [
        list(findings[i : i + rest_room]) for i in range(first_room, len(findings), rest_room)
    ]
    total = len(chunks)
    for n, chunk in enumerate(chunks):
        blocks = list(header) if n == 0 else []
        for finding in chunk:
            blocks += finding_blocks(finding, actionable=actionable, now=now)
        savings = sum(f.monthly_savings_usd for f in findings)
        text = (
            f"costbot found {len(findings)} findings ({_usd(savings)}/month to save)"
            if n == 0
            else f"costbot findings, part {n + 1} of {total}"
        )
        messages.append(Message(blocks, text, tuple(f.id for f in chunk)))
    return messages


def message_blocks(
    shown: Sequence[StoredFinding],
    *,
    thread: Sequence[StoredFinding] | None,
    actionable: Actionable,
    now: datetime,
    deciders: Mapping[str, Decider],
) -> list[Block]:
    """Rebuild one posted message from the store (header only on the thread's root)."""
    blocks = header_blocks(thread) if thread is not None else []
    for finding in shown:
        blocks += finding_blocks(
            finding, actionable=actionable, now=now, decider=deciders.get(finding.id)
        )
    return blocks
