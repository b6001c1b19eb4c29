"""Azure prices: the Retail Prices API served by the Azure emulator (read with `requests`,
trusting the emulator's CA), remembered in the store, and the bundled dated table as the
fallback that every quote names.

Expected live prices come from the items the emulator seeds (costbot.emulators.azure_catalog)
or from items a test adds itself; expected fallback prices come from
costbot/data/azure_prices.json; tier boundaries are Azure's published managed-disk sizes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import costbot
from costbot.emulators.azure import AzureEmulator
from costbot.emulators.azure_catalog import (
    IP_PRICES,
    PREMIUM_SSD,
    REGIONS,
    VM_SIZES,
    price_item,
)
from costbot.errors import PricingError
from costbot.pricing.azure import LIVE_SOURCE, AzurePriceBook, disk_tier, vm_series
from costbot.store import Store

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
HOURS_PER_MONTH = 730
PRICES: dict[str, Any] = json.loads(
    (Path(costbot.__file__).parent / "data" / "azure_prices.json").read_text("utf-8")
)
SIZES = {size.name: size for size in VM_SIZES}
PREMIUM = dict(PREMIUM_SSD)
NEW_REGION = "northeurope"
"""A region neither the emulator's default items nor the bundled table know."""


@pytest.fixture
def emu() -> Iterator[AzureEmulator]:
    with AzureEmulator() as emulator:
        yield emulator


def book(
    emu: AzureEmulator,
    store: Store | None = None,
    now: datetime = NOW,
    *,
    endpoint: str | None = None,
    ca_bundle: Path | None = None,
) -> AzurePriceBook:
    return AzurePriceBook(
        live=True,
        store=store,
        endpoint=endpoint or emu.endpoint,
        ca_bundle=ca_bundle or Path(emu.ca_path),
        now=now,
    )


def price_calls(emu: AzureEmulator) -> list[Any]:
    return [r for r in emu.requests if r.path.lower().startswith("/api/retail/prices")]


def seeded_price(price: float, region: str) -> float:
    """What the emulator lists for an eastus price in `region` (its regional factor)."""
    return round(price * REGIONS[region][1], 6)


def item_in(region: str, **fields: Any) -> dict[str, Any]:
    """A Retail Prices item for a region the emulator has no defaults for."""
    base = price_item(
        "eastus",
        fields.pop("service"),
        fields.pop("product"),
        fields.pop("sku"),
        fields.pop("meter"),
        fields.pop("unit"),
        fields.pop("price"),
        fields.pop("arm_sku", ""),
    )
    return base | {"armRegionName": region, "location": "EU North"} | fields


# -- live prices -------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["eastus", "westeurope"])
def test_live_disk_price_is_the_tier_price_of_its_region(emu: AzureEmulator, region: str) -> None:
    prices = book(emu)

    quote = prices.volume(region, "Premium_LRS", 100, None, None)  # 100 GiB -> P10

    assert quote.monthly_usd == pytest.approx(seeded_price(PREMIUM["P10"], region))
    assert quote.source == LIVE_SOURCE
    assert quote.date == NOW.date().isoformat()
    assert prices.notes == []
    [call] = price_calls(emu)
    assert call.query["currencyCode"] == "USD"
    for clause in ("serviceName eq 'Storage'", f"armRegionName eq '{region}'", "'P10 LRS'"):
        assert clause in call.query["$filter"]


def test_live_zone_redundant_disk_price(emu: AzureEmulator) -> None:
    quote = book(emu).volume("eastus", "Premium_ZRS", 128, None, None)

    assert quote.monthly_usd == pytest.approx(round(PREMIUM["P10"] * 1.5, 4))
    assert quote.source == LIVE_SOURCE


def test_disk_operations_meter_on_the_same_sku_is_ignored(emu: AzureEmulator) -> None:
    emu.add_price(
        item_in(
            NEW_REGION,
            service="Storage",
            product="Premium SSD Managed Disks",
            sku="P10 LRS",
            meter="Disk Operations",
            unit="10K",
            price=0.0005,
        )
    )  # listed first, on the very SKU asked for
    emu.add_price(
        item_in(
            NEW_REGION,
            service="Storage",
            product="Premium SSD Managed Disks",
            sku="P10 LRS",
            meter="P10 LRS Disk",
            unit="1/Month",
            price=23.45,
        )
    )

    quote = book(emu).volume(NEW_REGION, "Premium_LRS", 128, None, None)

    assert quote.monthly_usd == pytest.approx(23.45)
    assert quote.source == LIVE_SOURCE


def test_live_vm_price_is_linux_pay_as_you_go(emu: AzureEmulator) -> None:
    size = SIZES["Standard_D8s_v5"]

    quote = book(emu).instance("westeurope", size.name, size.cores)

    expected = seeded_price(size.linux_hourly, "westeurope") * HOURS_PER_MONTH
    assert quote.monthly_usd == pytest.approx(expected)
    assert quote.source == LIVE_SOURCE


def test_windows_spot_low_priority_and_reservation_rows_are_ignored(emu: AzureEmulator) -> None:
    common = {"service": "Virtual Machines", "unit": "1 Hour", "arm_sku": "Standard_D8s_v5"}
    product = "Virtual Machines DSv5 Series"
    decoys = [
        {"product": f"{product} Windows", "sku": "D8s v5", "meter": "D8s v5", "price": 0.9},
        {"product": product, "sku": "D8s v5 Spot", "meter": "D8s v5 Spot", "price": 0.05},
        {"product": product, "sku": "D8s v5 Low Priority", "meter": "D8s v5", "price": 0.07},
        {"product": product, "sku": "D8s v5", "meter": "D8s v5", "price": 1900.0,
         "type": "Reservation", "reservationTerm": "1 Year"},
        {"product": product, "sku": "D8s v5", "meter": "D8s v5", "price": 0.0,
         "type": "DevTestConsumption"},
    ]  # fmt: skip
    for decoy in decoys:
        emu.add_price(item_in(NEW_REGION, **common, **decoy))
    emu.add_price(
        item_in(NEW_REGION, **common, product=product, sku="D8s v5", meter="D8s v5", price=0.4321)
    )

    quote = book(emu).instance(NEW_REGION, "Standard_D8s_v5", 8)

    assert quote.monthly_usd == pytest.approx(0.4321 * HOURS_PER_MONTH)
    assert quote.source == LIVE_SOURCE


@pytest.mark.parametrize("sku", ["Standard", "Basic"])
def test_live_public_ip_price_is_the_static_ipv4_meter(emu: AzureEmulator, sku: str) -> None:
    [hourly] = [h for s, meter, h in IP_PRICES if s == sku and "Static" in meter]

    quote = book(emu).public_ip("westeurope", sku)

    assert quote.monthly_usd == pytest.approx(seeded_price(hourly, "westeurope") * 730)
    assert quote.source == LIVE_SOURCE


def test_a_dynamic_ip_meter_listed_first_is_not_taken_for_the_static_one(
    emu: AzureEmulator,
) -> None:
    ip = {"service": "Virtual Network", "product": "IP Addresses", "unit": "1 Hour", "sku": "Basic"}
    emu.add_price(item_in(NEW_REGION, **ip, meter="Basic IPv4 Dynamic Public IP", price=0.009))
    emu.add_price(item_in(NEW_REGION, **ip, meter="Basic IPv4 Static Public IP", price=0.0031))

    quote = book(emu).public_ip(NEW_REGION, "Basic")

    assert quote.monthly_usd == pytest.approx(0.0031 * HOURS_PER_MONTH)


def test_the_public_ip_sku_defaults_to_standard(emu: AzureEmulator) -> None:
    assert book(emu).public_ip("eastus") == book(emu).public_ip("eastus", "Standard")


def test_a_price_is_fetched_once_per_book(emu: AzureEmulator) -> None:
    prices = book(emu)

    first = prices.volume("eastus", "Premium_LRS", 128, None, None)
    again = prices.volume("eastus", "Premium_LRS", 120, None, None)  # the same tier

    assert first == again
    assert len(price_calls(emu)) == 1


# -- the store cache ---------------------------------------------------------------------------


def test_a_second_book_answers_from_the_store_with_the_emulator_stopped(
    emu: AzureEmulator, store: Store
) -> None:
    size = SIZES["Standard_D4s_v5"]
    first = book(emu, store)
    disk = first.volume("westeurope", "Premium_LRS", 128, None, None)
    vm = first.instance("westeurope", size.name, size.cores)
    ip = first.public_ip("westeurope", "Standard")
    endpoint, ca = emu.endpoint, Path(emu.ca_path)
    emu.stop()

    later = book(emu, store, NOW + timedelta(days=3), endpoint=endpoint, ca_bundle=ca)

    assert later.volume("westeurope", "Premium_LRS", 128, None, None) == disk
    assert later.instance("westeurope", size.name, size.cores) == vm
    assert later.public_ip("westeurope", "Standard") == ip
    assert disk.source == LIVE_SOURCE
    assert disk.date == NOW.date().isoformat()  # the date the price was fetched, not today
    assert later.notes == []


def test_a_cached_price_answers_while_the_api_fails(emu: AzureEmulator, store: Store) -> None:
    cached = book(emu, store).volume("eastus", "StandardSSD_LRS", 200, None, None)
    emu.fail_prices(500, "Internal error")
    calls = len(price_calls(emu))

    again = book(emu, store, NOW + timedelta(days=6)).volume(
        "eastus", "StandardSSD_LRS", 200, None, None
    )

    assert again == cached
    assert again.source == LIVE_SOURCE
    assert len(price_calls(emu)) == calls  # not even asked


def test_a_stale_cached_price_is_not_used(emu: AzureEmulator, store: Store) -> None:
    book(emu, store).volume("eastus", "Premium_LRS", 128, None, None)
    emu.fail_prices(503, "Service Unavailable")

    stale = book(emu, store, NOW + timedelta(days=8))  # default cache_days: 7
    quote = stale.volume("eastus", "Premium_LRS", 128, None, None)

    assert quote.source == "bundled"
    assert quote.monthly_usd == pytest.approx(PRICES["disk_month"]["eastus"]["P10 LRS"])
    assert stale.notes


# -- the bundled fallback ----------------------------------------------------------------------


def test_api_failure_falls_back_to_the_bundled_table_and_says_so(emu: AzureEmulator) -> None:
    emu.fail_prices(503, "Service Unavailable")
    prices = book(emu)
    size = SIZES["Standard_D8s_v5"]

    disk = prices.volume("eastus", "Premium_LRS", 256, None, None)
    vm = prices.instance("eastus", size.name, size.cores)
    ip = prices.public_ip("eastus", "Standard")

    assert disk.monthly_usd == pytest.approx(PRICES["disk_month"]["eastus"]["P15 LRS"])
    vcpu_hour = PRICES["vcpu_hour"]["eastus"]["Standard_D*s_v5"]
    assert vm.monthly_usd == pytest.approx(vcpu_hour * size.cores * HOURS_PER_MONTH)
    assert ip.monthly_usd == pytest.approx(PRICES["ip_hour"]["eastus"]["Standard"] * 730)
    for quote in (disk, vm, ip):
        assert (quote.source, quote.date) == ("bundled", PRICES["date"])
    [note] = prices.notes
    assert "unavailable" in note
    assert PRICES["date"] in note
    assert len(price_calls(emu)) == 1  # a failed API is not asked again for every lookup


def test_unreachable_api_falls_back_to_the_bundled_table(
    emu: AzureEmulator, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.pem"
    shutil.copy(emu.ca_path, ca)
    endpoint = emu.endpoint
    emu.stop()  # connection refused from now on

    prices = book(emu, endpoint=endpoint, ca_bundle=ca)
    quote = prices.public_ip("westeurope", "Standard")

    assert quote.source == "bundled"
    assert quote.monthly_usd == pytest.approx(PRICES["ip_hour"]["westeurope"]["Standard"] * 730)
    assert any("unavailable" in note for note in prices.notes)


def test_a_size_the_api_does_not_list_is_priced_from_the_bundled_series_rate(
    emu: AzureEmulator,
) -> None:
    assert "Standard_D8ds_v5" not in SIZES  # the emulator does not list it
    prices = book(emu)

    quote = prices.instance("eastus", "Standard_D8ds_v5", 8)

    vcpu_hour = PRICES["vcpu_hour"]["eastus"]["Standard_D*ds_v5"]
    assert quote.monthly_usd == pytest.approx(vcpu_hour * 8 * HOURS_PER_MONTH)
    assert quote.source == "bundled"
    assert any("Standard_D8ds_v5" in note for note in prices.notes)


def test_a_region_missing_from_the_bundled_table_uses_the_eastus_rate_and_says_so() -> None:
    quote = AzurePriceBook(live=False).public_ip("brazilsouth", "Standard")

    assert quote.monthly_usd == pytest.approx(PRICES["ip_hour"]["eastus"]["Standard"] * 730)
    assert "eastus" in quote.source
    assert "brazilsouth" in quote.source


def test_a_bundled_book_never_calls_the_api(emu: AzureEmulator) -> None:
    prices = AzurePriceBook(live=False, endpoint=emu.endpoint, ca_bundle=Path(emu.ca_path))

    quote = prices.volume("westeurope", "Standard_LRS", 20, None, None)

    assert quote.monthly_usd == pytest.approx(PRICES["disk_month"]["westeurope"]["S4 LRS"])
    assert price_calls(emu) == []


def test_a_size_of_an_unknown_series_has_no_price() -> None:
    with pytest.raises(PricingError, match="Standard_NC24ads_A100_v4"):
        AzurePriceBook(live=False).instance("eastus", "Standard_NC24ads_A100_v4", 24)


# -- disk tiers and series ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sku", "size_gb", "tier"),
    [
        ("Premium_LRS", 1, "P1 LRS"),
        ("Premium_LRS", 4, "P1 LRS"),
        ("Premium_LRS", 5, "P2 LRS"),
        ("Premium_LRS", 64, "P6 LRS"),
        ("Premium_LRS", 65, "P10 LRS"),
        ("Premium_LRS", 128, "P10 LRS"),
        ("Premium_LRS", 129, "P15 LRS"),
        ("Premium_LRS", 1024, "P30 LRS"),
        ("Premium_LRS", 32767, "P80 LRS"),
        ("Premium_ZRS", 129, "P15 ZRS"),
        ("StandardSSD_LRS", 4, "E1 LRS"),
        ("StandardSSD_LRS", 128, "E10 LRS"),
        ("StandardSSD_ZRS", 513, "E30 ZRS"),
        ("Standard_LRS", 1, "S4 LRS"),
        ("Standard_LRS", 20, "S4 LRS"),
        ("Standard_LRS", 32, "S4 LRS"),
        ("Standard_LRS", 33, "S6 LRS"),
        ("Standard_LRS", 4096, "S50 LRS"),
    ],
)
def test_disk_tier_follows_azures_size_boundaries(sku: str, size_gb: int, tier: str) -> None:
    assert disk_tier(sku, size_gb) == tier


def test_a_disk_larger_than_any_tier_is_a_pricing_error() -> None:
    with pytest.raises(PricingError, match="32768"):
        disk_tier("Premium_LRS", 32768)


@pytest.mark.parametrize("sku", ["UltraSSD_LRS", "PremiumV2_LRS"])
def test_per_gib_disk_skus_are_a_pricing_error(emu: AzureEmulator, sku: str) -> None:
    with pytest.raises(PricingError, match=sku):
        disk_tier(sku, 512)
    with pytest.raises(PricingError, match=sku):
        book(emu).volume("eastus", sku, 512, 20000, 1000)
    with pytest.raises(PricingError, match=sku):
        AzurePriceBook(live=False).volume("eastus", sku, 512, 20000, 1000)
    assert price_calls(emu) == []


@pytest.mark.parametrize(
    ("size", "series"),
    [
        ("Standard_D8s_v5", "Standard_D*s_v5"),
        ("Standard_D2s_v5", "Standard_D*s_v5"),
        ("Standard_D8as_v5", "Standard_D*as_v5"),
        ("Standard_F16s_v2", "Standard_F*s_v2"),
        ("Standard_B2ms", "Standard_B*ms"),
        ("Standard_E8-4s_v5", None),
        ("Standard_NC24ads_A100_v4", None),
    ],
)
def test_vm_series(size: str, series: str | None) -> None:
    assert vm_series(size) == series
