"""The dry-run-first cleanup engine, the only caller of Cleaner.execute.

For each approved finding, in order: approval valid (not expired, by a configured approver) ->
the account/region's latest scans are sound -> fresh re-check + provider dry run -> execution
enabled (config AND --execute) -> maintenance window -> max_per_run -> write the intent ->
execute -> write the result. Interrupted intents are re-checked first, never re-run blindly.
"""

from __future__ import annotations

import logging
import os
import socket
import time as clock
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from costbot.actions import Cleaner, DryRun, Readiness, Result
from costbot.config import Config
from costbot.errors import CleanupError, CostbotError, TransitionError
from costbot.model import TRANSITIONS, Kind, Provider, Status
from costbot.store import Store, StoredFinding, utcnow

log = logging.getLogger(__name__)

ACTOR = "costbot:cleanup"
LEASE = "cleanup"
LEASE_TTL = timedelta(minutes=30)
"""Renewed before each finding; a crashed holder's lease runs out after this."""
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

Cleaners = Mapping[tuple[Provider, Kind], Cleaner]


class Stage(StrEnum):
    """Where a finding ended up in this cleanup run."""

    CLEANED = "cleaned"
    WOULD_CLEAN = "would_clean"
    HELD = "held"
    """A rail held it back; it stays approved for the next run."""
    RESOLVED = "resolved"
    FAILED = "failed"
    EXPIRED = "expired"
    REFUSED = "refused"
    SKIPPED = "skipped"
    """Not approved: nothing to do."""


@dataclass(frozen=True, slots=True)
class CleanupLine:
    """What happened to one finding, in one sentence."""

    finding_id: str
    resource_id: str
    kind: str
    stage: Stage
    text: str
    monthly_savings_usd: float = 0.0
    data: Mapping[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """JSON shape of `costbot clean --format json`."""
        return {
            "finding_id": self.finding_id,
            "resource_id": self.resource_id,
            "kind": self.kind,
            "stage": str(self.stage),
            "text": self.text,
            "monthly_savings_usd": round(self.monthly_savings_usd, 4),
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """Everything one cleanup run did."""

    run_id: str
    execute: bool
    lines: tuple[CleanupLine, ...]

    def count(self, stage: Stage) -> int:
        """How many findings ended in `stage`."""
        return sum(1 for line in self.lines if line.stage is stage)


def in_window(window: str | None, now: datetime) -> bool:
    """Whether `now` (UTC) is inside a window like 'Sat 02:00-06:00 UTC' (may cross midnight)."""
    if window is None:
        return False
    days_part, hours, _utc = window.split(" ")
    start_s, end_s = hours.split("-")
    start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
    days = _days(days_part)
    now = now.astimezone(UTC)
    moment = now.time()
    today = DAYS[now.weekday()]
    yesterday = DAYS[(now.weekday() - 1) % 7]
    if start <= end:
        return today in days and start <= moment < end
    return (today in days and moment >= start) or (yesterday in days and moment < end)


def _holder_is_dead(taken_by: str) -> bool:
    """Whether a lease holder ('host:pid:run until ...') is a process on this host that is gone."""
    host, _, rest = taken_by.split(" until ", maxsplit=1)[0].partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _days(spec: str) -> set[str]:
    chosen: set[str] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        a, b = DAYS.index(first), DAYS.index(last or first)
        chosen |= {DAYS[(a + i) % 7] for i in range(((b - a) % 7) + 1)}
    return chosen


class CleanupRun:
    """One pass over the approved findings."""

    def __init__(
        self,
        config: Config,
        store: Store,
        cleaners: Cleaners,
        *,
        execute: bool,
        now: datetime | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.cleaners = cleaners
        self.execute = execute and config.cleanup.execute
        self.requested_execute = execute
        self.now = now or utcnow()
        self.run_id = uuid.uuid4().hex[:12]
        self.executed = 0
        self._started = clock.monotonic()
        self.lease_ttl = max(
            LEASE_TTL, timedelta(minutes=config.cleanup.snapshot_timeout_minutes + 10)
        )
        """Renewed before each finding, so it must outlive the longest single action."""

    def run(self, finding_ids: Sequence[str] | None = None) -> CleanupReport:
        """Resume interrupted actions, then take every approved finding through the rails.

        Holds the store's cleanup lease for the whole run: two processes never act at once."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{self.run_id}"
        taken_by = self.store.acquire_lease(LEASE, holder, self.lease_ttl, utcnow())
        if taken_by and _holder_is_dead(taken_by):
            log.warning(
                "taking over the cleanup lease of a dead process", extra={"holder": taken_by}
            )
            self.store.release_lease(LEASE, taken_by.split(" until ")[0])
            taken_by = self.store.acquire_lease(LEASE, holder, self.lease_ttl, utcnow())
        if taken_by:
            raise CleanupError(f"another cleanup run is in progress ({taken_by}); try again later")
        try:
            lines = self._resume() if self.execute else []  # a dry run changes nothing
            if finding_ids:
                findings = [self.store.get(fid) for fid in finding_ids]
            else:
                findings = sorted(
                    self.store.findings(status=[Status.APPROVED]),
                    key=lambda f: (f.approved_at or self.now, f.id),
                )
            for finding in findings:
                lost_to = self.store.acquire_lease(LEASE, holder, self.lease_ttl, utcnow())
                if lost_to:
                    lines.append(
                        self._line(finding, Stage.HELD, f"cleanup lease lost to {lost_to}")
                    )
                    continue
                lines.append(self._one(finding))
        finally:
            self.store.release_lease(LEASE, holder)
        return CleanupReport(self.run_id, self.execute, tuple(lines))

    def _clock(self) -> datetime:
        """The run's clock: the injected start time plus the time elapsed since."""
        return self.now + timedelta(seconds=clock.monotonic() - self._started)

    # -- crash recovery ------------------------------------------------------------------------

    def _resume(self) -> list[CleanupLine]:
        lines = []
        for action in self.store.open_actions():
            finding = self.store.get(action.finding_id)
            cleaner = self.cleaners.get((Provider(finding.provider), finding.kind))
            if cleaner is None:
                log.warning(
                    "interrupted action has no enabled cleaner; left open",
                    extra={"finding": finding.id, "action": action.action},
                )
                continue
            params = {**action.params, "action_id": action.id}
            try:
                outcome = cleaner.recover(finding, params)
            except CostbotError as exc:
                log.error("recovery check failed", extra={"finding": finding.id, "error": str(exc)})
                continue
            if outcome is None:
                self.store.finish_action(
                    action.id,
                    result="interrupted",
                    to=finding.status,
                    actor=ACTOR,
                    now=self._clock(),
                    data={},
                    note="interrupted before its result was recorded; re-checked: not done, "
                    "so it goes through the rails again",
                )
                continue
            done = Status.CLEANED in TRANSITIONS[finding.status] or finding.status is Status.CLEANED
            self.store.finish_action(
                action.id,
                result=str(outcome.result),
                note=outcome.note,
                data=outcome.data,
                actor=ACTOR,
                now=self._clock(),
                to=Status.CLEANED if done else finding.status,
            )
            lines.append(
                self._line(finding, Stage.CLEANED, f"recovered: {outcome.note}", outcome.data)
            )
        return lines

    # -- the rails -----------------------------------------------------------------------------

    def _one(self, listed: StoredFinding) -> CleanupLine:
        """One finding through the rails; a finding moved meanwhile by someone else is skipped."""
        try:
            return self._rails(self.store.get(listed.id))  # fresh: others may have decided
        except TransitionError as exc:
            return self._line(listed, Stage.SKIPPED, f"changed while this run worked: {exc}")

    def _rails(self, finding: StoredFinding) -> CleanupLine:
        if finding.status is not Status.APPROVED:
            return self._line(finding, Stage.SKIPPED, f"not approved (status {finding.status})")
        void = self._approval_problem(finding)
        if void:
            stage = Stage.EXPIRED if "expired" in void else Stage.REFUSED
            self.store.transition(finding.id, Status.OPEN, actor=ACTOR, note=void,
                                  now=self._clock(), allowed_from=[Status.APPROVED])  # fmt: skip
            return self._line(finding, stage, void)
        cleaner = self.cleaners.get((Provider(finding.provider), finding.kind))
        if cleaner is None:
            return self._line(finding, Stage.REFUSED, "no enabled cleanup action for this kind")
        unsafe = self.store.scan_health(
            finding.provider,
            finding.account,
            finding.region,
            self.config.cleanup.min_inventory_ratio,
        )
        if unsafe:
            return self._line(finding, Stage.HELD, unsafe)
        try:
            return self._check_and_act(finding, cleaner)
        except TransitionError:
            raise
        except CostbotError as exc:
            self._fail(finding, str(exc))
            return self._line(finding, Stage.FAILED, str(exc))

    def _approval_problem(self, finding: StoredFinding) -> str | None:
        ttl = timedelta(hours=self.config.cleanup.approval_ttl_hours)
        if finding.approved_at is None or self._clock() - finding.approved_at > ttl:
            return f"approval expired (older than {self.config.cleanup.approval_ttl_hours:g} h)"
        approved_plan = finding.approval_source.get("recommendation")
        if approved_plan is not None and approved_plan != finding.recommendation:
            return (
                f"the recommendation changed since it was approved ({approved_plan!r} -> "
                f"{finding.recommendation!r}); approve again"
            )
        if not self._approver_still_allowed(finding):
            return f"approved by {finding.approved_by}, who is not a configured approver"
        return None

    def _approver_still_allowed(self, finding: StoredFinding) -> bool:
        """Re-check the approver against today's config, by the channel the approval came from."""
        if finding.approval_source.get("via") == "slack":
            slack = self.config.slack
            return slack is not None and (
                finding.approved_by in slack.approvers
                or finding.approval_source.get("group") in slack.approver_groups
            )
        allowed = self.config.cleanup.cli_approvers
        return not allowed or finding.approved_by in allowed

    def _check_and_act(self, finding: StoredFinding, cleaner: Cleaner) -> CleanupLine:
        check = cleaner.dry_run(finding)
        self.store.record_dry_run(
            finding.id, ok=check.ok, verdict=check.verdict, actor=ACTOR, now=self._clock()
        )
        if not check.ok:
            return self._not_ready(finding, check)
        if not self.execute:
            why = "cleanup.execute is false" if self.requested_execute else "no --execute"
            return self._line(finding, Stage.WOULD_CLEAN, f"{check.verdict} [dry run: {why}]")
        if cleaner.needs_window and not in_window(
            self.config.cleanup.maintenance_window, self._clock()
        ):
            window = self.config.cleanup.maintenance_window or "none configured"
            return self._line(finding, Stage.HELD, f"outside the maintenance window ({window})")
        if self.executed >= self.config.cleanup.max_per_run:
            return self._line(
                finding,
                Stage.HELD,
                f"cleanup.max_per_run ({self.config.cleanup.max_per_run}) reached",
            )
        self.executed += 1
        action_id = self.store.begin_action(
            finding.id,
            action=cleaner.action,
            run_id=self.run_id,
            params=check.params,
            actor=ACTOR,
            now=self._clock(),
        )
        reusable = [  # snapshots of actions interrupted under this same approval
            a.id
            for a in self.store.actions(finding.id)
            if a.result == "interrupted"
            and finding.approved_at
            and a.intent_at >= finding.approved_at
        ]
        params = {**check.params, "action_id": action_id, "reuse_from_actions": reusable}
        try:
            outcome = cleaner.execute(finding, params)
        except CostbotError as exc:
            self.store.finish_action(
                action_id,
                result=str(Result.FAILED),
                note=str(exc),
                data={},
                to=Status.FAILED,
                actor=ACTOR,
                now=utcnow(),
            )
            return self._line(finding, Stage.FAILED, str(exc))
        to = {
            Result.DONE: Status.CLEANED,
            Result.ALREADY_GONE: Status.CLEANED,
            Result.CHANGED: Status.RESOLVED,
            Result.FAILED: Status.FAILED,
        }[outcome.result]
        self.store.finish_action(
            action_id,
            result=str(outcome.result),
            note=outcome.note,
            data=outcome.data,
            to=to,
            actor=ACTOR,
            now=utcnow(),
        )
        stage = {Status.CLEANED: Stage.CLEANED, Status.RESOLVED: Stage.RESOLVED}.get(
            to, Stage.FAILED
        )
        return self._line(finding, stage, outcome.note, outcome.data)

    def _not_ready(self, finding: StoredFinding, check: DryRun) -> CleanupLine:
        if check.readiness in (Readiness.GONE, Readiness.CHANGED, Readiness.EXCLUDED):
            self.store.transition(
                finding.id,
                Status.RESOLVED,
                actor=ACTOR,
                now=self._clock(),
                note=f"re-check before cleanup: {check.verdict}",
                allowed_from=[Status.APPROVED],
            )
            return self._line(finding, Stage.RESOLVED, check.verdict)
        self._fail(finding, check.verdict)
        return self._line(finding, Stage.FAILED, check.verdict)

    def _fail(self, finding: StoredFinding, why: str) -> None:
        self.store.transition(finding.id, Status.FAILED, actor=ACTOR, note=why, now=self._clock(),
                              allowed_from=[Status.APPROVED])  # fmt: skip

    @staticmethod
    def _line(
        finding: StoredFinding, stage: Stage, text: str, data: Mapping[str, object] | None = None
    ) -> CleanupLine:
        return CleanupLine(
            finding.id,
            finding.resource_id,
            str(finding.kind),
            stage,
            text,
            finding.monthly_savings_usd,
            dict(data or {}),
        )


def dry_run_findings(
    store: Store, cleaners: Cleaners, findings: Iterable[StoredFinding], now: datetime | None = None
) -> dict[str, DryRun]:
    """Dry-run open findings (e.g. before notifying) so approvers approve a proven plan."""
    verdicts: dict[str, DryRun] = {}
    moment = now or utcnow()
    for finding in findings:
        cleaner = cleaners.get((Provider(finding.provider), finding.kind))
        if cleaner is None:
            continue
        try:
            check = cleaner.dry_run(finding)
        except CostbotError as exc:
            check = DryRun(Readiness.DENIED, f"dry run failed: {exc}")
        store.record_dry_run(
            finding.id, ok=check.ok, verdict=check.verdict, actor=ACTOR, now=moment
        )
        verdicts[finding.id] = check
    return verdicts
