"""Google Cloud prices: the Cloud Billing Catalog (Compute Engine SKUs) read once per process,
rates remembered in the store, and a bundled, dated table as the fallback.

Machine types are priced as vCPUs x core rate + GiB x RAM rate of their family, the way Google
bills predefined types; persistent disks per GiB-month by type; static IPs per hour unused.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from costbot.errors import PricingError
from costbot.model import HOURS_PER_MONTH
from costbot.pricing.base import Quote, RateCache, bundled_table, combine
from costbot.store import CachedPrice, Store, utcnow

log = logging.getLogger(__name__)

COMPUTE_SERVICE = "services/6F81-5844-456A"
LIVE_SOURCE = "gcp-billing-catalog"
STAND_IN_REGION = "us-central1"
_DISK_SKUS = {
    "Storage PD Capacity": "pd-standard",
    "Balanced PD Capacity": "pd-balanced",
    "SSD backed PD Capacity": "pd-ssd",
    "Extreme PD Capacity": "pd-extreme",
}
_MACHINE_SKU = re.compile(
    r"^(?P<family>[A-Z][A-Z0-9]*)(?: AMD| Intel)? (?:Predefined )?Instance (?P<what>Core|Ram) "
    r"running in"
)


class CatalogClient(Protocol):
    """The one call of google-cloud-billing's CloudCatalogClient costbot uses."""

    def list_skus(self, *, parent: str) -> Iterable[Any]:
        """Every SKU of a service (the pager follows nextPageToken)."""
        ...


def machine_family(machine_type: str) -> str:
    """The billing family of a machine type: n2-standard-8 -> n2, custom-4-16384 -> n1."""
    head = machine_type.split("-", maxsplit=1)[0]
    return "n1" if head == "custom" else head


def parse_catalog(skus: Iterable[Any], now: datetime) -> dict[str, CachedPrice]:
    """Compute Engine SKUs -> rates by costbot key (on-demand, USD, first paid tier)."""
    rates: dict[str, CachedPrice] = {}
    for sku in skus:
        if sku.category.usage_type != "OnDemand":
            continue
        key_of = _sku_key(sku.description)
        usd = _unit_price(sku)
        if key_of is None or usd is None:
            continue
        for region in sku.service_regions:
            rates.setdefault(key_of(region), CachedPrice(usd, "", LIVE_SOURCE, now))
    return rates


def _sku_key(description: str) -> Callable[[str], str] | None:
    for prefix, disk_type in _DISK_SKUS.items():
        if description.startswith(prefix + " in") or description == prefix:
            return _disk_key(disk_type)
    if description.startswith("Static Ip Charge"):
        return lambda region: f"gcp:ip:{region}"
    match = _MACHINE_SKU.match(description)
    if match:
        family, what = match["family"].lower(), match["what"].lower()
        return lambda region: f"gcp:{what}:{region}:{family}"
    return None


def _disk_key(disk_type: str) -> Callable[[str], str]:
    return lambda region: f"gcp:pd:{region}:{disk_type}"


def _unit_price(sku: Any) -> float | None:
    for info in sku.pricing_info:
        tiers = sorted(info.pricing_expression.tiered_rates, key=lambda t: t.start_usage_amount)
        for tier in tiers:
            usd = tier.unit_price.units + tier.unit_price.nanos / 1e9
            if usd > 0 and tier.unit_price.currency_code == "USD":
                return float(usd)
    return None


class GcpPriceBook:
    """GCP prices, live catalog first (cached in the store), bundled table second. Thread-safe."""

    def __init__(
        self,
        *,
        live: bool,
        store: Store | None = None,
        client_factory: Callable[[], CatalogClient] | None = None,
        cache_days: int = 7,
        now: datetime | None = None,
    ) -> None:
        self._live = live and client_factory is not None
        self._client_factory = client_factory
        self._now = now or utcnow()
        self._cache = RateCache(store, cache_days, self._now)
        self._catalog: dict[str, CachedPrice] | None = None
        self._catalog_lock = threading.Lock()
        self.notes: list[str] = []
        """Human-readable remarks about where prices came from."""

    def volume(
        self, region: str, volume_type: str, size_gb: int, iops: int | None, throughput: int | None
    ) -> Quote:
        """Monthly cost of a persistent disk: GiB-month by type (provisioned IOPS not priced)."""
        rate = self._rate(f"gcp:pd:{region}:{volume_type}", ("pd_gib_month", region, volume_type))
        return combine(rate.usd * size_gb, [rate])

    def public_ip(self, region: str, sku: str = "") -> Quote:
        """Monthly cost of a reserved static external IP that nothing uses."""
        lookup = region if region != "global" else STAND_IN_REGION
        rate = self._rate(f"gcp:ip:{lookup}", ("static_ip_hour", lookup))
        return combine(rate.usd * HOURS_PER_MONTH, [rate])

    def instance(
        self, region: str, instance_type: str, vcpus: int, memory_gb: float = 0.0
    ) -> Quote:
        """Monthly on-demand cost of a machine type: vCPUs x core rate + GiB x RAM rate."""
        family = machine_family(instance_type)
        core = self._rate(f"gcp:core:{region}:{family}", ("core_hour", region, family))
        ram = self._rate(f"gcp:ram:{region}:{family}", ("ram_gib_hour", region, family))
        hourly = core.usd * vcpus + ram.usd * memory_gb
        return combine(hourly * HOURS_PER_MONTH, [core, ram])

    def _rate(self, key: str, path: tuple[str, ...]) -> CachedPrice:
        if self._live:
            found = self._cache.get(key, lambda: self._from_catalog(key))
            if found is not None:
                return found
        return _bundled(key, path)

    def _from_catalog(self, key: str) -> CachedPrice | None:
        from google.api_core.exceptions import GoogleAPICallError, RetryError
        from google.auth.exceptions import GoogleAuthError

        with self._catalog_lock:
            if self._catalog is None:
                try:
                    assert self._client_factory is not None
                    client = self._client_factory()
                    self._catalog = parse_catalog(
                        client.list_skus(parent=COMPUTE_SERVICE), self._now
                    )
                except (GoogleAPICallError, RetryError, GoogleAuthError, OSError) as exc:
                    # OSError: requests' transport errors (an unreachable endpoint)
                    self._live = False
                    self._catalog = {}
                    self.notes.append(
                        f"GCP Cloud Billing Catalog unavailable ({exc}); using the bundled price "
                        f"table dated {bundled_table('gcp_prices')['date']}"
                    )
                    log.warning("gcp catalog unavailable", extra={"error": str(exc)})
            found = self._catalog.get(key)
        if found is None and self._live:
            self.notes.append(f"GCP catalog has no price for {key}; using the bundled table")
        return found


def _bundled(key: str, path: tuple[str, ...]) -> CachedPrice:
    table = bundled_table("gcp_prices")
    fetched = datetime.fromisoformat(table["date"])
    section, region, *rest = path
    for lookup, source in (
        (region, "bundled"),
        (STAND_IN_REGION, f"bundled ({STAND_IN_REGION} rate, {region} not in table)"),
    ):
        node: Any = table[section].get(lookup)
        for part in rest:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            return CachedPrice(float(node), "", source, fetched)
    raise PricingError(f"no price known for {key} (not in the live catalog or the bundled table)")
