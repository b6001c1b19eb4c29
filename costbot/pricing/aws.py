"""AWS prices: the Pricing API (GetProducts) when reachable, remembered in the store, and a
bundled, dated table as the fallback, which every quote then names as its source."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from costbot.errors import PricingError
from costbot.model import HOURS_PER_MONTH
from costbot.pricing.base import Quote, RateCache, bundled_table, combine
from costbot.store import CachedPrice, Store, utcnow

log = logging.getLogger(__name__)

PRICING_REGION = "us-east-1"
LIVE_SOURCE = "aws-pricing-api"
IPV4_SOURCE = "aws-public-ipv4-rate"
IPV4_RATE_DATE = "2024-02-01"
GP3_FREE_IOPS = 3000
GP3_FREE_THROUGHPUT_MIBPS = 125


@cache
def bundled_aws_prices() -> dict[str, Any]:
    """The dated fallback price table shipped with costbot."""
    return bundled_table("aws_prices")


class PricingClient(Protocol):
    """The one call of boto3's pricing client that costbot uses."""

    def get_paginator(self, operation_name: str) -> Any:
        """A botocore paginator."""
        ...


class AwsPriceBook:
    """AWS prices, live first (cached in the store), bundled table second. Thread-safe."""

    def __init__(
        self,
        *,
        live: bool,
        store: Store | None = None,
        client_factory: Callable[[], PricingClient] | None = None,
        cache_days: int = 7,
        now: datetime | None = None,
    ) -> None:
        self._live = live and client_factory is not None
        self._client_factory = client_factory
        self._client: PricingClient | None = None
        self._now = now or utcnow()
        self._cache = RateCache(store, cache_days, self._now)
        self.notes: list[str] = []
        """Human-readable remarks about where prices came from (e.g. live API unreachable)."""

    # -- public quotes -------------------------------------------------------------------------

    def volume(
        self, region: str, volume_type: str, size_gb: int, iops: int | None, throughput: int | None
    ) -> Quote:
        """Monthly cost of an EBS volume: GB-month by type plus provisioned IOPS/throughput."""
        storage = self._rate(
            f"ebs:{region}:{volume_type}:gb",
            {"productFamily": "Storage", "volumeApiName": volume_type, "regionCode": region},
            lambda table: table["ebs"][region][volume_type],
            region,
        )
        total, sources = storage.usd * size_gb, [storage]
        extra_iops = self._billable_iops(volume_type, iops)
        if extra_iops:
            rate = self._rate(
                f"ebs:{region}:{volume_type}:iops",
                {
                    "productFamily": "System Operation",
                    "volumeApiName": volume_type,
                    "regionCode": region,
                },
                lambda table: table["ebs"][region]["iops"][volume_type],
                region,
            )
            total += rate.usd * extra_iops
            sources.append(rate)
        if volume_type == "gp3" and throughput and throughput > GP3_FREE_THROUGHPUT_MIBPS:
            rate = self._rate(
                f"ebs:{region}:gp3:throughput",
                {
                    "productFamily": "Provisioned Throughput",
                    "volumeApiName": "gp3",
                    "regionCode": region,
                },
                lambda table: table["ebs"][region]["gp3_throughput_mibps"],
                region,
            )
            total += rate.usd * (throughput - GP3_FREE_THROUGHPUT_MIBPS)
            sources.append(rate)
        return combine(total, sources)

    def public_ip(self, region: str, sku: str = "") -> Quote:
        """Every AWS public IPv4 address costs the same flat hourly rate since 2024-02-01."""
        hourly = float(bundled_aws_prices()["public_ipv4_hour"])
        return Quote(hourly * HOURS_PER_MONTH, IPV4_SOURCE, IPV4_RATE_DATE)

    def instance(
        self, region: str, instance_type: str, vcpus: int, memory_gb: float = 0.0
    ) -> Quote:
        """Monthly on-demand Linux price of an instance type (memory is in the type's price)."""
        family = instance_type.split(".", maxsplit=1)[0]
        rate = self._rate(
            f"ec2:{region}:{instance_type}",
            {
                "instanceType": instance_type,
                "regionCode": region,
                "operatingSystem": "Linux",
                "tenancy": "Shared",
                "preInstalledSw": "NA",
                "capacitystatus": "Used",
                "licenseModel": "No License required",
            },
            lambda table: table["ec2_large_hour"][region][family] * vcpus / 2,
            region,
        )
        return combine(rate.usd * HOURS_PER_MONTH, [rate])

    # -- machinery -----------------------------------------------------------------------------

    @staticmethod
    def _billable_iops(volume_type: str, iops: int | None) -> int:
        if not iops:
            return 0
        if volume_type in ("io1", "io2"):
            return iops
        if volume_type == "gp3":
            return max(0, iops - GP3_FREE_IOPS)
        return 0

    def _rate(
        self,
        key: str,
        filters: dict[str, str],
        from_table: Callable[[dict[str, Any]], float],
        region: str,
    ) -> CachedPrice:
        if self._live:
            live = self._live_rate(key, filters)
            if live is not None:
                return live
        return _bundled_rate(from_table, region, key)

    def _live_rate(self, key: str, filters: dict[str, str]) -> CachedPrice | None:
        return self._cache.get(key, lambda: self._fetch(key, filters) if self._live else None)

    def _fetch(self, key: str, filters: dict[str, str]) -> CachedPrice | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if self._client is None:
                assert self._client_factory is not None
                self._client = self._client_factory()
            pages = self._client.get_paginator("get_products").paginate(
                ServiceCode="AmazonEC2",
                Filters=[
                    {"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()
                ],
                FormatVersion="aws_v1",
            )
            for page in pages:
                for product in page.get("PriceList", []):
                    usd, unit = _on_demand_price(json.loads(product))
                    if usd is not None:
                        return CachedPrice(usd, unit, LIVE_SOURCE, self._now)
        except (BotoCoreError, ClientError) as exc:
            self._live = False
            self.notes.append(
                f"AWS Pricing API unavailable ({exc}); using the bundled price table dated "
                f"{bundled_aws_prices()['date']}"
            )
            log.warning("pricing api unavailable", extra={"error": str(exc)})
            return None
        self.notes.append(f"AWS Pricing API has no price for {key}; using the bundled table")
        return None


def _on_demand_price(product: dict[str, Any]) -> tuple[float | None, str]:
    """The first non-zero on-demand USD price in a GetProducts PriceList entry."""
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            if str(dimension.get("beginRange", "0")) != "0":
                continue
            usd = float(dimension.get("pricePerUnit", {}).get("USD", "0"))
            if usd > 0:
                return usd, str(dimension.get("unit", ""))
    return None, ""


def _bundled_rate(
    from_table: Callable[[dict[str, Any]], float], region: str, key: str
) -> CachedPrice:
    table = bundled_aws_prices()
    fetched = datetime.fromisoformat(table["date"])
    try:
        return CachedPrice(float(from_table(table)), "", "bundled", fetched)
    except KeyError:
        pass
    try:
        usd = float(from_table(_with_region(table, region, "us-east-1")))
    except KeyError:
        raise PricingError(f"no price known for {key} (live API unavailable or silent)") from None
    return CachedPrice(usd, "", f"bundled (us-east-1 rate, {region} not in table)", fetched)


def _with_region(table: dict[str, Any], region: str, stand_in: str) -> dict[str, Any]:
    return {
        section: (
            {**values, region: values[stand_in]}
            if isinstance(values, dict) and stand_in in values
            else values
        )
        for section, values in table.items()
    }
