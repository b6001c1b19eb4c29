"""Azure inventory and the waste rules, driven through run_scan (and AzureProvider.collect)
against the local Azure emulator with the REAL azure-mgmt clients.

The clients trust the emulator's own CA, authenticate with its offline credential and never
retry. Every expectation is computed from what the test seeded: tier and vCPU prices read
straight from costbot/data/azure_prices.json, the emulator's VM size catalogue and Retail Prices
items, and plain date arithmetic.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

import costbot
from costbot.config import AzureConfig, Config
from costbot.emulators.azure import AzureEmulator
from costbot.emulators.azure_catalog import IP_PRICES, REGIONS, VM_SIZES
from costbot.model import Finding, Inventory, Kind, Provider, Unit
from costbot.pricing.azure import LIVE_SOURCE, AzurePriceBook
from costbot.providers.azure import AzureProvider
from costbot.providers.azure_clients import AzureClients
from costbot.scan import ScanReport, run_scan
from costbot.store import Store
from tests.conftest import make_config

SUB = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
RG = "rg-app"
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
HOURS_PER_MONTH = 730
PRICES: dict[str, Any] = json.loads(
    (Path(costbot.__file__).parent / "data" / "azure_prices.json").read_text("utf-8")
)
SIZES = {size.name: size for size in VM_SIZES}
DS_V5 = re.compile(r"^Standard_D(\d+)s_v5$")


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[AzureEmulator]:
    with AzureEmulator() as emulator:
        yield emulator


def arm_id(kind: str, name: str, sub: str = SUB, rg: str = RG) -> str:
    provider = "Microsoft.Network" if kind == "publicIPAddresses" else "Microsoft.Compute"
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def azure_config(emu: AzureEmulator, subs: Sequence[str] = (SUB,)) -> AzureConfig:
    return AzureConfig(
        subscriptions=list(subs),
        management_endpoint=emu.endpoint,
        ca_bundle=Path(emu.ca_path),
    )


def config(emu: AzureEmulator, subs: Sequence[str] = (SUB,), **rules: Any) -> Config:
    """A config scanning `subs` in the emulator; `rules` override the waste rules' sections."""
    azure = azure_config(emu, subs).model_dump(mode="json", exclude_defaults=True)
    data: dict[str, Any] = {"providers": {"azure": azure}}
    if rules:
        data["rules"] = rules
    return make_config(yaml.safe_dump(data))


def provider(emu: AzureEmulator, cfg: Config) -> AzureProvider:
    assert cfg.providers.azure is not None
    clients = AzureClients(
        cfg.providers.azure, credential=emu.credential(), retry_total=0, polling_interval_s=0
    )
    return AzureProvider(cfg.providers.azure, cfg.rules.oversized_instance, clients=clients)


@dataclass
class Scanner:
    """The emulator, a store, and scans of the seeded subscriptions."""

    emu: AzureEmulator
    store: Store

    def scan(
        self,
        cfg: Config | None = None,
        now: datetime = NOW,
        *,
        live: bool = False,
    ) -> ScanReport:
        cfg = cfg or config(self.emu)
        book = AzurePriceBook(
            live=live,
            store=self.store,
            endpoint=self.emu.endpoint,
            ca_bundle=Path(self.emu.ca_path),
            now=now,
        )
        return run_scan(cfg, self.store, [provider(self.emu, cfg)], {Provider.AZURE: book}, now=now)

    def collect(self, cfg: Config | None = None, now: datetime = NOW) -> Inventory:
        adapter = provider(self.emu, cfg or config(self.emu))
        [unit], failures = adapter.units()
        assert list(failures) == []
        return adapter.collect(unit, now)


@pytest.fixture
def azure(emu: AzureEmulator, store: Store) -> Scanner:
    return Scanner(emu, store)


def found(report: ScanReport, kind: Kind) -> dict[str, Finding]:
    return {f.resource_id: f for f in report.findings if f.kind is kind}


def skipped(report: ScanReport, kind: Kind, *words: str) -> int:
    """How many resources of `kind` the scan skipped with a reason containing every word."""
    return sum(
        n
        for unit in report.units
        for key, n in unit.skipped.items()
        if key.startswith(f"{kind}:") and all(w in key for w in words)
    )


def assert_ok(report: ScanReport) -> None:
    assert report.units, "the scan produced no units"
    assert not report.failed, [u.error for u in report.failed]


def disk(
    emu: AzureEmulator,
    name: str,
    *,
    detached_days: float | None = 30,
    location: str = "eastus",
    sub: str = SUB,
    **kwargs: Any,
) -> str:
    """A managed disk created 90 days ago, last detached `detached_days` ago (None: never)."""
    ownership = None if detached_days is None else NOW - timedelta(days=detached_days)
    return emu.add_disk(
        sub,
        RG,
        name,
        location,
        created=NOW - timedelta(days=90),
        last_ownership_update=ownership,
        **kwargs,
    )


def cpu_hours(
    emu: AzureEmulator, vm_id: str, avg: float, peak: float, days: int = 14
) -> list[tuple[datetime, float, float]]:
    """Hourly Percentage CPU for the `days` days before NOW: every hour avg%, peaking at peak%."""
    hours = [(NOW - timedelta(hours=h), avg, peak) for h in range(1, days * 24 + 1)]
    emu.set_cpu(vm_id, hours)
    return hours


def vm(
    emu: AzureEmulator,
    name: str,
    size: str = "Standard_D8s_v5",
    *,
    age_days: float = 90,
    location: str = "eastus",
    **kwargs: Any,
) -> str:
    return emu.add_vm(
        SUB, RG, name, location, size=size, created=NOW - timedelta(days=age_days), **kwargs
    )


def ds_v5_target(current: str, avg: float, peak: float) -> str:
    """The smallest Ds_v5 size in the emulator's catalogue keeping peak x old/new <= 80 % and
    avg x old/new <= 40 % (the documented defaults)."""
    old = SIZES[current].cores
    fits = [
        size
        for size in VM_SIZES
        if DS_V5.match(size.name)
        and size.cores < old
        and peak * old / size.cores <= 80
        and avg * old / size.cores <= 40
    ]
    return min(fits, key=lambda s: s.cores).name


def bundled_vm_monthly(size: str, region: str = "eastus") -> float:
    return float(PRICES["vcpu_hour"][region]["Standard_D*s_v5"]) * SIZES[size].cores * 730


def metrics_requests(emu: AzureEmulator) -> list[Any]:
    """Azure Monitor metrics queries, whatever scope they were made at."""
    return [r for r in emu.requests if r.path.lower().endswith("/microsoft.insights/metrics")]


def requests_to(emu: AzureEmulator, suffix: str) -> list[Any]:
    return [r for r in emu.requests if r.method == "GET" and r.path.lower().endswith(suffix)]


# -- units -------------------------------------------------------------------------------------


def test_each_subscription_is_one_unit_covering_every_location(emu: AzureEmulator) -> None:
    units, failures = provider(emu, config(emu, (SUB, OTHER))).units()

    assert units == [Unit(Provider.AZURE, SUB, "*"), Unit(Provider.AZURE, OTHER, "*")]
    assert list(failures) == []
    assert emu.requests == []  # listing units costs no call


# -- public IPs --------------------------------------------------------------------------------


def test_public_ip_holders_are_not_findings_only_the_unused_one_is(
    azure: Scanner, emu: AzureEmulator
) -> None:
    nic = arm_id("networkInterfaces", "nic1") + "/ipConfigurations/ipconfig1"
    nat = arm_id("natGateways", "nat1").replace("Microsoft.Compute", "Microsoft.Network")
    prefix = arm_id("publicIPPrefixes", "pfx1").replace("Microsoft.Compute", "Microsoft.Network")
    on_nic = emu.add_public_ip(SUB, RG, "on-nic", "eastus", ip="20.0.0.1", ip_configuration=nic)
    on_nat = emu.add_public_ip(SUB, RG, "on-nat", "eastus", ip="20.0.0.2", nat_gateway=nat)
    from_prefix = emu.add_public_ip(SUB, RG, "from-prefix", "eastus", ip="20.0.0.3", prefix=prefix)
    free = emu.add_public_ip(SUB, RG, "free", "eastus", ip="20.0.0.4", sku="Standard")
    cfg = config(emu, unattached_ip={"min_unattached_days": 0})

    report = azure.scan(cfg)

    assert_ok(report)
    assert set(found(report, Kind.UNATTACHED_IP)) == {free}
    finding = found(report, Kind.UNATTACHED_IP)[free]
    rate = float(PRICES["ip_hour"]["eastus"]["Standard"])
    assert finding.monthly_cost_usd == pytest.approx(rate * HOURS_PER_MONTH)
    assert finding.monthly_savings_usd == pytest.approx(rate * HOURS_PER_MONTH)
    assert finding.price_source == "bundled"
    assert finding.price_date == PRICES["date"]
    assert finding.details["ip"] == "20.0.0.4"
    assert finding.details["sku"] == "Standard"
    assert "20.0.0.4" in finding.reason
    assert report.units[0].resources["addresses"] == 4
    holders = {a.resource_id: a.details["associated_with"] for a in azure.collect(cfg).addresses}
    assert holders == {on_nic: [nic], on_nat: [nat], from_prefix: [prefix], free: []}


def test_unused_public_ip_is_priced_from_the_live_retail_prices(
    azure: Scanner, emu: AzureEmulator
) -> None:
    basic = emu.add_public_ip(SUB, RG, "basic", "westeurope", ip="51.0.0.1", sku="Basic")
    standard = emu.add_public_ip(SUB, RG, "std", "westeurope", ip="51.0.0.2", sku="Standard")
    cfg = config(emu, unattached_ip={"min_unattached_days": 0})

    report = azure.scan(cfg, live=True)

    assert_ok(report)
    factor = REGIONS["westeurope"][1]
    static = {sku: hourly for sku, meter, hourly in IP_PRICES if "Static" in meter}
    ips = found(report, Kind.UNATTACHED_IP)
    for resource_id, sku in ((basic, "Basic"), (standard, "Standard")):
        expected = round(static[sku] * factor, 6) * HOURS_PER_MONTH
        assert ips[resource_id].monthly_cost_usd == pytest.approx(expected)
        assert ips[resource_id].price_source == LIVE_SOURCE
        assert ips[resource_id].price_date == NOW.date().isoformat()
        assert ips[resource_id].unit.region == "westeurope"


def test_public_ip_unused_for_less_than_a_day_is_not_yet_a_finding(
    azure: Scanner, emu: AzureEmulator
) -> None:
    free = emu.add_public_ip(SUB, RG, "free", "eastus")

    first = azure.scan(now=NOW - timedelta(hours=12))
    second = azure.scan(now=NOW + timedelta(hours=13))

    assert_ok(first)
    assert found(first, Kind.UNATTACHED_IP) == {}
    assert found(second, Kind.UNATTACHED_IP)[free].details["idle_days"] == pytest.approx(
        25 / 24, abs=0.01
    )


def test_a_dynamic_public_ip_without_an_address_costs_nothing_and_is_ignored(
    azure: Scanner, emu: AzureEmulator
) -> None:
    emu.add_public_ip(SUB, RG, "dyn", "eastus", ip="", allocation="Dynamic", sku="Basic")

    report = azure.scan(config(emu, unattached_ip={"min_unattached_days": 0}))

    assert_ok(report)
    assert found(report, Kind.UNATTACHED_IP) == {}


# -- idle disks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["vm1-osdisk-ASRReplica", "ms-asr-data-0", "asrseeddisk-vm1-data", "DATA-asrreplica"]
)
def test_site_recovery_disks_are_never_findings(
    azure: Scanner, emu: AzureEmulator, name: str
) -> None:
    replica = disk(emu, name, detached_days=60)
    control = disk(emu, "plain-data", detached_days=60)

    report = azure.scan()

    assert_ok(report)
    assert set(found(report, Kind.IDLE_VOLUME)) == {control}
    assert replica not in found(report, Kind.IDLE_VOLUME)
    assert skipped(report, Kind.IDLE_VOLUME, "Site Recovery") == 1


def test_a_disk_with_asr_in_the_middle_of_its_name_is_still_judged(
    azure: Scanner, emu: AzureEmulator
) -> None:
    lookalike = disk(emu, "backup-ms-asr-notes", detached_days=60)

    report = azure.scan()

    assert lookalike in found(report, Kind.IDLE_VOLUME)


@pytest.mark.parametrize(("days", "is_finding"), [(2, False), (6.9, False), (7, True), (10, True)])
def test_idle_clock_is_last_ownership_update_time(
    azure: Scanner, emu: AzureEmulator, days: float, is_finding: bool
) -> None:
    free = disk(emu, "data", detached_days=days, size_gb=128, sku="Premium_LRS")

    report = azure.scan()  # the first scan: the clock is Azure's, not our own first sighting

    assert_ok(report)
    findings = found(report, Kind.IDLE_VOLUME)
    assert (free in findings) is is_finding
    if is_finding:
        finding = findings[free]
        assert finding.details["idle_reason"] == "unattached"
        assert finding.details["idle_days"] == pytest.approx(days)
        assert f"unattached for {days:.0f} days" in finding.reason
        tier_price = float(PRICES["disk_month"]["eastus"]["P10 LRS"])  # 128 GiB = P10
        assert finding.monthly_cost_usd == pytest.approx(tier_price)
        assert finding.details["size_gb"] == 128
        assert finding.details["volume_type"] == "Premium_LRS"


def test_without_ownership_time_our_own_first_sighting_is_the_clock_never_creation(
    azure: Scanner, emu: AzureEmulator, store: Store
) -> None:
    free = disk(emu, "never-attached", detached_days=None)  # created 90 days ago

    first = azure.scan(now=NOW - timedelta(days=8))
    second = azure.scan(now=NOW)

    assert_ok(first)
    assert found(first, Kind.IDLE_VOLUME) == {}
    finding = found(second, Kind.IDLE_VOLUME)[free]
    assert finding.details["idle_days"] == pytest.approx(8)
    assert store.get(finding.id).first_seen_unattached == NOW - timedelta(days=8)


def test_disk_attached_to_a_running_vm_is_not_a_finding(azure: Scanner, emu: AzureEmulator) -> None:
    data = disk(emu, "data", detached_days=60)
    vm(emu, "app", "Standard_D2s_v5", data_disks=[data])

    report = azure.scan(config(emu, idle_volume={"min_unattached_days": 0}))

    assert_ok(report)
    assert found(report, Kind.IDLE_VOLUME) == {}
    [volume] = azure.collect().volumes
    assert volume.attached_to == (arm_id("virtualMachines", "app"),)
    assert volume.detached_at is None


@pytest.mark.parametrize("state", ["ActiveSAS", "Reserved"])
def test_disk_in_use_without_an_owner_is_not_a_finding(
    azure: Scanner, emu: AzureEmulator, state: str
) -> None:
    disk(emu, "exported", detached_days=60, disk_state=state)

    report = azure.scan(config(emu, idle_volume={"min_unattached_days": 0}))

    assert_ok(report)
    assert found(report, Kind.IDLE_VOLUME) == {}


def test_disks_of_a_vm_deallocated_for_30_days_are_findings(
    azure: Scanner, emu: AzureEmulator
) -> None:
    os_disk = disk(emu, "vm1-os", detached_days=None, location="westeurope", size_gb=64)
    data = disk(emu, "vm1-data", detached_days=None, location="westeurope", size_gb=256)
    holder = vm(
        emu,
        "vm1",
        "Standard_D4s_v5",
        location="westeurope",
        power_state="deallocated",
        power_changed=NOW - timedelta(days=45),
        os_disk=os_disk,
        data_disks=[data],
    )

    report = azure.scan()

    assert_ok(report)
    findings = found(report, Kind.IDLE_VOLUME)
    assert set(findings) == {os_disk, data}
    for resource_id, tier in ((os_disk, "P6 LRS"), (data, "P15 LRS")):
        finding = findings[resource_id]
        assert finding.details["idle_reason"] == "attached_to_stopped_instance"
        assert finding.details["stopped_instances"] == [holder]
        assert finding.details["idle_days"] == pytest.approx(45)
        assert finding.unit.region == "westeurope"
        assert finding.monthly_cost_usd == pytest.approx(
            float(PRICES["disk_month"]["westeurope"][tier])
        )
    # what the emulator shows: a deallocated VM's disks are Reserved, still managed by the VM
    volumes = {v.resource_id: v for v in azure.collect().volumes}
    assert volumes[data].attached_to == (holder,)
    [instance] = azure.collect().instances
    assert (instance.state, instance.stopped_since) == ("stopped", NOW - timedelta(days=45))


def test_a_managed_by_id_in_other_letter_case_still_finds_its_deallocated_vm(
    azure: Scanner, emu: AzureEmulator
) -> None:
    holder = vm(
        emu,
        "vm1",
        "Standard_D4s_v5",
        power_state="deallocated",
        power_changed=NOW - timedelta(days=45),
    )
    shouted = holder.replace(f"/resourceGroups/{RG}/", f"/resourceGroups/{RG.upper()}/")
    data = disk(emu, "vm1-data", detached_days=None, managed_by=shouted, disk_state="Reserved")

    report = azure.scan()

    finding = found(report, Kind.IDLE_VOLUME)[data]
    assert finding.details["stopped_instances"] == [holder]


@pytest.mark.parametrize(
    ("power_state", "days"),
    [("deallocated", 10), ("stopped", 60)],
    ids=["deallocated-recently", "stopped-not-deallocated"],
)
def test_disks_of_a_vm_not_deallocated_long_enough_are_not_findings(
    azure: Scanner, emu: AzureEmulator, power_state: str, days: int
) -> None:
    data = disk(emu, "vm1-data", detached_days=None)
    vm(
        emu,
        "vm1",
        "Standard_D4s_v5",
        power_state=power_state,
        power_changed=NOW - timedelta(days=days),
        data_disks=[data],
    )

    report = azure.scan()

    assert_ok(report)
    assert found(report, Kind.IDLE_VOLUME) == {}


def test_opted_out_disk_is_skipped(azure: Scanner, emu: AzureEmulator) -> None:
    disk(emu, "keep", detached_days=60, tags={"costbot:skip": "team-x"})

    report = azure.scan()

    assert found(report, Kind.IDLE_VOLUME) == {}
    assert skipped(report, Kind.IDLE_VOLUME, "costbot:skip") == 1


def test_disk_sku_costbot_cannot_price_is_still_reported_as_unpriced(
    azure: Scanner, emu: AzureEmulator
) -> None:
    ultra = disk(emu, "ultra", detached_days=60, sku="UltraSSD_LRS", size_gb=512)

    report = azure.scan()

    finding = found(report, Kind.IDLE_VOLUME)[ultra]
    assert finding.monthly_cost_usd == 0
    assert finding.price_source.startswith("unpriced:")
    assert "UltraSSD_LRS" in finding.price_source


def test_a_disk_attached_again_is_resolved_by_the_next_scan(
    azure: Scanner, emu: AzureEmulator, store: Store
) -> None:
    data = disk(emu, "data", detached_days=60)
    first = azure.scan()
    [finding] = found(first, Kind.IDLE_VOLUME).values()

    vm(emu, "app", "Standard_D2s_v5", data_disks=[data])
    second = azure.scan(now=NOW + timedelta(hours=1))

    assert_ok(second)
    assert found(second, Kind.IDLE_VOLUME) == {}
    assert second.units[0].resolved == 1
    assert str(store.get(finding.id).status) == "resolved"


# -- paging, regions, failures ------------------------------------------------------------------


def test_every_page_of_every_listing_is_read(azure: Scanner, emu: AzureEmulator) -> None:
    emu.page_size = 2
    disks = {disk(emu, f"d{i}", detached_days=60) for i in range(5)}
    ips = {emu.add_public_ip(SUB, RG, f"ip{i}", "eastus", ip=f"20.0.1.{i}") for i in range(5)}
    vms = {vm(emu, f"vm{i}", "Standard_D2s_v5") for i in range(5)}
    cfg = config(emu, unattached_ip={"min_unattached_days": 0})

    report = azure.scan(cfg)

    assert_ok(report)
    assert set(found(report, Kind.IDLE_VOLUME)) == disks
    assert set(found(report, Kind.UNATTACHED_IP)) == ips
    assert dict(report.units[0].resources) == {"volumes": 5, "addresses": 5, "instances": 5}
    assert {i.resource_id for i in azure.collect(cfg).instances} == vms
    for listing in ("/disks", "/publicipaddresses", "/virtualmachines"):
        tokens = [r.query.get("$skiptoken") for r in requests_to(emu, listing)]
        assert tokens.count(None) == 2  # one scan, one collect
        assert sorted(t for t in tokens if t) == ["2", "2", "4", "4"], listing


def test_findings_carry_the_resource_location_while_the_scan_covers_every_location(
    azure: Scanner, emu: AzureEmulator, store: Store
) -> None:
    east = disk(emu, "east", detached_days=60, location="eastus")
    west = disk(emu, "west", detached_days=60, location="westeurope")

    report = azure.scan()

    assert_ok(report)
    assert [u.unit for u in report.units] == [Unit(Provider.AZURE, SUB, "*")]
    stored = {f.resource_id: f for f in store.findings()}
    assert (stored[east].region, stored[west].region) == ("eastus", "westeurope")
    assert stored[east].id == f"azure:{SUB}:eastus:idle_volume:{east}"
    assert [(s["account"], s["region"], s["ok"]) for s in store.latest_scans("azure")] == [
        (SUB, "*", 1)
    ]


def test_a_403_on_one_subscription_fails_that_unit_only(
    azure: Scanner, emu: AzureEmulator, store: Store
) -> None:
    good = disk(emu, "good", detached_days=60, sub=SUB)
    disk(emu, "hidden", detached_days=60, sub=OTHER)
    message = (
        f"The client 'costbot' does not have authorization over scope '/subscriptions/{OTHER}'."
    )
    emu.fail_subscription(OTHER, 403, "AuthorizationFailed", message)

    report = azure.scan(config(emu, (SUB, OTHER)))

    assert set(found(report, Kind.IDLE_VOLUME)) == {good}
    [failed] = report.failed
    assert failed.unit == Unit(Provider.AZURE, OTHER, "*")
    assert OTHER in (failed.error or "")
    assert "403" in (failed.error or "")
    scans = {s["account"]: s for s in store.latest_scans("azure")}
    assert (scans[SUB]["ok"], scans[OTHER]["ok"]) == (1, 0)
    assert OTHER in scans[OTHER]["error"]
    assert "AuthorizationFailed" in scans[OTHER]["error"]
    assert [f.resource_id for f in store.findings()] == [good]
    assert store.scan_health("azure", OTHER, "eastus", 0.5) is not None
    assert store.scan_health("azure", SUB, "eastus", 0.5) is None


def test_a_failed_scan_does_not_resolve_the_subscriptions_open_findings(
    azure: Scanner, emu: AzureEmulator, store: Store
) -> None:
    hidden = disk(emu, "hidden", detached_days=60, sub=OTHER)
    cfg = config(emu, (SUB, OTHER))
    first = azure.scan(cfg)
    assert set(found(first, Kind.IDLE_VOLUME)) == {hidden}

    emu.fail_subscription(OTHER, 403, "AuthorizationFailed", "no access")
    second = azure.scan(cfg, now=NOW + timedelta(hours=1))

    assert len(second.failed) == 1
    [finding] = store.findings()
    assert (finding.resource_id, str(finding.status)) == (hidden, "open")


# -- oversized VMs -----------------------------------------------------------------------------


def test_oversized_vm_gets_a_smaller_size_of_its_series(azure: Scanner, emu: AzureEmulator) -> None:
    big = vm(emu, "big", "Standard_D8s_v5")
    cpu_hours(emu, big, avg=3, peak=20)

    report = azure.scan()

    assert_ok(report)
    finding = found(report, Kind.OVERSIZED_INSTANCE)[big]
    target = ds_v5_target("Standard_D8s_v5", 3, 20)
    assert DS_V5.match(target) and target != "Standard_D8s_v5"
    assert finding.details["recommended_type"] == target
    assert finding.details["recommended_vcpus"] == SIZES[target].cores
    assert finding.details["cpu_average_percent"] == pytest.approx(3)
    assert finding.details["cpu_peak_percent"] == pytest.approx(20)
    assert finding.details["cpu_points"] == 14  # one whole-window point per day at p100
    assert finding.details["managed_group"] is None
    assert finding.unit.region == "eastus"
    old, new = bundled_vm_monthly("Standard_D8s_v5"), bundled_vm_monthly(target)
    assert finding.monthly_cost_usd == pytest.approx(old)
    assert finding.monthly_savings_usd == pytest.approx(old - new)
    assert finding.monthly_savings_usd > 0
    assert target in finding.recommendation
    queries = metrics_requests(emu)
    assert queries
    for query in queries:
        assert query.query["metricnames"] == "Percentage CPU"
        assert set(query.query["aggregation"].split(",")) == {"Average", "Maximum"}
        start, _, end = query.query["timespan"].partition("/")
        span = datetime.fromisoformat(end) - datetime.fromisoformat(start)
        assert span == timedelta(days=14)
        assert datetime.fromisoformat(end) <= NOW


def test_each_vm_is_judged_on_its_own_cpu(azure: Scanner, emu: AzureEmulator) -> None:
    idle = vm(emu, "idle", "Standard_D8s_v5")
    cpu_hours(emu, idle, avg=2, peak=12)
    busy = vm(emu, "busy", "Standard_D8s_v5")
    cpu_hours(emu, busy, avg=35, peak=90)
    quiet = vm(emu, "quiet", "Standard_D16s_v5")
    cpu_hours(emu, quiet, avg=4, peak=30)
    burst = vm(emu, "burst", "Standard_B2ms")
    cpu_hours(emu, burst, avg=60, peak=100)

    report = azure.scan()

    assert_ok(report)
    findings = found(report, Kind.OVERSIZED_INSTANCE)
    assert set(findings) == {idle, quiet}
    for resource_id, size, avg, peak in (
        (idle, "Standard_D8s_v5", 2, 12),
        (quiet, "Standard_D16s_v5", 4, 30),
    ):
        details = findings[resource_id].details
        assert (details["cpu_average_percent"], details["cpu_peak_percent"]) == (avg, peak)
        assert details["recommended_type"] == ds_v5_target(size, avg, peak)


def test_oversized_vm_savings_from_live_prices(azure: Scanner, emu: AzureEmulator) -> None:
    big = vm(emu, "big", "Standard_D8s_v5", location="westeurope")
    cpu_hours(emu, big, avg=2, peak=15)

    report = azure.scan(live=True)

    finding = found(report, Kind.OVERSIZED_INSTANCE)[big]
    target = finding.details["recommended_type"]
    assert target == ds_v5_target("Standard_D8s_v5", 2, 15)
    factor = REGIONS["westeurope"][1]

    def monthly(size: str) -> float:
        return round(SIZES[size].linux_hourly * factor, 6) * HOURS_PER_MONTH

    assert finding.price_source == LIVE_SOURCE
    assert finding.monthly_cost_usd == pytest.approx(monthly("Standard_D8s_v5"))
    assert finding.monthly_savings_usd == pytest.approx(
        monthly("Standard_D8s_v5") - monthly(target)
    )


def test_every_vm_of_a_busy_location_is_rated(azure: Scanner, emu: AzureEmulator) -> None:
    fleet = {vm(emu, f"web{i:02}", "Standard_D8s_v5") for i in range(15)}
    for vm_id in fleet:
        cpu_hours(emu, vm_id, avg=3, peak=20)

    report = azure.scan()

    assert_ok(report)
    assert set(found(report, Kind.OVERSIZED_INSTANCE)) == fleet
    assert skipped(report, Kind.OVERSIZED_INSTANCE) == 0


def test_busy_vm_is_not_oversized(azure: Scanner, emu: AzureEmulator) -> None:
    busy = vm(emu, "busy", "Standard_D8s_v5")
    cpu_hours(emu, busy, avg=3, peak=55)

    report = azure.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


def test_vm_without_cpu_data_is_unknown_not_oversized(azure: Scanner, emu: AzureEmulator) -> None:
    vm(emu, "silent", "Standard_D8s_v5")

    report = azure.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "no CPU data", "unknown") == 1


def test_vm_with_too_few_days_of_cpu_data_is_unknown(azure: Scanner, emu: AzureEmulator) -> None:
    sparse = vm(emu, "sparse", "Standard_D8s_v5")
    cpu_hours(emu, sparse, avg=3, peak=20, days=5)

    report = azure.scan()

    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "5/14", "unknown") == 1


def test_vm_younger_than_the_look_back_is_not_rated(azure: Scanner, emu: AzureEmulator) -> None:
    young = vm(emu, "young", "Standard_D8s_v5", age_days=5)
    cpu_hours(emu, young, avg=3, peak=20, days=5)

    report = azure.scan()

    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "less than the 14-day") == 1
    assert metrics_requests(emu) == []


def test_b_series_vm_is_skipped_as_burstable(azure: Scanner, emu: AzureEmulator) -> None:
    burstable = vm(emu, "burst", "Standard_B8ms")
    cpu_hours(emu, burstable, avg=1, peak=5)

    report = azure.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "burstable") == 1
    assert metrics_requests(emu) == []


def test_constrained_vcpu_size_is_not_rated(azure: Scanner, emu: AzureEmulator) -> None:
    constrained = vm(emu, "mem", "Standard_E8-4s_v5")
    cpu_hours(emu, constrained, avg=1, peak=5)
    regular = vm(emu, "reg", "Standard_E16s_v5")
    cpu_hours(emu, regular, avg=1, peak=5)

    report = azure.scan()

    assert_ok(report)
    assert set(found(report, Kind.OVERSIZED_INSTANCE)) == {regular}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "Standard_E8-4s_v5", "constrained") == 1
    # and the constrained size is never offered as a cheaper member of the E*s_v5 series
    sizes = azure.collect().sizes["eastus/Standard_E*s_v5"]
    assert "Standard_E8-4s_v5" not in {s.name for s in sizes}
    assert found(report, Kind.OVERSIZED_INSTANCE)[regular].details["recommended_type"] != (
        "Standard_E8-4s_v5"
    )


def test_scale_set_vm_is_still_reported_with_its_scale_set(
    azure: Scanner, emu: AzureEmulator
) -> None:
    scale_set = arm_id("virtualMachineScaleSets", "web")
    member = vm(emu, "web_0", "Standard_D8s_v5", scale_set=scale_set)
    cpu_hours(emu, member, avg=3, peak=20)

    report = azure.scan()

    finding = found(report, Kind.OVERSIZED_INSTANCE)[member]
    assert finding.details["managed_group"] == scale_set


def test_a_high_hour_defeats_the_true_maximum_but_not_the_p99_5(
    azure: Scanner, emu: AzureEmulator
) -> None:
    spiky = vm(emu, "spiky", "Standard_D8s_v5")
    hours = cpu_hours(emu, spiky, avg=3, peak=20)
    start, avg, _ = hours[100]
    hours[100] = (start, avg, 95.0)  # one busy hour in 336
    emu.set_cpu(spiky, hours)

    at_max = azure.scan()
    at_p99_5 = azure.scan(config(emu, oversized_instance={"peak_percentile": 99.5}))

    assert found(at_max, Kind.OVERSIZED_INSTANCE) == {}
    finding = found(at_p99_5, Kind.OVERSIZED_INSTANCE)[spiky]
    assert finding.details["cpu_peak_percent"] == pytest.approx(20)
    assert finding.details["cpu_points"] == 14 * 24  # hourly points below p100
    hourly = metrics_requests(emu)[-1]
    assert hourly.query["interval"] == "PT1H"


def test_vm_sizes_are_listed_once_per_location(azure: Scanner, emu: AzureEmulator) -> None:
    for i in range(3):
        cpu_hours(emu, vm(emu, f"east{i}", "Standard_D8s_v5"), avg=3, peak=20)
    cpu_hours(emu, vm(emu, "west", "Standard_D8s_v5", location="westeurope"), avg=3, peak=20)
    vm(emu, "parked", "Standard_D8s_v5", location="northeurope", power_state="deallocated")

    report = azure.scan()

    assert len(found(report, Kind.OVERSIZED_INSTANCE)) == 4
    listed = [
        urllib.parse.unquote(r.path).lower().split("/locations/")[1].split("/")[0]
        for r in requests_to(emu, "/vmsizes")
    ]
    assert sorted(listed) == ["eastus", "westeurope"]
