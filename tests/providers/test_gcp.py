"""GCP inventory and the three waste rules, driven through run_scan against costbot's emulators:
the real google-cloud-compute REST client against GcpEmulator (plain http, AnonymousCredentials)
and the real google-cloud-monitoring gRPC client against MonitoringEmulator.

Expectations are computed from what each test seeded: sizes x the per-GiB rate read straight
from costbot/data/gcp_prices.json, vCPU and memory of the n2-standard sizes (public GCP facts:
4 GiB per vCPU), and plain date arithmetic.
"""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

import costbot
from cleaners.gcp_resize import ResizeGcpInstance
from costbot.actions import Readiness
from costbot.config import Config, GcpConfig
from costbot.emulators.gcp import GcpEmulator
from costbot.emulators.gcp_monitoring import MonitoringEmulator
from costbot.model import Finding, Kind, Provider
from costbot.pricing.gcp import GcpPriceBook
from costbot.providers.gcp import GcpProvider
from costbot.providers.gcp_clients import GcpClients
from costbot.scan import ScanReport, run_scan
from costbot.store import Store
from tests.conftest import make_config

P = "proj-alpha"
P2 = "proj-beta"
Z = "us-central1-a"
REGION = "us-central1"
EU_Z = "europe-west1-b"
NOW = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=120)
HOURS_PER_MONTH = 730
PRICES: dict[str, Any] = json.loads(
    (Path(costbot.__file__).parent / "data" / "gcp_prices.json").read_text("utf-8")
)
N2_STANDARD_VCPUS = (2, 4, 8, 16, 32)
"""Published n2-standard sizes (each with 4 GiB of memory per vCPU) up to 32 vCPUs."""


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[GcpEmulator]:
    with GcpEmulator() as emulator:
        yield emulator


@pytest.fixture
def mon() -> Iterator[MonitoringEmulator]:
    with MonitoringEmulator() as emulator:
        yield emulator


def gcp_section(emu: GcpEmulator, projects: Sequence[str]) -> dict[str, Any]:
    return {
        "projects": list(projects),
        "credentials": "anonymous",
        "endpoints": {
            "compute": emu.endpoint,
            "billing": emu.endpoint,
            "resource_manager": emu.endpoint,
        },
    }


@dataclass
class World:
    """The two emulators, a store, and how a scan is made against them."""

    emu: GcpEmulator
    mon: MonitoringEmulator
    store: Store

    def config(self, rules: str = "", projects: Sequence[str] = (P,)) -> Config:
        data = {"providers": {"gcp": gcp_section(self.emu, projects)}}
        return make_config(yaml.safe_dump(data) + textwrap.dedent(rules))

    def provider(self, cfg: Config) -> GcpProvider:
        gcp = cfg.providers.gcp
        assert gcp is not None
        clients = GcpClients(gcp, monitoring_channel=self.mon.channel)
        return GcpProvider(gcp, cfg.rules.oversized_instance, clients=clients, retry_timeout_s=2)

    def scan(self, cfg: Config | None = None, now: datetime = NOW) -> ScanReport:
        cfg = cfg or self.config()
        prices = {Provider.GCP: GcpPriceBook(live=False)}
        return run_scan(cfg, self.store, [self.provider(cfg)], prices, now=now)

    def instance(
        self,
        name: str,
        machine_type: str = "n2-standard-8",
        *,
        zone: str = Z,
        mean: float | None = 0.03,
        peak: float = 0.15,
        project: str = P,
        **extra: Any,
    ) -> dict[str, Any]:
        """A VM running since OLD with 14 days of hourly CPU: `mean` every hour, `peak` once
        (every other hour's maximum is halfway between); no CPU at all when `mean` is None."""
        raw = self.emu.add_instance(
            project, zone, name, machine_type=machine_type, created=OLD, last_start=OLD, **extra
        )
        if mean is not None:
            usual_max = (mean + peak) / 2
            hours = [
                (NOW - timedelta(hours=h), mean, peak if h == 30 else usual_max)
                for h in range(1, 14 * 24 + 1)
            ]
            self.mon.set_cpu(project, raw["id"], name, zone, hours)
        return raw


@pytest.fixture
def world(emu: GcpEmulator, mon: MonitoringEmulator, store: Store) -> World:
    return World(emu, mon, store)


IPS_NOW = """
rules:
  unattached_ip:
    min_unattached_days: 0
"""
"""Unattached IPs are reported on the first scan (their clock is costbot's own first sighting)."""


def disk_id(name: str, zone: str = Z, project: str = P) -> str:
    return f"projects/{project}/zones/{zone}/disks/{name}"


def instance_id(name: str, zone: str = Z, project: str = P) -> str:
    return f"projects/{project}/zones/{zone}/instances/{name}"


def found(report: ScanReport, kind: Kind) -> dict[str, Finding]:
    return {f.resource_id: f for f in report.findings if f.kind is kind}


def skipped(report: ScanReport, kind: Kind, *words: str) -> int:
    """How many resources of `kind` were skipped with a reason containing every word."""
    return sum(
        n
        for unit in report.units
        for key, n in unit.skipped.items()
        if key.startswith(f"{kind}:") and all(w in key for w in words)
    )


def assert_ok(report: ScanReport) -> None:
    assert report.units, "the scan produced no units"
    assert not report.failed, [u.error for u in report.failed]


def pd_monthly(size_gb: int, disk_type: str, region: str = "us-central1") -> float:
    return size_gb * float(PRICES["pd_gib_month"][region][disk_type])


def n2_standard_monthly(vcpus: int, region: str = "us-central1") -> float:
    core = float(PRICES["core_hour"][region]["n2"])
    ram = float(PRICES["ram_gib_hour"][region]["n2"])
    return (vcpus * core + 4 * vcpus * ram) * HOURS_PER_MONTH


def expected_n2_target(current: int, avg: float, peak: float) -> int:
    """The smallest n2-standard size keeping peak x old/new <= 80 % and avg x old/new <= 40 %."""
    fits = [v for v in N2_STANDARD_VCPUS if v < current and peak * current / v <= 80]
    return min(v for v in fits if avg * current / v <= 40)


# -- addresses ---------------------------------------------------------------------------------


def test_only_reserved_external_addresses_regional_and_global_are_findings(world: World) -> None:
    emu = world.emu
    emu.add_address(
        P, "us-central1", "db-internal", address="10.0.0.5", address_type="INTERNAL", created=OLD
    )
    emu.add_address(P, None, "anycast-ip", address="34.117.20.2", created=OLD)
    emu.add_address(P, "us-east1", "old-lb-ip", address="34.120.10.1", created=OLD)
    emu.add_address(
        P,
        "europe-west1",
        "web-ip",
        address="34.76.3.3",
        status="IN_USE",
        users=[instance_id("web-1", EU_Z)],
        created=OLD,
    )

    report = world.scan(world.config(IPS_NOW))

    assert_ok(report)
    ips = found(report, Kind.UNATTACHED_IP)
    global_id = f"projects/{P}/global/addresses/anycast-ip"
    regional_id = f"projects/{P}/regions/us-east1/addresses/old-lb-ip"
    assert set(ips) == {global_id, regional_id}
    assert ips[global_id].unit.region == "global"
    assert ips[regional_id].unit.region == "us-east1"
    assert ips[global_id].details["ip"] == "34.117.20.2"
    assert ips[regional_id].details["ip"] == "34.120.10.1"
    # Global addresses are priced at the us-central1 rate; the regional one at its own region's.
    assert ips[global_id].monthly_cost_usd == pytest.approx(
        PRICES["static_ip_hour"]["us-central1"] * HOURS_PER_MONTH
    )
    assert ips[regional_id].monthly_savings_usd == pytest.approx(
        PRICES["static_ip_hour"]["us-east1"] * HOURS_PER_MONTH
    )
    stored = {f.resource_id: f for f in world.store.findings(kind=Kind.UNATTACHED_IP)}
    assert set(stored) == {global_id, regional_id}
    assert stored[global_id].region == "global"
    assert stored[global_id].id == f"gcp:{P}:global:unattached_ip:{global_id}"


def test_an_address_is_reported_only_after_the_configured_days(world: World) -> None:
    world.emu.add_address(P, "us-central1", "spare", created=OLD)
    cfg = world.config()  # default: one day seen unattached, costbot's own clock

    first = world.scan(cfg)
    second = world.scan(cfg, now=NOW + timedelta(days=1, minutes=1))

    assert_ok(first)
    assert found(first, Kind.UNATTACHED_IP) == {}
    [finding] = found(second, Kind.UNATTACHED_IP).values()
    assert finding.details["idle_days"] == pytest.approx(1, abs=0.01)


# -- disks -------------------------------------------------------------------------------------


def test_disk_idle_clocks_follow_detach_and_creation_times(world: World) -> None:
    emu = world.emu
    world.instance("app", mean=None)
    emu.add_disk(P, Z, "in-use", users=["app"], created=OLD, last_attach=OLD)
    emu.add_disk(
        P, Z, "never-old", size_gb=200, disk_type="pd-ssd", created=NOW - timedelta(days=30)
    )
    emu.add_disk(P, Z, "never-young", created=NOW - timedelta(days=3))
    emu.add_disk(
        P, Z, "detached-2d", created=OLD, last_attach=OLD, last_detach=NOW - timedelta(days=2)
    )
    emu.add_disk(
        P,
        EU_Z,
        "detached-10d",
        size_gb=50,
        disk_type="pd-balanced",
        created=OLD,
        last_attach=OLD,
        last_detach=NOW - timedelta(days=10),
    )

    report = world.scan()

    assert_ok(report)
    disks = found(report, Kind.IDLE_VOLUME)
    assert set(disks) == {disk_id("never-old"), disk_id("detached-10d", EU_Z)}
    never = disks[disk_id("never-old")]
    assert never.details["idle_reason"] == "unattached"
    assert never.details["idle_days"] == pytest.approx(30)
    assert never.monthly_cost_usd == pytest.approx(pd_monthly(200, "pd-ssd"))
    assert never.unit.region == "us-central1"
    detached = disks[disk_id("detached-10d", EU_Z)]
    assert detached.details["idle_days"] == pytest.approx(10)
    assert detached.unit.region == "europe-west1"
    assert detached.monthly_cost_usd == pytest.approx(pd_monthly(50, "pd-balanced", "europe-west1"))
    assert report.units[0].resources["volumes"] == 5


def test_a_disk_detached_two_days_ago_becomes_a_finding_after_seven(world: World) -> None:
    world.emu.add_disk(
        P, Z, "data", created=OLD, last_attach=OLD, last_detach=NOW - timedelta(days=2)
    )

    early = world.scan()
    later = world.scan(now=NOW + timedelta(days=5, hours=1))

    assert found(early, Kind.IDLE_VOLUME) == {}
    [finding] = found(later, Kind.IDLE_VOLUME).values()
    assert finding.details["idle_days"] == pytest.approx(7 + 1 / 24, abs=0.01)


@pytest.mark.parametrize("include", [False, True])
def test_gke_disks_are_excluded_unless_configured(world: World, include: bool) -> None:
    world.emu.add_disk(
        P,
        Z,
        "gke-pvc-3f1c",
        labels={"goog-k8s-cluster-name": "prod"},
        created=OLD,
        last_attach=OLD,
        last_detach=NOW - timedelta(days=20),
    )
    rules = f"""
    rules:
      idle_volume:
        include_kubernetes: {str(include).lower()}
    """

    report = world.scan(world.config(rules))

    assert_ok(report)
    disks = found(report, Kind.IDLE_VOLUME)
    if include:
        assert set(disks) == {disk_id("gke-pvc-3f1c")}
    else:
        assert disks == {}
        assert skipped(report, Kind.IDLE_VOLUME, "GKE") == 1


def test_the_skip_label_keeps_a_disk_out(world: World) -> None:
    world.emu.add_disk(P, Z, "golden", labels={"costbot-skip": "owner-on-leave"}, created=OLD)

    report = world.scan()

    assert found(report, Kind.IDLE_VOLUME) == {}
    assert skipped(report, Kind.IDLE_VOLUME, "costbot-skip") == 1


def test_a_disk_attached_only_to_a_long_stopped_instance_is_a_finding(world: World) -> None:
    emu = world.emu
    emu.add_instance(
        P,
        Z,
        "legacy",
        machine_type="n1-standard-4",
        status="TERMINATED",
        created=OLD,
        last_stop=NOW - timedelta(days=45),
    )
    emu.add_instance(
        P, Z, "paused", status="TERMINATED", created=OLD, last_stop=NOW - timedelta(days=10)
    )
    emu.add_disk(P, Z, "legacy-data", size_gb=300, users=["legacy"], created=OLD, last_attach=OLD)
    emu.add_disk(P, Z, "paused-data", users=["paused"], created=OLD, last_attach=OLD)

    report = world.scan()

    assert_ok(report)
    disks = found(report, Kind.IDLE_VOLUME)
    assert set(disks) == {disk_id("legacy-data")}
    details = disks[disk_id("legacy-data")].details
    assert details["idle_reason"] == "attached_to_stopped_instance"
    assert details["idle_days"] == pytest.approx(45)
    assert details["stopped_instances"] == [instance_id("legacy")]
    assert world.mon.requests == []  # nothing running: no Monitoring call was needed


# -- listing: pages, failures, regions ---------------------------------------------------------


def test_every_page_of_every_aggregated_list_is_read(world: World) -> None:
    emu = world.emu
    emu.page_size = 2
    zones = ["us-central1-a", "us-central1-b", "us-east1-b", "europe-west1-c", "europe-west1-d"]
    for n, zone in enumerate(zones):
        emu.add_disk(P, zone, f"d{n}", created=NOW - timedelta(days=30))
        emu.add_instance(P, zone, f"vm{n}", machine_type="e2-small", created=OLD)
    for n in range(5):
        emu.add_address(
            P, None if n % 2 else "us-east1", f"ip{n}", address=f"34.0.0.{n}", created=OLD
        )

    report = world.scan(world.config(IPS_NOW))

    assert_ok(report)
    assert report.units[0].resources == {"volumes": 5, "addresses": 5, "instances": 5}
    assert set(found(report, Kind.IDLE_VOLUME)) == {
        disk_id(f"d{n}", z) for n, z in enumerate(zones)
    }
    assert len(found(report, Kind.UNATTACHED_IP)) == 5
    for collection in ("disks", "addresses", "instances"):
        tokens = [
            r.query.get("pageToken")
            for r in emu.requests
            if r.path == f"/compute/v1/projects/{P}/aggregated/{collection}"
        ]
        assert tokens == [None, "2", "4"], collection


def test_every_page_of_cpu_series_is_read(world: World) -> None:
    world.mon.page_size = 1
    for name in ("vm-a", "vm-b", "vm-c"):
        world.instance(name, "n2-standard-8", mean=0.03, peak=0.15)

    report = world.scan()

    assert_ok(report)
    assert set(found(report, Kind.OVERSIZED_INSTANCE)) == {
        instance_id(n) for n in ("vm-a", "vm-b", "vm-c")
    }
    tokens = sorted(r.page_token for r in world.mon.requests)
    assert tokens == ["", "", "1", "1", "2", "2"]  # three pages for each of the two aligners


def test_the_monitoring_endpoint_from_config_is_used_without_an_injected_channel(
    world: World,
) -> None:
    world.instance("api", "n2-standard-8", mean=0.03, peak=0.15)
    data = {"providers": {"gcp": gcp_section(world.emu, [P])}}
    data["providers"]["gcp"]["endpoints"] |= {
        "monitoring": world.mon.target,
        "monitoring_insecure": True,
    }
    cfg = make_config(yaml.safe_dump(data))
    assert cfg.providers.gcp is not None
    provider = GcpProvider(cfg.providers.gcp, cfg.rules.oversized_instance, retry_timeout_s=2)

    report = run_scan(
        cfg, world.store, [provider], {Provider.GCP: GcpPriceBook(live=False)}, now=NOW
    )

    assert_ok(report)
    assert set(found(report, Kind.OVERSIZED_INSTANCE)) == {instance_id("api")}
    assert len(world.mon.requests) == 2


def test_a_forbidden_project_fails_alone(world: World) -> None:
    world.emu.add_disk(P, Z, "orphan", created=NOW - timedelta(days=30))
    world.emu.add_disk(P2, Z, "theirs", created=NOW - timedelta(days=30))
    world.emu.fail_project(P2, 403, "Compute Engine API has not been used in project proj-beta")

    report = world.scan(world.config(projects=(P, P2)))

    [failed] = report.failed
    assert (failed.unit.account, failed.unit.region) == (P2, "*")
    assert failed.error is not None
    assert P2 in failed.error and "403" in failed.error and "has not been used" in failed.error
    assert set(found(report, Kind.IDLE_VOLUME)) == {disk_id("orphan")}
    assert [f.resource_id for f in world.store.findings()] == [disk_id("orphan")]
    latest = {(s["account"], s["region"]): s for s in world.store.latest_scans("gcp")}
    assert latest[(P, "*")]["ok"] == 1
    assert latest[(P2, "*")]["ok"] == 0 and P2 in latest[(P2, "*")]["error"]


def test_a_monitoring_failure_fails_that_project_with_a_clear_message(world: World) -> None:
    world.instance("api", project=P)
    world.instance("batch", project=P2)
    world.mon.fail_project(
        P2, grpc.StatusCode.PERMISSION_DENIED, "monitoring.timeSeries.list denied"
    )

    report = world.scan(world.config(projects=(P, P2)))

    [failed] = report.failed
    assert failed.unit.account == P2
    assert failed.error is not None
    assert P2 in failed.error and "monitoring.timeSeries.list" in failed.error
    assert "denied" in failed.error
    assert set(found(report, Kind.OVERSIZED_INSTANCE)) == {instance_id("api")}


def test_findings_keep_their_own_region_while_the_unit_is_the_whole_project(world: World) -> None:
    world.emu.add_disk(P, EU_Z, "eu-disk", created=NOW - timedelta(days=30))
    world.emu.add_disk(P, "us-east1-c", "us-disk", created=NOW - timedelta(days=30))

    report = world.scan()

    assert [(u.unit.account, u.unit.region) for u in report.units] == [(P, "*")]
    regions = {f.resource_id: f.region for f in world.store.findings()}
    assert regions == {
        disk_id("eu-disk", EU_Z): "europe-west1",
        disk_id("us-disk", "us-east1-c"): "us-east1",
    }
    assert [s["region"] for s in world.store.latest_scans("gcp")] == ["*"]


def test_a_rescan_that_no_longer_sees_a_disk_resolves_its_finding(world: World) -> None:
    world.emu.add_disk(P, Z, "orphan", created=NOW - timedelta(days=30))
    world.scan()
    disks = compute_v1.DisksClient(
        credentials=AnonymousCredentials(),
        transport="rest",
        client_options={"api_endpoint": world.emu.endpoint},
    )
    disks.delete(project=P, zone=Z, disk="orphan").result(timeout=5)
    disks.transport.close()

    report = world.scan(now=NOW + timedelta(hours=1))

    assert_ok(report)
    [stored] = world.store.findings()
    assert str(stored.status) == "resolved"


# -- oversized instances -----------------------------------------------------------------------


def test_an_idle_n2_standard_8_gets_a_smaller_n2_standard_with_savings(world: World) -> None:
    world.instance("api", "n2-standard-8", mean=0.03, peak=0.15)

    report = world.scan()

    assert_ok(report)
    [finding] = found(report, Kind.OVERSIZED_INSTANCE).values()
    target = expected_n2_target(8, 3, 15)
    assert finding.details["recommended_type"] == f"n2-standard-{target}"
    assert finding.details["cpu_average_percent"] == pytest.approx(3)
    assert finding.details["cpu_peak_percent"] == pytest.approx(15)
    assert finding.monthly_cost_usd == pytest.approx(n2_standard_monthly(8))
    saving = n2_standard_monthly(8) - n2_standard_monthly(target)
    assert saving > 0
    assert finding.monthly_savings_usd == pytest.approx(saving)
    assert finding.unit.region == "us-central1"
    assert finding.price_source == "bundled" and finding.price_date == PRICES["date"]
    assert {r.name for r in world.mon.requests} == {f"projects/{P}"}


def test_a_busy_instance_is_not_oversized(world: World) -> None:
    world.instance("busy", "n2-standard-8", mean=0.55, peak=0.9)

    report = world.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


def hourly_with_one_spike(mean: float, usual_max: float, spike: float) -> list[Any]:
    return [
        (NOW - timedelta(hours=h), mean, spike if h == 100 else usual_max)
        for h in range(1, 14 * 24 + 1)
    ]


@pytest.mark.parametrize(("percentile", "oversized"), [(99.5, True), (100, False)])
def test_a_peak_percentile_below_100_asks_for_hourly_points(
    world: World, percentile: float, oversized: bool
) -> None:
    raw = world.emu.add_instance(P, Z, "spiky", created=OLD, last_start=OLD)
    # One 90 % hour in 336: the true maximum is 90 %, the 99.5th percentile of the maxima is 10 %.
    world.mon.set_cpu(P, raw["id"], "spiky", Z, hourly_with_one_spike(0.02, 0.10, 0.90))
    rules = f"""
    rules:
      oversized_instance:
        peak_percentile: {percentile}
    """

    report = world.scan(world.config(rules))

    assert_ok(report)
    findings = found(report, Kind.OVERSIZED_INSTANCE)
    periods = {r.aggregation.alignment_period for r in world.mon.requests}
    aligners = sorted(r.aggregation.per_series_aligner.name for r in world.mon.requests)
    assert aligners == ["ALIGN_MAX", "ALIGN_MEAN"]
    if oversized:
        assert periods == {timedelta(hours=1)}
        [finding] = findings.values()
        assert finding.details["cpu_peak_percent"] == pytest.approx(10)
        assert finding.details["cpu_points"] == 14 * 24
        assert "p99.5" in finding.reason
    else:
        # the true maximum over the window: coarser points than hourly are enough
        assert all(period > timedelta(hours=1) for period in periods)
        assert findings == {}


def test_too_few_hourly_points_are_unknown_not_oversized(world: World) -> None:
    raw = world.emu.add_instance(P, Z, "sparse", created=OLD, last_start=OLD)
    world.mon.set_cpu(P, raw["id"], "sparse", Z, hourly_with_one_spike(0.02, 0.05, 0.05)[:100])
    rules = """
    rules:
      oversized_instance:
        peak_percentile: 99
    """

    report = world.scan(world.config(rules))

    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "100/336", "unknown") == 1


def test_no_cpu_data_is_unknown_never_oversized(world: World) -> None:
    world.instance("quiet", mean=None)

    report = world.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "no CPU data", "unknown") == 1
    assert len(world.mon.requests) == 2  # it was asked for, and nothing came back


def test_shared_core_e2_small_is_skipped_as_burstable(world: World) -> None:
    world.instance("jumpbox", "e2-small", mean=0.01, peak=0.05)

    report = world.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "burstable") == 1
    assert world.mon.requests == []


def test_a_custom_machine_type_is_not_rated(world: World) -> None:
    world.instance("etl", "n2-custom-4-16384", zone=EU_Z, mean=0.02, peak=0.08)

    report = world.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "n2-custom-4-16384", "custom") == 1


def test_an_instance_younger_than_the_look_back_is_not_judged(world: World) -> None:
    world.emu.add_instance(
        P, Z, "new", created=NOW - timedelta(days=3), last_start=NOW - timedelta(days=3)
    )

    report = world.scan()

    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "look-back") == 1


def test_a_managed_instance_group_member_is_reported_but_not_resized(world: World) -> None:
    mig = f"projects/{P}/zones/{Z}/instanceGroupManagers/batch"
    world.instance("batch-x1z", "n2-standard-4", mean=0.03, peak=0.10, created_by=mig)
    cfg = world.config()

    report = world.scan(cfg)

    assert_ok(report)
    [finding] = found(report, Kind.OVERSIZED_INSTANCE).values()
    assert finding.details["managed_group"] == mig
    gcp = cfg.providers.gcp
    assert gcp is not None
    resize = ResizeGcpInstance(GcpClients(gcp), cfg.exclusions, lambda: NOW)
    verdict = resize.dry_run(world.store.get(finding.id))
    assert verdict.readiness is Readiness.REFUSED
    assert "managed instance group" in verdict.verdict and "batch" in verdict.verdict
    assert not [r for r in world.emu.requests if r.method == "POST"]


def test_the_window_average_weighs_every_hour_equally(world: World) -> None:
    # Regression: daily points over a window ending at 10:00 UTC made its oldest 14 hours and
    # newest 10 hours two partial days weighing as much as whole ones. Both are quiet (0.1 %);
    # the 13 whole days in between average 11 %, peaking at 30 %: not oversized.
    raw = world.emu.add_instance(P, Z, "steady", created=OLD, last_start=OLD)
    quiet = set(range(1, 11)) | set(range(14 * 24 - 13, 14 * 24 + 1))
    hours = [
        (NOW - timedelta(hours=h), 0.001 if h in quiet else 0.11, 0.001 if h in quiet else 0.30)
        for h in range(1, 14 * 24 + 1)
    ]
    world.mon.set_cpu(P, raw["id"], "steady", Z, hours)
    true_average = (len(quiet) * 0.1 + (14 * 24 - len(quiet)) * 11) / (14 * 24)
    assert len(quiet) == 24 and true_average > 10  # by the rule (average < 10 %): not oversized

    report = world.scan()

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


# -- prices ------------------------------------------------------------------------------------


def dead_endpoint() -> str:
    """An http URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_scan_prices_from_the_live_catalog(world: World) -> None:
    world.emu.add_disk(P, Z, "orphan", size_gb=100, created=NOW - timedelta(days=30))
    [capacity] = [
        s
        for s in world.emu.skus
        if s["description"] == "Storage PD Capacity in Americas" and s["serviceRegions"] == [REGION]
    ]
    capacity["pricingInfo"][0]["pricingExpression"]["tieredRates"][0]["unitPrice"]["nanos"] = (
        50_000_000  # $0.05 per GiB-month instead of the bundled $0.04
    )
    cfg = world.config()
    gcp = cfg.providers.gcp
    assert gcp is not None
    book = GcpPriceBook(
        live=True, store=world.store, client_factory=GcpClients(gcp).catalog, now=NOW
    )

    report = run_scan(cfg, world.store, [world.provider(cfg)], {Provider.GCP: book}, now=NOW)

    assert_ok(report)
    [finding] = found(report, Kind.IDLE_VOLUME).values()
    assert finding.monthly_cost_usd == pytest.approx(100 * 0.05)
    assert finding.price_source == "gcp-billing-catalog"
    assert report.notes == ()


def test_an_unreachable_billing_catalog_falls_back_to_bundled_prices(world: World) -> None:
    world.emu.add_disk(P, Z, "orphan", size_gb=100, created=NOW - timedelta(days=30))
    cfg = world.config()
    gcp = GcpConfig(projects=[P], credentials="anonymous", endpoints={"billing": dead_endpoint()})
    prices = {Provider.GCP: GcpPriceBook(live=True, client_factory=GcpClients(gcp).catalog)}

    report = run_scan(cfg, world.store, [world.provider(cfg)], prices, now=NOW)

    # Regression: requests' ConnectionError escaped the price book and failed the whole project.
    assert_ok(report)
    [finding] = found(report, Kind.IDLE_VOLUME).values()
    assert finding.monthly_cost_usd == pytest.approx(pd_monthly(100, "pd-standard"))
    assert finding.price_source == "bundled"
    assert any("bundled" in note for note in report.notes)


# -- Google Recommender as a second opinion ----------------------------------------------------

RECOMMENDER_ON = """
rules:
  unattached_ip:
    min_unattached_days: 0
"""


def recommendation(resource: str, subtype: str, monthly: int, state: str = "ACTIVE") -> Any:
    return {
        "name": f"projects/{P}/locations/x/recommenders/y/recommendations/{subtype}",
        "description": f"{subtype} for {resource}",
        "recommenderSubtype": subtype,
        "primaryImpact": {
            "category": "COST",
            "costProjection": {
                "cost": {"currencyCode": "USD", "units": str(-monthly)},
                "duration": "2592000s",  # 30 days: costbot rescales to its 730-hour month
            },
        },
        "stateInfo": {"state": state},
        "content": {
            "overview": {"resourceName": f"//compute.googleapis.com/projects/{P}/{resource}"}
        },
    }


def with_recommender(world: World, endpoint: str | None = None) -> Config:
    data = {"providers": {"gcp": gcp_section(world.emu, (P,))}}
    data["providers"]["gcp"]["recommender"] = True
    data["providers"]["gcp"]["endpoints"]["recommender"] = endpoint or world.emu.endpoint
    return make_config(yaml.safe_dump(data) + textwrap.dedent(RECOMMENDER_ON))


def test_google_recommender_verdicts_ride_along_as_a_second_opinion(world: World) -> None:
    from costbot.providers import gcp_recommender as rec

    emu = world.emu
    emu.add_disk(P, Z, "idle", created=OLD, last_attach=OLD, last_detach=NOW - timedelta(days=30))
    emu.add_disk(P, Z, "dismissed", created=OLD, last_attach=OLD, last_detach=OLD)
    emu.add_address(P, None, "spare", address="34.9.9.9", created=OLD)
    world.instance("api", "n2-standard-8", mean=0.03, peak=0.15)
    disk_rec = recommendation(f"zones/{Z}/disks/idle", "SNAPSHOT_AND_DELETE_DISK", 4)
    emu.add_recommendation(P, Z, rec.DISKS, disk_rec)
    gone = recommendation(f"zones/{Z}/disks/dismissed", "DELETE_DISK", 4, state="DISMISSED")
    emu.add_recommendation(P, Z, rec.DISKS, gone)
    emu.add_recommendation(
        P, "global", rec.ADDRESSES, recommendation("global/addresses/spare", "DELETE_ADDRESS", 7)
    )
    machine = recommendation(f"zones/{Z}/instances/api", "CHANGE_MACHINE_TYPE", 150)
    machine["content"]["overview"]["recommendedMachineType"] = {"name": "n2-standard-2"}
    emu.add_recommendation(P, Z, rec.MACHINE_TYPES, machine)

    report = world.scan(with_recommender(world))

    assert_ok(report)
    disks = {f.name: f for f in found(report, Kind.IDLE_VOLUME).values()}
    opinion = disks["idle"].details["second_opinion"]
    assert opinion["subtype"] == "SNAPSHOT_AND_DELETE_DISK"
    assert opinion["monthly_savings_usd"] == pytest.approx(4 * 730 / 720, abs=0.01)
    assert "second_opinion" not in disks["dismissed"].details  # only ACTIVE ones count
    [address] = found(report, Kind.UNATTACHED_IP).values()
    assert address.details["second_opinion"]["subtype"] == "DELETE_ADDRESS"
    [instance] = found(report, Kind.OVERSIZED_INSTANCE).values()
    assert instance.details["second_opinion"]["recommended_type"] == "n2-standard-2"
    asked = {r.path for r in emu.requests if "/recommenders/" in r.path}
    assert asked == {
        f"/v1/projects/{P}/locations/{Z}/recommenders/{rec.DISKS}/recommendations",
        f"/v1/projects/{P}/locations/global/recommenders/{rec.ADDRESSES}/recommendations",
        f"/v1/projects/{P}/locations/{Z}/recommenders/{rec.MACHINE_TYPES}/recommendations",
    }


def test_an_unreachable_recommender_never_fails_the_scan(world: World) -> None:
    world.emu.add_disk(P, Z, "idle", created=OLD, last_attach=OLD, last_detach=OLD)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now

    report = world.scan(with_recommender(world, f"http://127.0.0.1:{port}"))

    assert_ok(report)
    [disk] = found(report, Kind.IDLE_VOLUME).values()
    assert "second_opinion" not in disk.details


def test_the_recommender_is_not_asked_unless_configured(world: World) -> None:
    world.emu.add_disk(P, Z, "idle", created=OLD, last_attach=OLD, last_detach=OLD)

    assert_ok(world.scan())

    assert not [r for r in world.emu.requests if "/recommenders/" in r.path]
