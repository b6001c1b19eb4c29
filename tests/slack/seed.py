"""Findings for the Slack tests, written through the store's own scan path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from costbot.model import Finding, Kind, Provider, Unit
from costbot.store import Store

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AWS_EAST = Unit(Provider.AWS, "123456789012", "us-east-1")
GCP_CENTRAL = Unit(Provider.GCP, "shop-prod", "us-central1")
ACTIONABLE = frozenset({(Provider.AWS, Kind.IDLE_VOLUME), (Provider.AWS, Kind.UNATTACHED_IP)})
"""What the tests' cleaners could act on; everything else is advisory."""

RECOMMENDATION = {
    Kind.IDLE_VOLUME: "snapshot, then delete the volume",
    Kind.UNATTACHED_IP: "release the address",
    Kind.OVERSIZED_INSTANCE: "resize to a smaller type",
}


def make(
    unit: Unit,
    resource_id: str,
    *,
    kind: Kind = Kind.IDLE_VOLUME,
    cost: float = 10.0,
    savings: float | None = None,
    name: str = "",
    reason: str = "unattached for 9 days",
    recommendation: str | None = None,
) -> Finding:
    return Finding(
        unit=unit,
        kind=kind,
        resource_id=resource_id,
        reason=reason,
        monthly_cost_usd=cost,
        monthly_savings_usd=cost if savings is None else savings,
        price_source="bundled",
        price_date="2026-11-01",
        recommendation=recommendation or RECOMMENDATION[kind],
        name=name,
    )


def scan(store: Store, unit: Unit, findings: Sequence[Finding], at: datetime = T0) -> list[str]:
    """One successful scan of `unit` that saw exactly `findings`; returns their ids."""
    store.record_scan(
        unit,
        run_id="slack-test",
        started_at=at,
        finished_at=at,
        findings=list(findings),
        resource_counts={"resources": len(findings)},
    )
    return [f.id for f in findings]


def volumes(unit: Unit, count: int, *, start_cost: float = 1000.0) -> list[Finding]:
    """`count` idle volumes with distinct, decreasing costs (so the store's order is known)."""
    return [make(unit, f"vol-{n:05d}", cost=start_cost - n) for n in range(count)]
