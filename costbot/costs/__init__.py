"""Spend sources (AWS Cost Explorer, Azure Cost Management, GCP billing export) and the
daily cache in front of them: closed days come from the store, open ones are re-queried."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from costbot.config import Config
from costbot.errors import CostbotError
from costbot.model import CostRow
from costbot.store import Store

log = logging.getLogger(__name__)


class CostSource(Protocol):
    """A provider's daily spend."""

    provider: str

    def fetch(self, start: date, end: date) -> list[CostRow]:
        """Rows for start <= day < end."""
        ...


@dataclass(frozen=True)
class Costs:
    """Daily spend for a period, which providers are missing and why, and data freshness."""

    columns: dict[str, list[Any]]
    """Daily rows as columns: day, provider, account, service, amount, currency."""
    missing: dict[str, str] = field(default_factory=dict)
    fetched_at: dict[str, datetime] = field(default_factory=dict)

    @property
    def rows(self) -> list[CostRow]:
        """The same data as CostRow objects (convenient, slower than the columns)."""
        c = self.columns
        return [
            CostRow(date.fromisoformat(day), provider, account, service, float(amount), currency)
            for day, provider, account, service, amount, currency in zip(
                c["day"],
                c["provider"],
                c["account"],
                c["service"],
                c["amount"],
                c["currency"],
                strict=True,
            )
        ]


def build_cost_sources(config: Config) -> tuple[list[CostSource], dict[str, str]]:
    """Sources for every configured provider, and providers configured but without a source."""
    sources: list[CostSource] = []
    missing: dict[str, str] = {}
    providers = config.providers
    if providers.aws is not None:
        from costbot.costs.aws import AwsCosts

        sources.append(AwsCosts(config.digest.metric))
    if providers.azure is not None and providers.azure.subscriptions:
        from costbot.costs.azure import AzureCosts

        sources.append(
            AzureCosts(providers.azure.subscriptions, providers.azure.management_endpoint)
        )
    if providers.gcp is not None:
        if providers.gcp.billing_export_table:
            from costbot.costs.gcp import GcpCosts

            sources.append(
                GcpCosts(providers.gcp.billing_export_table, projects=providers.gcp.projects)
            )
        else:
            missing["gcp"] = "no billing export configured (providers.gcp.billing_export_table)"
    return sources, missing


def collect_costs(
    store: Store,
    sources: Sequence[CostSource],
    start: date,
    end: date,
    *,
    now: datetime,
    settle_days: int,
) -> Costs:
    """Rows for [start, end): cached closed days reused, the rest fetched and cached."""
    missing: dict[str, str] = {}
    fetched: dict[str, datetime] = {}
    settle = timedelta(days=settle_days)
    for source in sources:
        cached = store.fetched_days(source.provider, start, end)
        days = [start + timedelta(days=n) for n in range((end - start).days)]
        # a cached day is final once it was fetched settle_days after it ended
        stale = [
            d for d in days if d not in cached or cached[d].date() < d + timedelta(days=1) + settle
        ]
        if stale:
            first, last = min(stale), max(stale) + timedelta(days=1)
            try:
                rows = source.fetch(first, last)
            except CostbotError as exc:
                log.error(
                    "spend source failed", extra={"provider": source.provider, "error": str(exc)}
                )
                missing[source.provider] = str(exc)
                continue
            rows = [r for r in rows if first <= r.day < last]
            store.replace_costs(source.provider, [d for d in days if first <= d < last], rows, now)
        fetched[source.provider] = max(
            store.fetched_days(source.provider, start, end).values(), default=now
        )
    return Costs(store.cost_columns(start, end), missing, fetched)
