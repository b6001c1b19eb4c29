"""GCP cleanup actions against costbot's Compute Engine emulator through the real
google-cloud-compute REST client: the cleaners directly, and through CleanupRun where the rails
matter. Findings come from a real scan (run_scan + GcpProvider) into a real store and are
approved through costbot.approvals.decide, as in tests/test_cleanup.py.

"Nothing happened" is always checked in the emulator itself: the resource is still there and
the emulator never received a mutating request for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

from cleaners import build_cleaners
from cleaners.gcp import (
    DeleteDisk,
    ReleaseAddress,
    SnapshotAndDeleteDisk,
    label_value,
    path_parts,
)
from cleaners.gcp_resize import ResizeGcpInstance
from costbot.actions import Readiness, Result
from costbot.approvals import Decision, decide
from costbot.cleanup import ACTOR, Cleaners, CleanupLine, CleanupReport, CleanupRun, Stage
from costbot.config import Config
from costbot.emulators.gcp import GcpEmulator
from costbot.emulators.gcp_monitoring import MonitoringEmulator
from costbot.errors import CleanupError
from costbot.model import Kind, Provider, Status, Unit, finding_id
from costbot.pricing.gcp import GcpPriceBook
from costbot.providers.gcp import GcpProvider
from costbot.providers.gcp_clients import GcpClients
from costbot.scan import ScanReport, run_scan
from costbot.store import Store
from tests.conftest import make_config

P = "proj-alpha"
Z = "us-central1-a"
REGION = "us-central1"
T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
"""A Monday: the scan and the approval happen now."""
RUN_AT = T + timedelta(hours=1)
OLD = T - timedelta(days=120)
WINDOW = "Mon 00:00-23:59 UTC"
"""A maintenance window that holds RUN_AT."""


# -- helpers -----------------------------------------------------------------------------------


def disk_path(name: str, zone: str = Z) -> str:
    return f"projects/{P}/zones/{zone}/disks/{name}"


def fid(kind: Kind, resource_id: str, region: str = REGION) -> str:
    return finding_id(Unit(Provider.GCP, P, region), kind, resource_id)


@dataclass
class World:
    """The emulators, a store, the config and cleaners, with the steps every test repeats."""

    emu: GcpEmulator
    mon: MonitoringEmulator
    store: Store
    config: Config
    clients: GcpClients
    cleaners: Cleaners

    def scan(self, now: datetime = T) -> ScanReport:
        gcp = self.config.providers.gcp
        assert gcp is not None
        provider = GcpProvider(
            gcp, self.config.rules.oversized_instance, clients=self.clients, retry_timeout_s=2
        )
        prices = {Provider.GCP: GcpPriceBook(live=False)}
        return run_scan(self.config, self.store, [provider], prices, now=now)

    def approve(self, ids: Sequence[str], now: datetime = T) -> None:
        decide(
            self.store,
            list(ids),
            Decision.APPROVE,
            actor="alice",
            approvers=("alice",),
            actionable=set(self.cleaners),
            source={"via": "test"},
            now=now,
        )

    def run(
        self, *, execute: bool = True, now: datetime = RUN_AT, ids: Sequence[str] | None = None
    ) -> CleanupReport:
        return CleanupRun(self.config, self.store, self.cleaners, execute=execute, now=now).run(ids)

    def cleaner(self, kind: Kind) -> Any:
        return self.cleaners[(Provider.GCP, kind)]

    def compute(self, cls: Any) -> Any:
        """A separate real REST client on the emulator: the test's own hands in the cloud."""
        return cls(
            credentials=AnonymousCredentials(),
            transport="rest",
            client_options={"api_endpoint": self.emu.endpoint},
        )

    # -- observations ------------------------------------------------------------------------

    def exists(self, scope: str, collection: str, name: str) -> bool:
        try:
            self.emu.resource(P, scope, collection, name)
        except KeyError:
            return False
        return True

    def disk_exists(self, name: str, zone: str = Z) -> bool:
        return self.exists(f"zones/{zone}", "disks", name)

    def mutations(self) -> list[tuple[str, str]]:
        """Every (method, path) that could change something, in the order the emulator got them."""
        return [
            (r.method, r.path)
            for r in self.emu.requests
            if r.method in ("POST", "DELETE") and not r.path.endswith("testIamPermissions")
        ]

    def permission_probes(self) -> list[Any]:
        return [r for r in self.emu.requests if r.path.endswith("testIamPermissions")]

    def snapshots(self) -> dict[str, dict[str, Any]]:
        """Every snapshot in the project (listed with the real client), as the emulator keeps it."""
        client = self.compute(compute_v1.SnapshotsClient)
        names = [snapshot.name for snapshot in client.list(project=P)]
        client.transport.close()
        return {name: self.emu.resource(P, "global", "snapshots", name) for name in names}

    def assert_untouched(self, finding: str, disk: str, *, list_snapshots: bool = True) -> None:
        assert self.disk_exists(disk)
        assert self.mutations() == []  # no createSnapshot, no DELETE
        if list_snapshots:
            assert self.snapshots() == {}
        assert self.store.actions(finding) == []
        assert [e for e in self.store.events(finding) if e.type == "intent"] == []


def make_world(
    emu: GcpEmulator,
    mon: MonitoringEmulator,
    store: Store,
    cleanup: Mapping[str, Any] | None = None,
) -> World:
    data = {
        "providers": {
            "gcp": {
                "projects": [P],
                "credentials": "anonymous",
                "endpoints": {
                    "compute": emu.endpoint,
                    "billing": emu.endpoint,
                    "resource_manager": emu.endpoint,
                    "monitoring": mon.target,
                    "monitoring_insecure": True,
                },
            }
        },
        "rules": {
            "idle_volume": {"min_unattached_days": 0},
            "unattached_ip": {"min_unattached_days": 0},
        },
        "cleanup": {"execute": True, "cli_approvers": ["alice"], **(cleanup or {})},
    }
    cfg = make_config(yaml.safe_dump(data))
    assert cfg.providers.gcp is not None
    clients = GcpClients(cfg.providers.gcp, monitoring_channel=mon.channel)
    cleaners = build_cleaners(cfg, gcp_clients=clients, today=lambda: RUN_AT)
    return World(emu, mon, store, cfg, clients, cleaners)


@pytest.fixture
def emu() -> Iterator[GcpEmulator]:
    with GcpEmulator() as emulator:
        yield emulator


@pytest.fixture
def mon() -> Iterator[MonitoringEmulator]:
    with MonitoringEmulator() as emulator:
        yield emulator


@pytest.fixture
def world(emu: GcpEmulator, mon: MonitoringEmulator, store: Store) -> World:
    return make_world(emu, mon, store)


@pytest.fixture
def approved_disk(world: World) -> str:
    """One never-attached disk 'scratch' (labelled team=data), scanned and approved by alice."""
    world.emu.add_disk(P, Z, "scratch", size_gb=100, labels={"team": "data"}, created=OLD)
    report = world.scan()
    assert not report.failed, report.failed
    finding = fid(Kind.IDLE_VOLUME, disk_path("scratch"))
    world.approve([finding])
    world.emu.requests.clear()  # from here on, only what cleanup does
    return finding


def only_line(report: CleanupReport, finding: str) -> CleanupLine:
    [line] = [line for line in report.lines if line.finding_id == finding]
    return line


def index_of(calls: list[tuple[str, str]], method: str, suffix: str) -> int:
    [index] = [n for n, (m, path) in enumerate(calls) if m == method and path.endswith(suffix)]
    return index


# -- path helpers ------------------------------------------------------------------------------


def test_path_parts_and_label_values() -> None:
    assert path_parts(disk_path("d1")) == {"projects": P, "zones": Z, "disks": "d1"}
    assert path_parts(f"projects/{P}/global/addresses/a") == {
        "projects": P,
        "global": "global",
        "addresses": "a",
    }
    assert path_parts(f"projects/{P}/regions/us-east1/addresses/a")["regions"] == "us-east1"
    assert label_value("Finding:ID/With Spaces") == "finding-id-with-spaces"
    assert len(label_value("x" * 100)) == 63


# -- the key safety rail: no approval, no action -----------------------------------------------


def test_execute_enabled_but_nothing_approved_deletes_nothing(world: World) -> None:
    world.emu.add_disk(P, Z, "scratch", created=OLD)
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, disk_path("scratch"))
    assert world.config.cleanup.execute is True
    world.emu.requests.clear()

    everything = world.run(execute=True)
    named = world.run(execute=True, ids=[finding])

    assert everything.lines == ()
    assert only_line(named, finding).stage is Stage.SKIPPED
    assert world.store.get(finding).status is Status.OPEN
    world.assert_untouched(finding, "scratch")
    assert world.permission_probes() == []


# -- dry run -----------------------------------------------------------------------------------


def test_a_dry_run_is_ready_and_names_the_permissions_it_proved(
    world: World, approved_disk: str
) -> None:
    report = world.run(execute=False)

    line = only_line(report, approved_disk)
    assert line.stage is Stage.WOULD_CLEAN
    assert "testIamPermissions granted compute.disks.createSnapshot, compute.disks.delete" in (
        line.text
    )
    assert "snapshot scratch (100 GiB pd-standard) then delete it" in line.text
    stored = world.store.get(approved_disk)
    assert stored.status is Status.APPROVED
    assert stored.dry_run_ok is True
    assert stored.dry_run_verdict is not None and "compute.disks.delete" in stored.dry_run_verdict
    [probe] = world.permission_probes()
    assert probe.path.endswith(f"{disk_path('scratch')}/testIamPermissions")
    assert sorted(probe.body["permissions"]) == [
        "compute.disks.createSnapshot",
        "compute.disks.delete",
    ]
    world.assert_untouched(approved_disk, "scratch")


def test_a_missing_delete_permission_is_denied_by_name(world: World, approved_disk: str) -> None:
    world.emu.deny_permissions(P, "compute.disks.delete")

    verdict = world.cleaner(Kind.IDLE_VOLUME).dry_run(world.store.get(approved_disk))
    report = world.run()

    assert verdict.readiness is Readiness.DENIED
    assert "missing permission compute.disks.delete" in verdict.verdict
    assert "createSnapshot" not in verdict.verdict
    line = only_line(report, approved_disk)
    assert line.stage is Stage.FAILED
    assert "compute.disks.delete" in line.text
    stored = world.store.get(approved_disk)
    assert stored.status is Status.FAILED and stored.dry_run_ok is False
    world.assert_untouched(approved_disk, "scratch")


def test_a_skip_label_added_after_approval_stops_the_action(
    world: World, approved_disk: str
) -> None:
    disks = world.compute(compute_v1.DisksClient)
    current = disks.get(project=P, zone=Z, disk="scratch")
    disks.set_labels(
        project=P,
        zone=Z,
        resource="scratch",
        zone_set_labels_request_resource={
            "labels": {"team": "data", "costbot-skip": "owner-on-leave"},
            "label_fingerprint": current.label_fingerprint,
        },
    )
    disks.transport.close()
    world.emu.requests.clear()

    verdict = world.cleaner(Kind.IDLE_VOLUME).dry_run(world.store.get(approved_disk))
    report = world.run()

    assert verdict.readiness is Readiness.EXCLUDED and "costbot-skip" in verdict.verdict
    line = only_line(report, approved_disk)
    assert line.stage is Stage.RESOLVED
    assert "costbot-skip" in line.text
    assert world.store.get(approved_disk).status is Status.RESOLVED
    world.assert_untouched(approved_disk, "scratch")


def test_a_disk_attached_after_approval_is_changed_not_deleted(
    world: World, approved_disk: str
) -> None:
    world.emu.add_disk(
        P,
        Z,
        "scratch",
        size_gb=100,
        users=["new-vm"],
        labels={"team": "data"},
        created=OLD,
        last_attach=RUN_AT - timedelta(minutes=5),
    )

    verdict = world.cleaner(Kind.IDLE_VOLUME).dry_run(world.store.get(approved_disk))
    report = world.run()

    assert verdict.readiness is Readiness.CHANGED and "new-vm" in verdict.verdict
    line = only_line(report, approved_disk)
    assert line.stage is Stage.RESOLVED and "attached to new-vm" in line.text
    world.assert_untouched(approved_disk, "scratch")


# -- execution ---------------------------------------------------------------------------------


def test_execute_snapshots_then_deletes_the_disk(world: World, approved_disk: str) -> None:
    report = world.run()

    line = only_line(report, approved_disk)
    assert line.stage is Stage.CLEANED, line.text
    assert not world.disk_exists("scratch")
    calls = world.mutations()
    create = index_of(calls, "POST", f"{disk_path('scratch')}/createSnapshot")
    delete = index_of(calls, "DELETE", disk_path("scratch"))
    assert create < delete
    [(name, snapshot)] = world.snapshots().items()
    assert snapshot["labels"]["costbot-source-disk"] == "scratch"
    assert snapshot["labels"]["costbot-source-zone"] == Z
    assert snapshot["labels"]["costbot-size-gb"] == "100"
    assert snapshot["labels"]["costbot-disk-type"] == "pd-standard"
    assert snapshot["labels"]["team"] == "data"  # the disk's own labels travel with it
    assert snapshot["sourceDisk"].endswith(disk_path("scratch"))
    description = json.loads(snapshot["description"])
    assert description["finding"] == approved_disk
    assert description["source"]["size_gb"] == 100
    stored = world.store.get(approved_disk)
    assert stored.status is Status.CLEANED
    [action] = world.store.actions(approved_disk)
    assert action.action == "snapshot_and_delete_disk" and action.result == str(Result.DONE)
    assert action.data["snapshot"] == f"projects/{P}/global/snapshots/{name}"
    assert snapshot["labels"]["costbot-action-id"] == str(action.id)
    events = [e.type for e in world.store.events(approved_disk)]
    assert events.index("intent") < events.index("result")


def test_delete_without_snapshot_when_configured(
    emu: GcpEmulator, mon: MonitoringEmulator, store: Store
) -> None:
    world = make_world(emu, mon, store, {"snapshot_before_delete": False})
    assert isinstance(world.cleaner(Kind.IDLE_VOLUME), DeleteDisk)
    emu.add_disk(P, Z, "scratch", created=OLD)
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, disk_path("scratch"))
    world.approve([finding])
    emu.requests.clear()

    report = world.run()

    assert only_line(report, finding).stage is Stage.CLEANED
    assert not world.disk_exists("scratch")
    assert world.snapshots() == {}
    assert [m for m, _ in world.mutations()] == ["DELETE"]
    [probe] = world.permission_probes()
    assert probe.body["permissions"] == ["compute.disks.delete"]


def test_a_disk_already_gone_is_success_with_a_note(world: World, approved_disk: str) -> None:
    disks = world.compute(compute_v1.DisksClient)
    disks.delete(project=P, zone=Z, disk="scratch").result(timeout=5)
    disks.transport.close()
    cleaner = world.cleaner(Kind.IDLE_VOLUME)
    assert isinstance(cleaner, SnapshotAndDeleteDisk)

    outcome = cleaner.execute(world.store.get(approved_disk), {"action_id": 99})
    report = world.run()

    assert outcome.result is Result.ALREADY_GONE
    assert "already gone" in outcome.note
    line = only_line(report, approved_disk)
    assert line.stage is Stage.RESOLVED and "no longer exists" in line.text
    assert world.snapshots() == {}
    assert [m for m, _ in world.mutations()] == ["DELETE"]  # only the test's own delete


def test_release_regional_and_global_addresses_records_the_ips(world: World) -> None:
    world.emu.add_address(P, "us-east1", "old-lb-ip", address="34.120.10.1", created=OLD)
    world.emu.add_address(P, None, "anycast-ip", address="34.117.20.2", created=OLD)
    world.scan()
    regional = fid(
        Kind.UNATTACHED_IP, f"projects/{P}/regions/us-east1/addresses/old-lb-ip", "us-east1"
    )
    global_ = fid(Kind.UNATTACHED_IP, f"projects/{P}/global/addresses/anycast-ip", "global")
    world.approve([regional, global_])
    world.emu.requests.clear()

    report = world.run()

    for finding, ip in ((regional, "34.120.10.1"), (global_, "34.117.20.2")):
        line = only_line(report, finding)
        assert line.stage is Stage.CLEANED, line.text
        assert line.data["ip"] == ip and ip in line.text
        [action] = world.store.actions(finding)
        assert action.action == "release_address" and action.data["ip"] == ip
        result = [e for e in world.store.events(finding) if e.type == "result"][-1]
        assert ip in result.note
    assert not world.exists("regions/us-east1", "addresses", "old-lb-ip")
    assert not world.exists("global", "addresses", "anycast-ip")
    probes = {r.path: r.body["permissions"] for r in world.permission_probes()}
    assert probes == {
        f"/compute/v1/projects/{P}/regions/us-east1/addresses/old-lb-ip/testIamPermissions": [
            "compute.addresses.delete"
        ],
        f"/compute/v1/projects/{P}/global/addresses/anycast-ip/testIamPermissions": [
            "compute.globalAddresses.delete"
        ],
    }
    assert isinstance(world.cleaner(Kind.UNATTACHED_IP), ReleaseAddress)


def test_an_address_in_use_after_approval_is_not_released(world: World) -> None:
    world.emu.add_address(P, "us-east1", "ip", address="34.1.1.1", created=OLD)
    world.scan()
    finding = fid(Kind.UNATTACHED_IP, f"projects/{P}/regions/us-east1/addresses/ip", "us-east1")
    world.approve([finding])
    world.emu.add_address(
        P,
        "us-east1",
        "ip",
        address="34.1.1.1",
        status="IN_USE",
        users=[f"projects/{P}/zones/us-east1-b/instances/vm"],
        created=OLD,
    )
    world.emu.requests.clear()

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.RESOLVED and "in use" in line.text
    assert world.exists("regions/us-east1", "addresses", "ip")
    assert world.mutations() == []


# -- rails around the GCP scan unit ('*' region, findings in real regions) ---------------------


def test_a_failed_latest_scan_of_the_project_holds_cleanup(
    world: World, approved_disk: str
) -> None:
    world.emu.fail_project(P, 403, "Compute Engine API has not been used in project")
    rescan = world.scan(now=T + timedelta(minutes=30))
    assert rescan.failed
    world.emu.requests.clear()

    report = world.run()

    line = only_line(report, approved_disk)
    assert line.stage is Stage.HELD
    assert "failed" in line.text and P in line.text
    assert world.store.get(approved_disk).status is Status.APPROVED
    # the project still answers 403, so its snapshots cannot be listed: mutations prove enough
    world.assert_untouched(approved_disk, "scratch", list_snapshots=False)


def test_max_per_run_zero_acts_on_nothing(
    emu: GcpEmulator, mon: MonitoringEmulator, store: Store
) -> None:
    world = make_world(emu, mon, store, {"max_per_run": 0})
    emu.add_disk(P, Z, "scratch", created=OLD)
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, disk_path("scratch"))
    world.approve([finding])
    emu.requests.clear()

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.HELD and "max_per_run" in line.text
    world.assert_untouched(finding, "scratch")


# -- crash recovery ----------------------------------------------------------------------------


def crash_after_intent(world: World, finding: str) -> int:
    """What a run that died right after writing its intent leaves behind: the open action."""
    return world.store.begin_action(
        finding,
        action="snapshot_and_delete_disk",
        run_id="crashed-run",
        params={"disk": "scratch"},
        actor=ACTOR,
        now=T + timedelta(minutes=10),
    )


def take_snapshot(world: World, name: str) -> None:
    disks = world.compute(compute_v1.DisksClient)
    disks.create_snapshot(
        project=P, zone=Z, disk="scratch", snapshot_resource={"name": name}
    ).result(timeout=5)
    disks.transport.close()


def test_recover_after_a_crash_between_delete_and_result_is_done(
    world: World, approved_disk: str
) -> None:
    action_id = crash_after_intent(world, approved_disk)
    take_snapshot(world, SnapshotAndDeleteDisk.snapshot_name("scratch", action_id))
    disks = world.compute(compute_v1.DisksClient)
    disks.delete(project=P, zone=Z, disk="scratch").result(timeout=5)
    disks.transport.close()
    world.emu.requests.clear()

    report = world.run()

    line = only_line(report, approved_disk)
    assert line.stage is Stage.CLEANED and line.text.startswith("recovered:")
    [action] = world.store.actions(approved_disk)
    assert action.id == action_id and action.result == str(Result.DONE)
    assert world.store.get(approved_disk).status is Status.CLEANED
    assert world.mutations() == []  # nothing was repeated


def test_recover_finds_the_disk_gone_without_our_snapshot(world: World, approved_disk: str) -> None:
    crash_after_intent(world, approved_disk)
    disks = world.compute(compute_v1.DisksClient)
    disks.delete(project=P, zone=Z, disk="scratch").result(timeout=5)
    disks.transport.close()

    outcome = world.cleaner(Kind.IDLE_VOLUME).recover(
        world.store.get(approved_disk), {"action_id": world.store.open_actions()[0].id}
    )

    assert outcome is not None and outcome.result is Result.ALREADY_GONE
    assert "no snapshot" in outcome.note


def test_a_crash_after_the_snapshot_reuses_it_instead_of_taking_another(
    world: World, approved_disk: str
) -> None:
    action_id = crash_after_intent(world, approved_disk)
    name = SnapshotAndDeleteDisk.snapshot_name("scratch", action_id)
    take_snapshot(world, name)
    world.emu.requests.clear()

    report = world.run()

    lines = [line for line in report.lines if line.finding_id == approved_disk]
    assert [line.stage for line in lines] == [Stage.CLEANED]
    assert not world.disk_exists("scratch")
    assert list(world.snapshots()) == [name]
    assert [m for m, _ in world.mutations()] == ["DELETE"]
    first, second = world.store.actions(approved_disk)
    assert first.id == action_id and first.result == "interrupted"
    assert second.result == str(Result.DONE) and second.data["snapshot"].endswith(name)


# -- resize ------------------------------------------------------------------------------------


@pytest.fixture
def resize_world(emu: GcpEmulator, mon: MonitoringEmulator, store: Store) -> World:
    return make_world(emu, mon, store, {"allow_resize": True, "maintenance_window": WINDOW})


def oversized_vm(world: World, name: str = "api", **extra: Any) -> str:
    """An n2-standard-8 averaging 3 % (peak 15 %) for 14 days, scanned and approved."""
    raw = world.emu.add_instance(P, Z, name, created=OLD, last_start=OLD, **extra)
    hours = [(T - timedelta(hours=h), 0.03, 0.15) for h in range(1, 14 * 24 + 1)]
    world.mon.set_cpu(P, raw["id"], name, Z, hours)
    report = world.scan()
    assert not report.failed, report.failed
    finding = fid(Kind.OVERSIZED_INSTANCE, f"projects/{P}/zones/{Z}/instances/{name}")
    assert world.store.get(finding).details["recommended_type"] == "n2-standard-2"
    world.approve([finding])
    world.emu.requests.clear()
    return finding


def instance_state(world: World, name: str = "api") -> tuple[str, str]:
    raw = world.emu.resource(P, f"zones/{Z}", "instances", name)
    return raw["status"], raw["machineType"].rsplit("/", 1)[-1]


def test_resize_stops_changes_the_type_and_starts(resize_world: World) -> None:
    world = resize_world
    finding = oversized_vm(world)

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED, line.text
    assert instance_state(world) == ("RUNNING", "n2-standard-2")
    calls = [path.rsplit("/", 1)[-1] for method, path in world.mutations()]
    assert calls == ["stop", "setMachineType", "start"]
    [probe] = world.permission_probes()
    assert probe.body["permissions"] == [
        "compute.instances.stop",
        "compute.instances.setMachineType",
        "compute.instances.start",
    ]


def test_resize_outside_the_maintenance_window_is_held(
    emu: GcpEmulator, mon: MonitoringEmulator, store: Store
) -> None:
    world = make_world(
        emu, mon, store, {"allow_resize": True, "maintenance_window": "Sat 02:00-06:00 UTC"}
    )
    finding = oversized_vm(world)

    report = world.run()

    assert only_line(report, finding).stage is Stage.HELD
    assert instance_state(world) == ("RUNNING", "n2-standard-8")
    assert world.mutations() == []


def test_resize_refuses_a_managed_instance_group_member(resize_world: World) -> None:
    world = resize_world
    mig = f"https://www.googleapis.com/compute/v1/projects/{P}/zones/{Z}/instanceGroupManagers/web"
    finding = oversized_vm(world, "web-x1z", created_by=mig)

    verdict = world.cleaner(Kind.OVERSIZED_INSTANCE).dry_run(world.store.get(finding))
    report = world.run()

    assert (
        verdict.readiness is Readiness.REFUSED and "managed instance group web" in verdict.verdict
    )
    line = only_line(report, finding)
    assert line.stage is Stage.FAILED and "managed instance group" in line.text
    assert instance_state(world, "web-x1z") == ("RUNNING", "n2-standard-8")
    assert world.mutations() == []


def test_a_failed_type_change_starts_the_instance_again_unchanged(resize_world: World) -> None:
    world = resize_world
    finding = oversized_vm(world)
    stored = world.store.get(finding)
    bogus = replace(stored, details={**stored.details, "recommended_type": "n2-bogus-3"})
    resize = world.cleaner(Kind.OVERSIZED_INSTANCE)
    assert isinstance(resize, ResizeGcpInstance)

    with pytest.raises(CleanupError, match="setMachineType"):
        resize.execute(bogus, {"action_id": 1})

    assert instance_state(world) == ("RUNNING", "n2-standard-8")
    calls = [path.rsplit("/", 1)[-1] for method, path in world.mutations()]
    assert calls == ["stop", "setMachineType", "start"]


def test_resize_recover_restarts_an_instance_left_stopped(resize_world: World) -> None:
    world = resize_world
    finding = oversized_vm(world)
    vms = world.compute(compute_v1.InstancesClient)
    vms.stop(project=P, zone=Z, instance="api").result(timeout=5)
    vms.transport.close()

    outcome = world.cleaner(Kind.OVERSIZED_INSTANCE).recover(
        world.store.get(finding), {"was_running": True, "to_type": "n2-standard-2"}
    )

    assert outcome is None  # the type never changed: not done, back through the rails
    assert instance_state(world) == ("RUNNING", "n2-standard-8")


# -- the re-check must be about the approved resource, not just its name -----------------------


def test_a_disk_recreated_under_the_same_name_is_not_deleted(
    world: World, approved_disk: str
) -> None:
    old_id = world.emu.resource(P, f"zones/{Z}", "disks", "scratch")["id"]
    disks = world.compute(compute_v1.DisksClient)
    disks.delete(project=P, zone=Z, disk="scratch").result(timeout=5)
    disks.transport.close()
    fresh = world.emu.add_disk(
        P,
        Z,
        "scratch",
        size_gb=100,
        labels={"team": "data"},
        created=RUN_AT - timedelta(minutes=10),
    )
    assert fresh["id"] != old_id
    world.emu.requests.clear()

    report = world.run()

    # Regression: only the name was re-checked, so the new disk was snapshotted and deleted.
    line = only_line(report, approved_disk)
    assert line.stage is Stage.RESOLVED and "re-created" in line.text
    assert world.disk_exists("scratch")
    assert world.emu.resource(P, f"zones/{Z}", "disks", "scratch")["id"] == fresh["id"]
    assert world.mutations() == []


def test_an_address_re_reserved_with_another_ip_is_not_released(world: World) -> None:
    world.emu.add_address(P, "us-east1", "lb-ip", address="34.1.1.1", created=OLD)
    world.scan()
    finding = fid(Kind.UNATTACHED_IP, f"projects/{P}/regions/us-east1/addresses/lb-ip", "us-east1")
    world.approve([finding])
    world.emu.add_address(
        P, "us-east1", "lb-ip", address="34.9.9.9", created=RUN_AT - timedelta(minutes=10)
    )
    world.emu.requests.clear()

    report = world.run()

    # Regression: the IP was never compared, so 34.9.9.9 was released instead.
    line = only_line(report, finding)
    assert line.stage is Stage.RESOLVED
    assert "34.9.9.9" in line.text and "34.1.1.1" in line.text
    assert world.exists("regions/us-east1", "addresses", "lb-ip")
    assert world.mutations() == []


def test_a_disk_of_a_long_stopped_instance_is_never_detached_or_deleted(world: World) -> None:
    world.emu.add_instance(
        P, Z, "legacy", status="TERMINATED", created=OLD, last_stop=T - timedelta(days=45)
    )
    world.emu.add_disk(P, Z, "legacy-data", users=["legacy"], created=OLD, last_attach=OLD)
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, disk_path("legacy-data"))
    assert world.store.get(finding).details["idle_reason"] == "attached_to_stopped_instance"
    world.approve([finding])
    world.emu.requests.clear()

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.FAILED  # refused: the waste is still there, costbot won't detach
    assert "attached to legacy" in line.text and "never detaches" in line.text
    assert world.store.get(finding).status is Status.FAILED
    world.assert_untouched(finding, "legacy-data")
