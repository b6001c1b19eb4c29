"""The contract between the cleanup engine and the cleaners: what a dry run answers, what an
execution returns, and the Cleaner protocol every action class implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from costbot.config import Exclusions
from costbot.scanners import exclusion_reason
from costbot.store import StoredFinding

ClientsT = TypeVar("ClientsT")


class Readiness(StrEnum):
    """What a fresh re-check plus dry run found."""

    READY = "ready"
    """Still wasteful, not excluded, and the provider's dry run says the call would succeed."""
    GONE = "gone"
    """The resource no longer exists."""
    CHANGED = "changed"
    """The resource exists but no longer matches the waste rule (e.g. attached again)."""
    EXCLUDED = "excluded"
    """An opt-out tag, keep-until date or allow-list entry now protects it."""
    REFUSED = "refused"
    """The action is not allowed on this resource (e.g. instance in an Auto Scaling group)."""
    DENIED = "denied"
    """The provider's dry run failed: a missing permission or another error."""


@dataclass(frozen=True, slots=True)
class DryRun:
    """The verdict of a re-check plus dry run, in words an approver can act on."""

    readiness: Readiness
    verdict: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """What execution would work from (recorded with the intent)."""

    @property
    def ok(self) -> bool:
        """True when the action may go ahead."""
        return self.readiness is Readiness.READY


class Result(StrEnum):
    """How an execution ended."""

    DONE = "done"
    ALREADY_GONE = "already_gone"
    CHANGED = "changed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an execution did."""

    result: Result
    note: str
    data: Mapping[str, Any] = field(default_factory=dict)


class Cleaner(Protocol):
    """One action on one kind of cloud resource."""

    action: str
    """Stable action name recorded in the audit (e.g. snapshot_and_delete_volume)."""
    permissions: tuple[str, ...]
    """The IAM permissions the action needs, for docs and `costbot doctor`."""
    needs_window: bool
    """True when the action may only run inside cleanup.maintenance_window."""

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-check the resource uncached and ask the provider whether the call would succeed."""
        ...

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Re-check once more and act; the only place a cloud resource is changed."""
        ...

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """After a crash between intent and result: the outcome if the action had completed."""
        ...


def attached_disk(finding: StoredFinding, resource: str, holder: str) -> DryRun:
    """The verdict on a disk found attached: never detached by costbot.

    A finding about a disk of a long-stopped instance was attached all along: refusing says so
    (the finding becomes failed, not resolved as if the waste were gone); any other finding's
    disk has been attached since the scan, so the waste is gone.
    """
    if finding.details.get("idle_reason") == "attached_to_stopped_instance":
        return DryRun(
            Readiness.REFUSED,
            f"{resource} is attached to {holder}: costbot never detaches disks; detach it or "
            "remove the stopped instance, and the next scan reports it as unattached",
        )
    return DryRun(
        Readiness.CHANGED,
        f"{resource} is attached to {holder}; costbot only removes unattached volumes",
    )


def recreated(finding: StoredFinding, resource: str, created_at: datetime | None) -> DryRun | None:
    """CHANGED when the resource under this name is not the one scanned (created at another
    time: deleted and re-created since), so nobody approved acting on it; else None."""
    seen = finding.details.get("created_at")
    if not seen or created_at is None:
        return None
    if datetime.fromisoformat(str(seen)) != created_at:
        return DryRun(
            Readiness.CHANGED,
            f"{resource} was re-created since the scan (created {created_at.isoformat()}, "
            f"the approved one {seen}); it is not the resource that was approved",
        )
    return None


@dataclass(frozen=True, slots=True)
class Restored:
    """A volume recreated from a costbot snapshot."""

    volume_id: str
    snapshot_id: str
    source_volume: str
    finding_id: str
    zone: str
    volume_type: str
    size_gb: int


def not_actionable(decision: DryRun, gone: str) -> Outcome | None:
    """The outcome when a re-check right before acting says not to act (None: go ahead)."""
    if decision.readiness is Readiness.GONE:
        return Outcome(Result.ALREADY_GONE, gone)
    if not decision.ok:
        return Outcome(Result.CHANGED, decision.verdict)
    return None


def would(finding: StoredFinding, change: str, params: Mapping[str, Any]) -> DryRun:
    """READY: "would <change>; saves $X/month", with what execution will work from."""
    saves = f"saves ${finding.monthly_savings_usd:,.2f}/month"
    return DryRun(Readiness.READY, f"would {change}; {saves}", params)


class CloudAction(Generic[ClientsT]):
    """What every cleanup action shares: its cloud's clients, the exclusions, a clock, and the
    first two questions of every decision (does it still exist, is it opted out now?)."""

    action = ""
    permissions: tuple[str, ...] = ()
    needs_window = False

    def __init__(
        self, clients: ClientsT, exclusions: Exclusions, today: Callable[[], datetime]
    ) -> None:
        self._clients = clients
        self._exclusions = exclusions
        self._today = today

    @staticmethod
    def _tags_of(raw: Any) -> Mapping[str, str]:
        """The tags/labels of a re-read resource, in the cloud's own shape."""
        raise NotImplementedError

    def _gone_or_excluded(self, finding: StoredFinding, raw: Any) -> DryRun | None:
        """GONE when the re-read found nothing, EXCLUDED when an opt-out now protects it."""
        if raw is None:
            return DryRun(Readiness.GONE, f"{finding.resource_id} no longer exists")
        why = exclusion_reason(
            finding.resource_id, self._tags_of(raw), self._exclusions, self._today().date()
        )
        if why:
            return DryRun(Readiness.EXCLUDED, f"{finding.resource_id} is now {why}")
        return None
