"""GCP prices: the Cloud Billing Catalog served by the GCP emulator and read through the real
billing_v1.CloudCatalogClient (REST, AnonymousCredentials), remembered in the store, and the
bundled dated table as the fallback that every quote names.

Expected live prices come from the SKUs the emulator seeds (costbot.emulators.gcp_billing) or
from SKUs a test adds itself; expected fallback prices come from costbot/data/gcp_prices.json.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud import billing_v1

import costbot
from costbot.config import GcpConfig
from costbot.emulators.gcp import GcpEmulator
from costbot.emulators.gcp_billing import REGIONAL_SKUS, make_sku, money
from costbot.errors import PricingError
from costbot.pricing.gcp import (
    COMPUTE_SERVICE,
    LIVE_SOURCE,
    GcpPriceBook,
    machine_family,
    parse_catalog,
)
from costbot.providers.gcp_clients import GcpClients
from costbot.store import Store

NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
HOURS_PER_MONTH = 730
PRICES: dict[str, Any] = json.loads(
    (Path(costbot.__file__).parent / "data" / "gcp_prices.json").read_text("utf-8")
)
SEEDED = {prefix: (us, eu) for prefix, _family, _group, _unit, us, eu in REGIONAL_SKUS}
"""The emulator's on-demand list prices by SKU description prefix: (us regions, europe-west1)."""
NEW_REGION = "asia-east1"
"""A region neither the emulator's default SKUs nor the bundled table know."""


@pytest.fixture
def emu() -> Iterator[GcpEmulator]:
    with GcpEmulator() as emulator:
        yield emulator


def clients(emu: GcpEmulator) -> GcpClients:
    config = GcpConfig(
        projects=["proj-alpha"],
        credentials="anonymous",
        endpoints={"compute": emu.endpoint, "billing": emu.endpoint},
    )
    return GcpClients(config)


def book(
    emu: GcpEmulator, store: Store | None = None, now: datetime = NOW, *, cache_days: int = 7
) -> GcpPriceBook:
    return GcpPriceBook(
        live=True,
        store=store,
        client_factory=clients(emu).catalog,
        cache_days=cache_days,
        now=now,
    )


def sku_requests(emu: GcpEmulator) -> int:
    return sum(1 for r in emu.requests if r.path.endswith("/skus"))


def sku(description: str, regions: list[str], price: str, **kw: Any) -> dict[str, Any]:
    """A Compute Engine SKU JSON dict priced per hour (cores) unless told otherwise."""
    made = make_sku(
        description,
        region=regions[0],
        family=kw.pop("family", "Compute"),
        group=kw.pop("group", "CPU"),
        usage_unit=kw.pop("usage_unit", "h"),
        tiers=kw.pop("tiers", ((0, price),)),
        **kw,
    )
    made["serviceRegions"] = regions
    return made


def set_price(emu: GcpEmulator, description: str, region: str, price: str) -> None:
    """Change the list price of one seeded SKU in the emulator's catalogue."""
    [target] = [
        s for s in emu.skus if s["description"] == description and s["serviceRegions"] == [region]
    ]
    target["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"] = money(price)


def add_asia(emu: GcpEmulator) -> None:
    """N2 core/RAM, pd-ssd and static IP prices for NEW_REGION (and asia-northeast1 for cores)."""
    emu.add_sku(sku("N2 Instance Core running in Asia", [NEW_REGION, "asia-northeast1"], "0.0401"))
    emu.add_sku(
        sku(
            "N2 Instance Ram running in Asia",
            [NEW_REGION],
            "0.0052",
            group="RAM",
            usage_unit="GiBy.h",
        )
    )
    emu.add_sku(
        sku(
            "SSD backed PD Capacity in Asia",
            [NEW_REGION],
            "0.2",
            family="Storage",
            group="SSD",
            usage_unit="GiBy.mo",
        )
    )
    emu.add_sku(
        sku("Static Ip Charge in Asia", [NEW_REGION], "0.013", family="Network", group="IpAddress")
    )


# -- live prices -------------------------------------------------------------------------------


def test_machine_types_are_priced_per_core_and_gib_from_the_catalog(emu: GcpEmulator) -> None:
    add_asia(emu)
    prices = book(emu)

    asia = prices.instance(NEW_REGION, "n2-standard-8", 8, 32.0)
    us = prices.instance("us-central1", "n2-highmem-4", 4, 32.0)
    eu = prices.instance("europe-west1", "e2-standard-2", 2, 8.0)

    assert asia.monthly_usd == pytest.approx((8 * 0.0401 + 32 * 0.0052) * HOURS_PER_MONTH)
    core, ram = (float(SEEDED[f"N2 Instance {w} running"][0]) for w in ("Core", "Ram"))
    assert us.monthly_usd == pytest.approx((4 * core + 32 * ram) * HOURS_PER_MONTH)
    core, ram = (float(SEEDED[f"E2 Instance {w} running"][1]) for w in ("Core", "Ram"))
    assert eu.monthly_usd == pytest.approx((2 * core + 8 * ram) * HOURS_PER_MONTH)
    assert {asia.source, us.source, eu.source} == {LIVE_SOURCE}
    assert asia.date == NOW.date().isoformat()
    assert prices.notes == []
    assert sku_requests(emu) == 1  # the catalogue is read once per book


def test_a_sku_is_keyed_by_every_one_of_its_service_regions(emu: GcpEmulator) -> None:
    add_asia(emu)
    emu.add_sku(
        sku(
            "N2 Instance Ram running in Asia",
            ["asia-northeast1"],
            "0.0061",
            group="RAM",
            usage_unit="GiBy.h",
        )
    )
    prices = book(emu)

    quote = prices.instance("asia-northeast1", "n2-standard-2", 2, 8.0)

    assert quote.monthly_usd == pytest.approx((2 * 0.0401 + 8 * 0.0061) * HOURS_PER_MONTH)
    assert quote.source == LIVE_SOURCE


def test_disks_and_addresses_are_priced_from_the_catalog(emu: GcpEmulator) -> None:
    add_asia(emu)
    set_price(emu, "Static Ip Charge in Americas", "us-central1", "0.012")
    prices = book(emu)

    ssd = prices.volume(NEW_REGION, "pd-ssd", 250, None, None)
    balanced = prices.volume("europe-west1", "pd-balanced", 100, None, None)
    ip = prices.public_ip(NEW_REGION)
    global_ip = prices.public_ip("global")
    east_ip = prices.public_ip("us-east1")

    assert ssd.monthly_usd == pytest.approx(250 * 0.2)
    assert balanced.monthly_usd == pytest.approx(100 * float(SEEDED["Balanced PD Capacity"][1]))
    assert ip.monthly_usd == pytest.approx(0.013 * HOURS_PER_MONTH)
    # A global address has no region of its own: it is priced at the us-central1 rate.
    assert global_ip.monthly_usd == pytest.approx(0.012 * HOURS_PER_MONTH)
    assert east_ip.monthly_usd == pytest.approx(float(SEEDED["Static Ip Charge"][0]) * 730)
    assert {q.source for q in (ssd, balanced, ip, global_ip, east_ip)} == {LIVE_SOURCE}


def test_amd_and_predefined_sku_descriptions_map_to_their_family(emu: GcpEmulator) -> None:
    emu.add_sku(sku("N2D AMD Instance Core running in Americas", ["us-central1"], "0.0299"))
    emu.add_sku(
        sku(
            "N2D AMD Instance Ram running in Americas",
            ["us-central1"],
            "0.0041",
            group="RAM",
            usage_unit="GiBy.h",
        )
    )
    prices = book(emu)

    n2d = prices.instance("us-central1", "n2d-standard-4", 4, 16.0)
    n1 = prices.instance("us-central1", "n1-standard-4", 4, 15.0)

    assert n2d.monthly_usd == pytest.approx((4 * 0.0299 + 16 * 0.0041) * HOURS_PER_MONTH)
    core, ram = (float(SEEDED[f"N1 Predefined Instance {w} running"][0]) for w in ("Core", "Ram"))
    assert n1.monthly_usd == pytest.approx((4 * core + 15 * ram) * HOURS_PER_MONTH)
    assert {n2d.source, n1.source} == {LIVE_SOURCE}


def test_preemptible_commitment_and_egress_skus_are_ignored(emu: GcpEmulator) -> None:
    # Decoys first, so a parser that did not skip them would find them before the real SKU.
    decoys = [
        sku(
            "N2 Instance Core running in Americas",
            ["us-central1"],
            "0.00765",
            usage_type="Preemptible",
        ),
        sku(
            "N2 Instance Core running in Americas",
            ["us-central1"],
            "0.019915",
            usage_type="Commit1Yr",
        ),
    ]
    emu.skus[:0] = decoys
    catalog = clients(emu).catalog()

    rates = parse_catalog(catalog.list_skus(parent=COMPUTE_SERVICE), NOW)

    regions = {"us-central1": 0, "us-east1": 0, "europe-west1": 1}
    disk_types = {
        "Storage PD Capacity": "pd-standard",
        "Balanced PD Capacity": "pd-balanced",
        "SSD backed PD Capacity": "pd-ssd",
        "Extreme PD Capacity": "pd-extreme",
    }
    expected: dict[str, float] = {}
    for region, column in regions.items():
        for prefix, disk_type in disk_types.items():
            expected[f"gcp:pd:{region}:{disk_type}"] = float(SEEDED[prefix][column])
        expected[f"gcp:ip:{region}"] = float(SEEDED["Static Ip Charge"][column])
        for family, name in (("n2", "N2"), ("e2", "E2"), ("n1", "N1 Predefined"), ("c3", "C3")):
            for what in ("Core", "Ram"):
                key = f"gcp:{what.lower()}:{region}:{family}"
                expected[key] = float(SEEDED[f"{name} Instance {what} running"][column])
    assert {k: v.usd for k, v in rates.items()} == pytest.approx(expected)
    assert {v.source for v in rates.values()} == {LIVE_SOURCE}


def test_the_first_paid_tier_is_the_price(emu: GcpEmulator) -> None:
    emu.add_sku(
        sku(
            "Balanced PD Capacity in Asia",
            [NEW_REGION],
            "0",
            family="Storage",
            group="SSD",
            usage_unit="GiBy.mo",
            tiers=((0, "0"), (30, "0.125")),
        )
    )

    quote = book(emu).volume(NEW_REGION, "pd-balanced", 40, None, None)

    assert quote.monthly_usd == pytest.approx(40 * 0.125)


# -- the store cache ---------------------------------------------------------------------------


def test_live_rates_are_cached_in_the_store_and_outlive_a_catalog_outage(
    emu: GcpEmulator, store: Store
) -> None:
    add_asia(emu)
    first = book(emu, store)
    live = first.instance(NEW_REGION, "n2-standard-4", 4, 16.0)
    cached = store.cached_price(f"gcp:core:{NEW_REGION}:n2")
    assert cached is not None
    assert (cached.usd, cached.source) == (pytest.approx(0.0401), LIVE_SOURCE)
    emu.fail_billing(403, "Cloud Billing API has not been used in project")
    before = sku_requests(emu)

    second = book(emu, store, NOW + timedelta(days=2))
    again = second.instance(NEW_REGION, "n2-standard-4", 4, 16.0)

    assert again == live
    assert second.notes == []
    assert sku_requests(emu) == before  # answered from the store, not the catalogue


def test_an_expired_cache_entry_is_not_used(emu: GcpEmulator, store: Store) -> None:
    add_asia(emu)
    book(emu, store).public_ip(NEW_REGION)
    emu.fail_billing(403, "Cloud Billing API has not been used in project")

    later = book(emu, store, NOW + timedelta(days=8), cache_days=7)
    quote = later.public_ip(NEW_REGION)

    assert quote.monthly_usd == pytest.approx(
        PRICES["static_ip_hour"]["us-central1"] * HOURS_PER_MONTH
    )
    assert quote.source.startswith("bundled")
    assert any("unavailable" in note for note in later.notes)


# -- fallback ----------------------------------------------------------------------------------


def test_a_catalog_failure_falls_back_to_the_bundled_table_and_says_so(emu: GcpEmulator) -> None:
    emu.fail_billing(403, "Cloud Billing API has not been used in project")
    prices = book(emu)

    disk = prices.volume("europe-west1", "pd-ssd", 100, None, None)
    vm = prices.instance("us-east1", "n2-standard-8", 8, 32.0)

    assert disk.monthly_usd == pytest.approx(100 * PRICES["pd_gib_month"]["europe-west1"]["pd-ssd"])
    core, ram = PRICES["core_hour"]["us-east1"]["n2"], PRICES["ram_gib_hour"]["us-east1"]["n2"]
    assert vm.monthly_usd == pytest.approx((8 * core + 32 * ram) * HOURS_PER_MONTH)
    assert (disk.source, disk.date) == ("bundled", PRICES["date"])
    assert vm.source == "bundled"
    [note] = prices.notes
    assert "unavailable" in note and "not been used" in note and PRICES["date"] in note
    assert sku_requests(emu) == 1  # one failed attempt, not one per price


def dead_endpoint() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_catalog_falls_back_to_the_bundled_table() -> None:
    config = GcpConfig(
        projects=["proj-alpha"], credentials="anonymous", endpoints={"billing": dead_endpoint()}
    )
    prices = GcpPriceBook(live=True, client_factory=GcpClients(config).catalog, now=NOW)

    quote = prices.volume("us-central1", "pd-standard", 10, None, None)  # used to raise

    assert quote.monthly_usd == pytest.approx(
        10 * PRICES["pd_gib_month"]["us-central1"]["pd-standard"]
    )
    assert quote.source == "bundled"
    assert prices.notes and PRICES["date"] in prices.notes[0]


def test_a_region_missing_from_the_bundled_table_says_whose_rate_it_used() -> None:
    quote = GcpPriceBook(live=False).public_ip(NEW_REGION)

    assert quote.monthly_usd == pytest.approx(
        PRICES["static_ip_hour"]["us-central1"] * HOURS_PER_MONTH
    )
    assert "us-central1" in quote.source and NEW_REGION in quote.source


def test_the_bundled_book_never_calls_the_catalog(emu: GcpEmulator) -> None:
    prices = GcpPriceBook(live=False, client_factory=clients(emu).catalog)

    quote = prices.volume("us-central1", "pd-standard", 500, None, None)

    assert quote.monthly_usd == pytest.approx(
        500 * PRICES["pd_gib_month"]["us-central1"]["pd-standard"]
    )
    assert emu.requests == []


@pytest.mark.parametrize("live", [True, False])
def test_an_unknown_machine_family_is_a_pricing_error(emu: GcpEmulator, live: bool) -> None:
    prices = book(emu) if live else GcpPriceBook(live=False)

    with pytest.raises(PricingError, match="m1"):
        prices.instance("us-central1", "m1-megamem-96", 96, 1433.6)


@pytest.mark.parametrize(
    ("machine_type", "family"),
    [
        ("n2-standard-8", "n2"),
        ("e2-small", "e2"),
        ("custom-4-16384", "n1"),
        ("c3-highcpu-22", "c3"),
    ],
)
def test_machine_family(machine_type: str, family: str) -> None:
    assert machine_family(machine_type) == family


def test_the_emulator_catalog_is_what_the_real_client_reads(emu: GcpEmulator) -> None:
    catalog = clients(emu).catalog()

    assert isinstance(catalog, billing_v1.CloudCatalogClient)
    assert len(list(catalog.list_skus(parent=COMPUTE_SERVICE))) == len(emu.skus)
