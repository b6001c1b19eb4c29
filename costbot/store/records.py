"""Records read from the store (findings with their lifecycle, events, cached prices) and the
time helpers every store module shares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costbot.model import Kind, Status


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True)
class StoredFinding:
    """A finding as the store knows it: the scanner's finding plus its lifecycle."""

    id: str
    provider: str
    account: str
    region: str
    kind: Kind
    resource_id: str
    name: str
    status: Status
    reason: str
    monthly_cost_usd: float
    monthly_savings_usd: float
    price_source: str
    price_date: str
    recommendation: str
    details: Mapping[str, Any]
    first_seen: datetime
    last_seen: datetime
    first_seen_unattached: datetime | None
    status_changed_at: datetime
    snoozed_until: datetime | None
    approved_by: str | None = None
    approved_at: datetime | None = None
    approval_source: Mapping[str, Any] = field(default_factory=dict)
    dry_run_ok: bool | None = None
    dry_run_verdict: str | None = None
    dry_run_at: datetime | None = None
    outcome: str | None = None
    slack_channel: str | None = None
    slack_ts: str | None = None
    slack_thread_ts: str | None = None
    notified_at: datetime | None = None
    notified_cost_usd: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredFinding:
        """Build from a findings row."""
        return cls(
            id=row["id"],
            provider=row["provider"],
            account=row["account"],
            region=row["region"],
            kind=Kind(row["kind"]),
            resource_id=row["resource_id"],
            name=row["name"],
            status=Status(row["status"]),
            reason=row["reason"],
            monthly_cost_usd=row["monthly_cost_usd"],
            monthly_savings_usd=row["monthly_savings_usd"],
            price_source=row["price_source"],
            price_date=row["price_date"],
            recommendation=row["recommendation"],
            details=json.loads(row["details"]),
            first_seen=datetime.fromisoformat(row["first_seen"]),
            last_seen=datetime.fromisoformat(row["last_seen"]),
            first_seen_unattached=parse_time(row["first_seen_unattached"]),
            status_changed_at=datetime.fromisoformat(row["status_changed_at"]),
            snoozed_until=parse_time(row["snoozed_until"]),
            approved_by=row["approved_by"],
            approved_at=parse_time(row["approved_at"]),
            approval_source=json.loads(row["approval_source"] or "{}"),
            dry_run_ok=None if row["dry_run_ok"] is None else bool(row["dry_run_ok"]),
            dry_run_verdict=row["dry_run_verdict"],
            dry_run_at=parse_time(row["dry_run_at"]),
            outcome=row["outcome"],
            slack_channel=row["slack_channel"],
            slack_ts=row["slack_ts"],
            slack_thread_ts=row["slack_thread_ts"],
            notified_at=parse_time(row["notified_at"]),
            notified_cost_usd=row["notified_cost_usd"],
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of `costbot findings --format json` (a contract: add, never rename)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "account": self.account,
            "region": self.region,
            "kind": str(self.kind),
            "resource_id": self.resource_id,
            "name": self.name,
            "status": str(self.status),
            "reason": self.reason,
            "monthly_cost_usd": round(self.monthly_cost_usd, 4),
            "monthly_savings_usd": round(self.monthly_savings_usd, 4),
            "price_source": self.price_source,
            "price_date": self.price_date,
            "recommendation": self.recommendation,
            "details": dict(self.details),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "first_seen_unattached": iso(self.first_seen_unattached),
            "status_changed_at": iso(self.status_changed_at),
            "snoozed_until": iso(self.snoozed_until),
            "approved_by": self.approved_by,
            "approved_at": iso(self.approved_at),
            "dry_run_ok": self.dry_run_ok,
            "dry_run_verdict": self.dry_run_verdict,
            "dry_run_at": iso(self.dry_run_at),
            "outcome": self.outcome,
            "slack_channel": self.slack_channel,
            "slack_ts": self.slack_ts,
            "notified_at": iso(self.notified_at),
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a finding's audit trail."""

    id: int
    finding_id: str
    at: datetime
    actor: str
    type: str
    from_status: str | None
    to_status: str | None
    note: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON shape of `costbot history --format json`."""
        return {
            "id": self.id,
            "finding_id": self.finding_id,
            "time": iso(self.at),
            "actor": self.actor,
            "type": self.type,
            "from": self.from_status,
            "to": self.to_status,
            "note": self.note,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """What a scan of one unit wrote: counts of new, re-seen and resolved findings."""

    new: int = 0
    seen_again: int = 0
    resolved: int = 0


@dataclass(frozen=True, slots=True)
class CachedPrice:
    """A price remembered from the live pricing API."""

    usd: float
    unit: str
    source: str
    fetched_at: datetime


def event_from_row(row: Mapping[str, Any]) -> Event:
    """Build an Event from an events row."""
    return Event(
        id=row["id"],
        finding_id=row["finding_id"],
        at=datetime.fromisoformat(row["at"]),
        actor=row["actor"],
        type=row["type"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        note=row["note"],
        data=json.loads(row["data"]),
    )
