"""Azure prices: the Retail Prices API (public, unauthenticated) per lookup, remembered in the
store, and a bundled, dated table as the fallback.

Managed disks are billed by size tier (P10, E10, S10...), public IPs per hour by SKU, VMs per
hour by size (Linux, pay-as-you-go; Windows, Spot and Low Priority meters are ignored).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from costbot.errors import PricingError
from costbot.model import HOURS_PER_MONTH
from costbot.pricing.base import Quote, RateCache, bundled_table, combine
from costbot.store import CachedPrice, Store, utcnow

log = logging.getLogger(__name__)

LIVE_SOURCE = "azure-retail-prices"
STAND_IN_REGION = "eastus"
MAX_PAGES = 20
VM_SIZE = re.compile(
    r"^Standard_(?P<series>[A-Z]+)(?P<vcpus>\d+)(?P<features>[a-z]*)(?P<version>_v\d+)?$"
)
_DISK_SKUS = {
    "Premium_LRS": ("P", "LRS"),
    "Premium_ZRS": ("P", "ZRS"),
    "StandardSSD_LRS": ("E", "LRS"),
    "StandardSSD_ZRS": ("E", "ZRS"),
    "Standard_LRS": ("S", "LRS"),
}


def vm_series(size: str) -> str | None:
    """The family of a VM size: Standard_D8s_v5 -> Standard_D*s_v5; None for constrained sizes."""
    match = VM_SIZE.match(size)
    if match is None:
        return None
    return f"Standard_{match['series']}*{match['features']}{match['version'] or ''}"


def disk_tier(sku: str, size_gb: int) -> str:
    """The billing tier of a managed disk: (Premium_LRS, 100 GiB) -> 'P10 LRS'."""
    if sku not in _DISK_SKUS:
        raise PricingError(f"disk SKU {sku} is billed per GiB/IOPS; not priced by costbot yet")
    letter, redundancy = _DISK_SKUS[sku]
    for limit, tier in bundled_table("azure_prices")["disk_tiers"][letter]:
        if size_gb <= limit:
            return f"{tier} {redundancy}"
    raise PricingError(f"{sku} disk of {size_gb} GiB is larger than any tier")


class AzurePriceBook:
    """Azure prices, Retail Prices API first (cached in the store), bundled table second."""

    def __init__(
        self,
        *,
        live: bool,
        store: Store | None = None,
        endpoint: str = "https://prices.azure.com",
        ca_bundle: Path | None = None,
        cache_days: int = 7,
        now: datetime | None = None,
        timeout_s: float = 15,
    ) -> None:
        self._live = live
        self._endpoint = endpoint.rstrip("/")
        self._verify: str | bool = str(ca_bundle) if ca_bundle else True
        self._timeout = timeout_s
        self._now = now or utcnow()
        self._cache = RateCache(store, cache_days, self._now)
        self.notes: list[str] = []
        """Human-readable remarks about where prices came from."""

    def volume(
        self, region: str, volume_type: str, size_gb: int, iops: int | None, throughput: int | None
    ) -> Quote:
        """Monthly cost of a managed disk: the price of its size tier."""
        tier = disk_tier(volume_type, size_gb)
        filters = {"serviceName": "Storage", "armRegionName": region, "skuName": tier}
        rate = self._rate(
            f"azure:disk:{region}:{tier}",
            filters,
            lambda item: item["meterName"] == f"{tier} Disk" and item["unitOfMeasure"] == "1/Month",
            ("disk_month", region, tier),
        )
        return combine(rate.usd, [rate])

    def public_ip(self, region: str, sku: str = "") -> Quote:
        """Monthly cost of a static public IPv4 address of a SKU (Standard by default)."""
        sku = sku or "Standard"
        filters = {"serviceName": "Virtual Network", "armRegionName": region, "skuName": sku}
        rate = self._rate(
            f"azure:ip:{region}:{sku}",
            filters,
            lambda item: (
                item["productName"] == "IP Addresses"
                and "IPv4 Static Public IP" in item["meterName"]
            ),
            ("ip_hour", region, sku),
        )
        return combine(rate.usd * HOURS_PER_MONTH, [rate])

    def instance(
        self, region: str, instance_type: str, vcpus: int, memory_gb: float = 0.0
    ) -> Quote:
        """Monthly pay-as-you-go Linux price of a VM size."""
        filters = {
            "serviceName": "Virtual Machines",
            "armRegionName": region,
            "armSkuName": instance_type,
        }
        series = vm_series(instance_type) or instance_type
        rate = self._rate(
            f"azure:vm:{region}:{instance_type}",
            filters,
            _linux_pay_as_you_go,
            ("vcpu_hour", region, series),
            scale=vcpus,
        )
        return combine(rate.usd * HOURS_PER_MONTH, [rate])

    # -- machinery -----------------------------------------------------------------------------

    def _rate(
        self,
        key: str,
        filters: dict[str, str],
        wanted: Any,
        path: tuple[str, str, str],
        scale: float = 1.0,
    ) -> CachedPrice:
        if self._live:
            found = self._cache.get(key, lambda: self._fetch(key, filters, wanted))
            if found is not None:
                return found
        bundled = _bundled(key, path)
        return CachedPrice(bundled.usd * scale, bundled.unit, bundled.source, bundled.fetched_at)

    def _fetch(self, key: str, filters: dict[str, str], wanted: Any) -> CachedPrice | None:
        import requests

        try:
            for item in self._items(filters):
                usd = float(item["retailPrice"])
                consumption = item.get("type") == "Consumption" and item["currencyCode"] == "USD"
                if consumption and wanted(item) and usd > 0:
                    return CachedPrice(usd, item["unitOfMeasure"], LIVE_SOURCE, self._now)
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            self._live = False
            self.notes.append(
                f"Azure Retail Prices API unavailable ({exc}); using the bundled price table "
                f"dated {bundled_table('azure_prices')['date']}"
            )
            log.warning("azure retail prices unavailable", extra={"error": str(exc)})
            return None
        self.notes.append(f"Azure Retail Prices has no price for {key}; using the bundled table")
        return None

    def _items(self, filters: dict[str, str]) -> Iterator[dict[str, Any]]:
        import requests

        query = " and ".join(f"{field} eq '{value}'" for field, value in filters.items())
        url: str | None = f"{self._endpoint}/api/retail/prices"
        params: dict[str, str] | None = {"$filter": query, "currencyCode": "USD"}
        for _page in range(MAX_PAGES):
            if url is None:
                return
            answer = requests.get(url, params=params, timeout=self._timeout, verify=self._verify)
            answer.raise_for_status()
            body = answer.json()
            yield from body.get("Items", [])
            url, params = body.get("NextPageLink"), None


def _linux_pay_as_you_go(item: dict[str, Any]) -> bool:
    sku = str(item.get("skuName", ""))
    return (
        item.get("unitOfMeasure") == "1 Hour"
        and not str(item.get("productName", "")).endswith("Windows")
        and "Spot" not in sku
        and "Low Priority" not in sku
    )


def _bundled(key: str, path: tuple[str, str, str]) -> CachedPrice:
    table = bundled_table("azure_prices")
    fetched = datetime.fromisoformat(table["date"])
    section, region, name = path
    for lookup, source in (
        (region, "bundled"),
        (STAND_IN_REGION, f"bundled ({STAND_IN_REGION} rate, {region} not in table)"),
    ):
        usd = table[section].get(lookup, {}).get(name)
        if isinstance(usd, int | float):
            return CachedPrice(float(usd), "", source, fetched)
    raise PricingError(f"no price known for {key} (not in the live API or the bundled table)")
