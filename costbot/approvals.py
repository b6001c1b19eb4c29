"""Human decisions on findings (approve, reject, snooze) with the checks every channel shares:
who may decide, which statuses a decision applies to, and which findings are actionable.
The CLI and Slack both come through here, so whichever decides first wins.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from costbot.errors import CostbotError, TransitionError
from costbot.model import Kind, Provider, Status
from costbot.store import Store, StoredFinding, utcnow

APPROVABLE_FROM = (Status.OPEN, Status.NOTIFIED, Status.FAILED)
REJECTABLE_FROM = (Status.OPEN, Status.NOTIFIED, Status.APPROVED, Status.FAILED)
"""Rejecting also withdraws an approval that has not been acted on yet."""
SNOOZABLE_FROM = (Status.OPEN, Status.NOTIFIED, Status.FAILED)
ALLOWED_FROM = {"approve": APPROVABLE_FROM, "reject": REJECTABLE_FROM, "snooze": SNOOZABLE_FROM}


class Decision(StrEnum):
    """What a human decided."""

    APPROVE = "approve"
    REJECT = "reject"
    SNOOZE = "snooze"


TARGET = {
    Decision.APPROVE: Status.APPROVED,
    Decision.REJECT: Status.REJECTED,
    Decision.SNOOZE: Status.SNOOZED,
}


class DecisionRefused(CostbotError):
    """A decision that must change nothing: unknown finding, not allowed, not actionable."""


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision that was applied."""

    finding: StoredFinding
    decision: Decision


def why_refused(
    finding: StoredFinding,
    decision: Decision,
    actor: str,
    approvers: Collection[str],
    actionable: Collection[tuple[Provider, Kind]],
) -> str | None:
    """Why `actor` may not take `decision` on `finding` now, or None when they may."""
    if approvers and actor not in approvers:
        return f"{actor} is not a configured approver"
    if finding.status not in ALLOWED_FROM[decision]:
        detail = f" by {finding.approved_by}" if finding.status is Status.APPROVED else ""
        return f"{finding.id} is already {finding.status}{detail}; nothing changed"
    if (
        decision is Decision.APPROVE
        and (Provider(finding.provider), finding.kind) not in actionable
    ):
        return f"{finding.id} is advisory: no cleanup action is enabled for {finding.kind}"
    return None


def decide(
    store: Store,
    finding_ids: Sequence[str],
    decision: Decision,
    *,
    actor: str,
    approvers: Collection[str],
    actionable: Collection[tuple[Provider, Kind]],
    source: Mapping[str, Any],
    snooze_days: float | None = None,
    now: datetime | None = None,
) -> list[Decided]:
    """Apply one decision to every finding, or to none: any refusal raises DecisionRefused first."""
    moment = now or utcnow()
    findings = [store.get(fid) for fid in finding_ids]
    for finding in findings:
        problem = why_refused(finding, decision, actor, approvers, actionable)
        if problem:
            raise DecisionRefused(problem)
    until = None
    if decision is Decision.SNOOZE:
        if not snooze_days or snooze_days <= 0:
            raise DecisionRefused("snoozing needs a number of days greater than 0")
        until = moment + timedelta(days=snooze_days)
    done = []
    allowed = ALLOWED_FROM[decision]
    for finding in findings:
        try:
            updated = store.transition(
                finding.id,
                TARGET[decision],
                actor=actor,
                now=moment,
                allowed_from=allowed,
                snoozed_until=until,
                data={**source, "recommendation": finding.recommendation},
                refuse_in_flight=True,
                note=f"{decision} via {source.get('via', 'unknown')}",
            )
        except TransitionError as exc:
            raise DecisionRefused(f"{exc}; someone decided first") from exc
        done.append(Decided(updated, decision))
    return done
