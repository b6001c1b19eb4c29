"""The Azure cleaners against the local Azure emulator with the REAL azure-mgmt clients: each
cleaner on its own (dry run = uncached re-read + the permissions probe, execute, recover) and
through CleanupRun where the safety rails matter.

Findings come from a real scan into a real store; approvals go through costbot.approvals.decide;
cleaners come from build_cleaners(config, azure_clients=...). What the cloud looks like
afterwards is read back from the emulator through the same SDK clients, and the order of the
calls costbot made is read from the emulator's request log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.core.exceptions import ResourceNotFoundError

from cleaners import build_cleaners
from cleaners.azure import DeleteDisk, DeletePublicIp, SnapshotAndDeleteDisk
from cleaners.azure_resize import ResizeAzureVm
from costbot.actions import Readiness, Result
from costbot.approvals import Decision, decide
from costbot.cleanup import ACTOR, Cleaners, CleanupReport, CleanupRun, Stage
from costbot.config import AzureConfig, Config
from costbot.emulators.azure import AzureEmulator
from costbot.emulators.azure_state import RecordedRequest, Reply, error
from costbot.errors import CleanupError
from costbot.model import Kind, Provider, Status, Unit, finding_id
from costbot.pricing.azure import AzurePriceBook
from costbot.providers.azure import AzureProvider
from costbot.providers.azure_clients import AzureClients
from costbot.scan import ScanReport, run_scan
from costbot.store import Store, StoredFinding
from tests.conftest import make_config

SUB = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
RG = "rg-app"
LOCATION = "eastus"
T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
"""A Monday: the scan and the approval happen now."""
RUN_AT = T + timedelta(hours=1)
EVERY_DAY = "Mon-Sun 00:00-23:59 UTC"
WRITES = {"PUT", "PATCH", "POST", "DELETE"}
DISK_DELETE = "Microsoft.Compute/disks/delete"
SNAPSHOT_WRITE = "Microsoft.Compute/snapshots/write"


# -- helpers -----------------------------------------------------------------------------------


def arm_id(kind: str, name: str, sub: str = SUB) -> str:
    provider = "Microsoft.Network" if kind == "publicIPAddresses" else "Microsoft.Compute"
    return f"/subscriptions/{sub}/resourceGroups/{RG}/providers/{provider}/{kind}/{name}"


def config(
    emu: AzureEmulator, cleanup: Mapping[str, Any] | None = None, subs: Sequence[str] = (SUB,)
) -> Config:
    """Idle clocks at 0 days so the first scan reports; execution on; alice approves."""
    azure = AzureConfig(
        subscriptions=list(subs), management_endpoint=emu.endpoint, ca_bundle=Path(emu.ca_path)
    )
    data = {
        "providers": {"azure": azure.model_dump(mode="json", exclude_defaults=True)},
        "rules": {
            "idle_volume": {"min_unattached_days": 0},
            "unattached_ip": {"min_unattached_days": 0},
        },
        "cleanup": {"execute": True, "cli_approvers": ["alice"], **(cleanup or {})},
    }
    return make_config(yaml.safe_dump(data))


def fid(kind: Kind, resource_id: str, sub: str = SUB) -> str:
    return finding_id(Unit(Provider.AZURE, sub, LOCATION), kind, resource_id)


@dataclass
class World:
    """The emulator, a store, the SDK clients costbot uses, and the cleaners of a config."""

    emu: HookedEmulator
    store: Store
    config: Config
    clients: AzureClients
    cleaners: Cleaners

    # -- seeding -------------------------------------------------------------------------------

    def disk(self, name: str = "data", **kwargs: Any) -> str:
        kwargs.setdefault("tags", {"team": "data"})
        return self.emu.add_disk(
            kwargs.pop("sub", SUB), RG, name, LOCATION, created=T - timedelta(days=60), **kwargs
        )

    def ip(self, name: str = "pip", address: str = "20.1.2.3", **kwargs: Any) -> str:
        return self.emu.add_public_ip(SUB, RG, name, LOCATION, ip=address, **kwargs)

    def vm(self, name: str = "big", size: str = "Standard_D8s_v5", **kwargs: Any) -> str:
        vm_id = self.emu.add_vm(
            SUB, RG, name, LOCATION, size=size, created=T - timedelta(days=90), **kwargs
        )
        hours = [(T - timedelta(hours=h), 3.0, 20.0) for h in range(1, 14 * 24 + 1)]
        self.emu.set_cpu(vm_id, hours)  # avg 3 %, peak 20 % for 14 days: oversized
        return vm_id

    # -- the bot ---------------------------------------------------------------------------------

    def scan(self, now: datetime = T) -> ScanReport:
        azure = self.config.providers.azure
        assert azure is not None
        provider = AzureProvider(azure, self.config.rules.oversized_instance, clients=self.clients)
        prices = {Provider.AZURE: AzurePriceBook(live=False)}
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

    def scanned(self, kind: Kind, resource_id: str, *, approve: bool = True) -> StoredFinding:
        """Scan, check the resource became a finding, approve it; the stored finding."""
        report = self.scan()
        assert not report.failed, [u.error for u in report.failed]
        finding = fid(kind, resource_id)
        if approve:
            self.approve([finding])
        return self.store.get(finding)

    def run(
        self, *, execute: bool = True, now: datetime = RUN_AT, ids: Sequence[str] | None = None
    ) -> CleanupReport:
        return CleanupRun(self.config, self.store, self.cleaners, execute=execute, now=now).run(ids)

    def cleaner(self, kind: Kind) -> Any:
        return self.cleaners[(Provider.AZURE, kind)]

    # -- observations ------------------------------------------------------------------------

    @property
    def compute(self) -> Any:
        return self.clients.compute(SUB)

    @property
    def network(self) -> Any:
        return self.clients.network(SUB)

    def disk_exists(self, name: str = "data") -> bool:
        try:
            self.compute.disks.get(RG, name)
        except ResourceNotFoundError:
            return False
        return True

    def ip_exists(self, name: str = "pip") -> bool:
        try:
            self.network.public_ip_addresses.get(RG, name)
        except ResourceNotFoundError:
            return False
        return True

    def snapshots(self) -> list[Any]:
        return list(self.compute.snapshots.list())

    def vm_state(self, name: str = "big") -> tuple[str, str]:
        vm = self.compute.virtual_machines.get(RG, name, expand="instanceView")
        codes = [s.code for s in vm.instance_view.statuses if s.code.startswith("PowerState/")]
        return vm.hardware_profile.vm_size, codes[0].removeprefix("PowerState/")

    def writes(self) -> list[tuple[str, str]]:
        """Every changing call costbot (or the test) made, in order: (method, lowercased path)."""
        return [(r.method, r.path.lower()) for r in self.emu.requests if r.method in WRITES]

    def intents(self, finding: str) -> list[Any]:
        return [e for e in self.store.events(finding) if e.type == "intent"]


def make_world(
    emu: HookedEmulator, store: Store, cleanup: Mapping[str, Any] | None = None
) -> World:
    cfg = config(emu, cleanup)
    assert cfg.providers.azure is not None
    clients = AzureClients(
        cfg.providers.azure, credential=emu.credential(), retry_total=0, polling_interval_s=0
    )
    cleaners = build_cleaners(cfg, azure_clients=clients, today=lambda: RUN_AT)
    return World(emu, store, cfg, clients, cleaners)


class HookedEmulator(AzureEmulator):
    """The emulator, plus hooks that run before it answers matching requests: to change the
    cloud in the middle of an action, or to fail one call with an ARM error."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[tuple[str, str, Callable[[RecordedRequest], Reply | None]]] = []

    def before(
        self, method: str, path_part: str, hook: Callable[[RecordedRequest], Reply | None]
    ) -> None:
        self.hooks.append((method, path_part.lower(), hook))

    def answer(self, request: RecordedRequest, *, malformed: bool = False) -> Reply:
        for method, part, hook in self.hooks:
            if request.method == method and part in request.path.lower():
                replaced = hook(request)
                if replaced is not None:
                    self.requests.append(request)
                    return replaced
        return super().answer(request, malformed=malformed)


@pytest.fixture
def emu() -> Iterator[HookedEmulator]:
    with HookedEmulator() as emulator:
        yield emulator


@pytest.fixture
def world(emu: HookedEmulator, store: Store) -> World:
    return make_world(emu, store)


@pytest.fixture
def resize_world(emu: HookedEmulator, store: Store) -> World:
    return make_world(emu, store, {"allow_resize": True, "maintenance_window": EVERY_DAY})


@pytest.fixture
def approved_disk(world: World) -> tuple[str, StoredFinding]:
    """One unattached disk, scanned and approved by alice at T: (disk id, stored finding)."""
    disk = world.disk()
    finding = world.scanned(Kind.IDLE_VOLUME, disk)
    assert finding.status is Status.APPROVED
    return disk, finding


def only_line(report: CleanupReport, finding: str) -> Any:
    [line] = [line for line in report.lines if line.finding_id == finding]
    return line


def index_of(calls: list[tuple[str, str]], method: str, path_part: str) -> int:
    [index] = [i for i, (m, p) in enumerate(calls) if m == method and path_part.lower() in p]
    return index


def is_permission_probe(request: RecordedRequest) -> bool:
    path = request.path.lower()
    return path.endswith("/providers/microsoft.authorization/permissions")


# -- build_cleaners ----------------------------------------------------------------------------


def test_build_cleaners_follows_the_config(emu: HookedEmulator) -> None:
    azure = config(emu).providers.azure
    assert azure is not None
    clients = AzureClients(azure, credential=emu.credential(), retry_total=0, polling_interval_s=0)

    default = build_cleaners(config(emu), azure_clients=clients)
    bare = build_cleaners(config(emu, {"snapshot_before_delete": False}), azure_clients=clients)
    resizing = build_cleaners(config(emu, {"allow_resize": True}), azure_clients=clients)

    assert {k: type(v) for k, v in default.items()} == {
        (Provider.AZURE, Kind.IDLE_VOLUME): SnapshotAndDeleteDisk,
        (Provider.AZURE, Kind.UNATTACHED_IP): DeletePublicIp,
    }
    assert type(bare[(Provider.AZURE, Kind.IDLE_VOLUME)]) is DeleteDisk
    resize = resizing[(Provider.AZURE, Kind.OVERSIZED_INSTANCE)]
    assert type(resize) is ResizeAzureVm
    assert resize.needs_window is True
    assert not default[(Provider.AZURE, Kind.IDLE_VOLUME)].needs_window
    assert emu.requests == []  # building cleaners calls nothing


# -- SnapshotAndDeleteDisk: dry run ------------------------------------------------------------


def test_disk_dry_run_is_ready_names_what_it_proved_and_changes_nothing(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk
    before = len(world.emu.requests)

    check = world.cleaner(Kind.IDLE_VOLUME).dry_run(finding)

    assert check.readiness is Readiness.READY and check.ok
    for words in (
        "snapshot data (128 GiB Premium_LRS) then delete it",
        f"${finding.monthly_savings_usd:,.2f}/month",
        "re-read just now",
        "no opt-out tag",
        f"resource group {RG}",
        SNAPSHOT_WRITE,
        DISK_DELETE,
    ):
        assert words in check.verdict
    assert dict(check.params) == {
        "disk_id": disk,
        "location": LOCATION,
        "size_gb": 128,
        "sku": "Premium_LRS",
        "zones": [],
        "tags": {"team": "data"},
    }
    made = world.emu.requests[before:]
    assert [r.method for r in made] == ["GET", "GET"]  # the disk, then the permissions
    assert made[0].path.lower() == disk.lower()
    assert is_permission_probe(made[1])
    assert made[1].path.lower().startswith(f"/subscriptions/{SUB}/resourcegroups/{RG}/")
    assert world.disk_exists()
    assert world.snapshots() == []


@pytest.mark.parametrize(
    ("actions", "not_actions", "missing"),
    [
        (["*"], [DISK_DELETE], [DISK_DELETE]),
        (["*"], ["Microsoft.Compute/disks/*"], [DISK_DELETE]),
        (["*/read"], [], [SNAPSHOT_WRITE, DISK_DELETE]),
        (["Microsoft.Compute/snapshots/*"], [], [DISK_DELETE]),
    ],
    ids=["not-delete", "not-disks-wildcard", "reader", "snapshots-only"],
)
def test_disk_dry_run_without_a_permission_is_denied_naming_it(
    world: World,
    approved_disk: tuple[str, StoredFinding],
    actions: list[str],
    not_actions: list[str],
    missing: list[str],
) -> None:
    _, finding = approved_disk
    world.emu.set_permissions(SUB, actions, not_actions)

    check = world.cleaner(Kind.IDLE_VOLUME).dry_run(finding)

    assert check.readiness is Readiness.DENIED
    assert f"missing permission {', '.join(missing)}" in check.verdict
    assert RG in check.verdict
    for present in {SNAPSHOT_WRITE, DISK_DELETE} - set(missing):
        assert present not in check.verdict


def test_a_denied_dry_run_fails_the_finding_and_deletes_nothing(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    _, finding = approved_disk
    world.emu.set_permissions(SUB, ["*"], [DISK_DELETE])

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.FAILED
    assert f"missing permission {DISK_DELETE}" in line.text
    assert world.store.get(finding.id).status is Status.FAILED
    assert world.disk_exists()
    assert world.writes() == []
    assert world.intents(finding.id) == []


def test_no_grant_at_all_is_denied(world: World, approved_disk: tuple[str, StoredFinding]) -> None:
    _, finding = approved_disk
    world.emu.set_permissions(SUB, [], [])

    check = world.cleaner(Kind.IDLE_VOLUME).dry_run(finding)

    assert check.readiness is Readiness.DENIED
    assert f"missing permission {SNAPSHOT_WRITE}, {DISK_DELETE}" in check.verdict


def test_an_error_from_the_permission_check_is_a_denial_never_a_go(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    _, finding = approved_disk
    busy = error("ServerBusy", "The server is busy; try again later.")
    world.emu.before("GET", "/microsoft.authorization/permissions", lambda _r: Reply(503, busy))

    check = world.cleaner(Kind.IDLE_VOLUME).dry_run(finding)
    report = world.run()

    assert check.readiness is Readiness.DENIED
    assert "dry run failed" in check.verdict
    assert only_line(report, finding.id).stage is Stage.FAILED
    assert world.disk_exists()
    assert world.writes() == []


# -- SnapshotAndDeleteDisk: the re-check after approval ----------------------------------------


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ({"costbot:skip": ""}, "tagged costbot:skip"),
        ({"costbot:keep-until": "2026-12-31"}, "costbot:keep-until=2026-12-31"),
    ],
)
def test_an_opt_out_tag_added_after_approval_keeps_the_disk(
    world: World, approved_disk: tuple[str, StoredFinding], tags: dict[str, str], words: str
) -> None:
    _, finding = approved_disk
    world.compute.disks.begin_update(RG, "data", {"tags": {"team": "data", **tags}}).result()
    tagged_at = len(world.writes())
    cleaner = world.cleaner(Kind.IDLE_VOLUME)

    check = cleaner.dry_run(finding)
    outcome = cleaner.execute(finding, {"action_id": 99})
    report = world.run()

    assert check.readiness is Readiness.EXCLUDED
    assert words in check.verdict
    assert outcome.result is Result.CHANGED
    line = only_line(report, finding.id)
    assert line.stage is Stage.RESOLVED
    assert words in line.text
    assert world.store.get(finding.id).status is Status.RESOLVED
    assert world.disk_exists()
    assert world.writes()[tagged_at:] == []  # no snapshot, no delete
    assert world.intents(finding.id) == []


def test_a_disk_attached_after_approval_is_changed_and_kept(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk
    holder = world.vm("app", "Standard_D2s_v5", data_disks=[disk])
    cleaner = world.cleaner(Kind.IDLE_VOLUME)

    check = cleaner.dry_run(finding)
    outcome = cleaner.execute(finding, {"action_id": 99})
    report = world.run()

    assert check.readiness is Readiness.CHANGED
    assert holder.rsplit("/", 1)[-1] in check.verdict  # names the VM
    assert outcome.result is Result.CHANGED
    assert only_line(report, finding.id).stage is Stage.RESOLVED
    assert world.disk_exists()
    assert world.writes() == []
    assert world.snapshots() == []


def test_a_disk_deleted_after_approval_is_already_gone(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk
    world.compute.disks.begin_delete(RG, "data").result()
    cleaner = world.cleaner(Kind.IDLE_VOLUME)

    check = cleaner.dry_run(finding)
    outcome = cleaner.execute(finding, {"action_id": 99})

    assert check.readiness is Readiness.GONE
    assert outcome.result is Result.ALREADY_GONE
    assert disk in outcome.note
    assert world.snapshots() == []


# -- SnapshotAndDeleteDisk: execution ----------------------------------------------------------


def test_execute_snapshots_then_deletes_and_the_snapshot_points_back(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.CLEANED, line.text
    assert not world.disk_exists()
    [snapshot] = world.snapshots()
    [action] = world.store.actions(finding.id)
    assert snapshot.tags == {
        "team": "data",
        "costbot:source-disk": disk,
        "costbot:source-resource-group": RG,
        "costbot:source-disk-name": "data",
        "costbot:finding-id": finding.id,
        "costbot:action-id": str(action.id),
        "costbot:disk-size-gb": "128",
        "costbot:disk-sku": "Premium_LRS",
        "costbot:disk-zones": "",
    }
    assert snapshot.creation_data.source_resource_id == disk
    assert snapshot.location == LOCATION
    calls = world.writes()
    put = index_of(calls, "PUT", f"/snapshots/{snapshot.name}")
    delete = index_of(calls, "DELETE", disk)
    assert put < delete
    assert (action.action, action.result) == ("snapshot_and_delete_disk", "done")
    assert action.data["snapshot_id"] == snapshot.id
    assert world.store.get(finding.id).status is Status.CLEANED
    trail = [(e.type, e.to_status, e.actor) for e in world.store.events(finding.id)]
    assert trail == [
        ("status", "open", "costbot:scan"),
        ("status", "approved", "alice"),
        ("dry_run", None, ACTOR),
        ("intent", None, ACTOR),
        ("result", "cleaned", ACTOR),
    ]
    # the permission probe came before anything changed
    first_write = next(i for i, r in enumerate(world.emu.requests) if r.method in WRITES)
    assert any(is_permission_probe(r) for r in world.emu.requests[:first_write])


def test_delete_without_snapshot_when_configured(emu: HookedEmulator, store: Store) -> None:
    world = make_world(emu, store, {"snapshot_before_delete": False})
    disk = world.disk()
    finding = world.scanned(Kind.IDLE_VOLUME, disk)

    check = world.cleaner(Kind.IDLE_VOLUME).dry_run(finding)
    report = world.run()

    assert "without a snapshot" in check.verdict
    assert SNAPSHOT_WRITE not in check.verdict
    assert only_line(report, finding.id).stage is Stage.CLEANED
    assert not world.disk_exists()
    assert world.snapshots() == []
    assert [m for m, _ in world.writes()] == ["DELETE"]
    [action] = world.store.actions(finding.id)
    assert (action.action, action.result) == ("delete_disk", "done")


def test_a_failed_snapshot_means_the_disk_is_not_deleted(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk
    quota = error("OperationNotAllowed", "Operation results in exceeding quota limits of Snapshot.")
    world.emu.before("PUT", "/snapshots/", lambda _request: Reply(409, quota))

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.FAILED
    assert "quota" in line.text
    assert world.disk_exists()
    assert [m for m, p in world.writes() if disk.lower() in p] == []
    [action] = world.store.actions(finding.id)
    assert action.result == "failed"
    assert world.store.get(finding.id).status is Status.FAILED


@pytest.mark.parametrize("change", ["attach", "opt-out"])
def test_a_disk_changed_while_its_snapshot_was_taken_is_kept_with_the_snapshot(
    world: World, approved_disk: tuple[str, StoredFinding], change: str
) -> None:
    disk, finding = approved_disk

    def meanwhile(_request: RecordedRequest) -> None:
        if change == "attach":
            world.emu.add_vm(
                SUB, RG, "grabber", LOCATION, created=T, power_state="running", data_disks=[disk]
            )
        else:
            world.disk(tags={"team": "data", "costbot:skip": "mine"})
        return None

    world.emu.before("PUT", "/snapshots/", meanwhile)

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.RESOLVED, line.text
    [snapshot] = world.snapshots()
    assert snapshot.id in line.text  # the note says the snapshot was kept
    assert world.disk_exists()
    assert [m for m, p in world.writes() if p == disk.lower()] == []


def test_execute_on_a_disk_already_gone_is_success_with_a_note(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk
    cleaner = world.cleaner(Kind.IDLE_VOLUME)
    params = dict(cleaner.dry_run(finding).params)
    world.compute.disks.begin_delete(RG, "data").result()  # someone else, meanwhile

    outcome = cleaner.execute(finding, {**params, "action_id": 1})

    assert outcome.result is Result.ALREADY_GONE
    assert f"{disk} was already gone" in outcome.note
    assert world.snapshots() == []


# -- the key rail: no approval, no action -------------------------------------------------------


def test_execute_without_an_approval_deletes_nothing(world: World) -> None:
    disk = world.disk()
    ip = world.ip()
    disk_finding = world.scanned(Kind.IDLE_VOLUME, disk, approve=False)
    ip_finding = world.store.get(fid(Kind.UNATTACHED_IP, ip))
    assert world.config.cleanup.execute
    assert disk_finding.status is Status.OPEN

    everything = world.run()
    named = world.run(ids=[disk_finding.id, ip_finding.id])

    assert everything.lines == ()
    assert {line.stage for line in named.lines} == {Stage.SKIPPED}
    assert world.disk_exists()
    assert world.ip_exists()
    assert world.writes() == []
    assert world.store.actions(disk_finding.id) == []
    assert world.store.actions(ip_finding.id) == []
    assert world.store.get(disk_finding.id).status is Status.OPEN


def test_dry_run_mode_changes_nothing(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    _, finding = approved_disk

    report = world.run(execute=False)

    line = only_line(report, finding.id)
    assert line.stage is Stage.WOULD_CLEAN
    assert "no --execute" in line.text
    assert world.disk_exists()
    assert world.writes() == []
    assert world.store.get(finding.id).status is Status.APPROVED


def test_a_failed_latest_scan_of_the_subscription_holds_its_cleanup(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    _, finding = approved_disk
    world.emu.fail_subscription(SUB, 403, "AuthorizationFailed", "no access")
    assert world.scan(now=T + timedelta(minutes=30)).failed

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.HELD
    assert "failed" in line.text
    assert world.writes() == []  # no call that changes anything reached Azure
    assert world.intents(finding.id) == []
    assert world.store.get(finding.id).status is Status.APPROVED


def test_a_failed_scan_of_another_subscription_does_not_hold(
    emu: HookedEmulator, store: Store
) -> None:
    cfg = config(emu, subs=(SUB, OTHER))
    assert cfg.providers.azure is not None
    clients = AzureClients(
        cfg.providers.azure, credential=emu.credential(), retry_total=0, polling_interval_s=0
    )
    world = World(emu, store, cfg, clients, build_cleaners(cfg, azure_clients=clients))
    disk = world.disk()
    emu.fail_subscription(OTHER, 403, "AuthorizationFailed", "no access")
    assert len(world.scan().failed) == 1
    world.approve([fid(Kind.IDLE_VOLUME, disk)])

    report = world.run()

    assert only_line(report, fid(Kind.IDLE_VOLUME, disk)).stage is Stage.CLEANED
    assert not world.disk_exists()


def test_max_per_run_zero_cleans_nothing(emu: HookedEmulator, store: Store) -> None:
    world = make_world(emu, store, {"max_per_run": 0})
    world.disk()
    finding = world.scanned(Kind.IDLE_VOLUME, arm_id("disks", "data"))

    report = world.run()

    assert only_line(report, finding.id).stage is Stage.HELD
    assert world.disk_exists()
    assert [m for m, _ in world.writes()] == []


def test_a_disk_of_a_long_deallocated_vm_is_not_resolved_by_the_recheck(world: World) -> None:
    """It was attached all along: the waste is not gone, so the finding must not be resolved
    (it would only be reopened by the next scan, approved again, resolved again...)."""
    disk = world.disk("vm1-data")
    world.emu.add_vm(
        SUB,
        RG,
        "vm1",
        LOCATION,
        size="Standard_D2s_v5",
        power_state="deallocated",
        created=T - timedelta(days=200),
        power_changed=T - timedelta(days=45),
        data_disks=[disk],
    )
    finding = world.scanned(Kind.IDLE_VOLUME, disk)
    assert finding.details["idle_reason"] == "attached_to_stopped_instance"

    report = world.run()

    assert world.disk_exists("vm1-data")  # the safety part holds either way
    line = only_line(report, finding.id)
    assert line.stage is not Stage.RESOLVED, line.text
    assert world.store.get(finding.id).status is not Status.RESOLVED


# -- crash recovery ----------------------------------------------------------------------------


def crashed_intent(world: World, finding: StoredFinding) -> dict[str, Any]:
    """What a run that died right after writing its intent leaves behind: the exec params."""
    cleaner = world.cleaner(finding.kind)
    check = cleaner.dry_run(finding)
    assert check.ok, check.verdict
    action_id = world.store.begin_action(
        finding.id,
        action=cleaner.action,
        run_id="crashed-run",
        params=check.params,
        actor=ACTOR,
        now=T + timedelta(minutes=30),
    )
    return {**check.params, "action_id": action_id}


def test_recover_reports_done_when_the_disk_is_gone_with_its_snapshot(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    _, finding = approved_disk
    params = crashed_intent(world, finding)
    cleaner = world.cleaner(Kind.IDLE_VOLUME)
    cleaner.execute(finding, params)  # ...and the process died before recording the result
    [snapshot] = world.snapshots()
    writes = len(world.writes())

    outcome = cleaner.recover(finding, params)
    report = world.run()

    assert outcome is not None
    assert outcome.result is Result.DONE
    assert outcome.data["snapshot_id"] == snapshot.id
    line = only_line(report, finding.id)
    assert line.stage is Stage.CLEANED
    assert line.text.startswith("recovered:")
    [action] = world.store.actions(finding.id)
    assert (action.id, action.result) == (params["action_id"], "done")
    assert action.data["snapshot_id"] == snapshot.id
    assert world.store.get(finding.id).status is Status.CLEANED
    assert world.writes()[writes:] == []  # nothing repeated
    assert world.store.open_actions() == []


def test_recover_does_not_claim_a_snapshot_for_a_disk_someone_else_deleted(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    _, finding = approved_disk
    params = crashed_intent(world, finding)
    world.compute.disks.begin_delete(RG, "data").result()

    outcome = world.cleaner(Kind.IDLE_VOLUME).recover(finding, params)

    assert outcome is not None
    assert outcome.result is Result.ALREADY_GONE
    assert "no snapshot" in outcome.note
    assert "snapshot_id" not in outcome.data


def test_an_interrupted_action_on_a_disk_still_there_is_rechecked_and_reuses_its_snapshot(
    world: World, approved_disk: tuple[str, StoredFinding]
) -> None:
    disk, finding = approved_disk
    params = crashed_intent(world, finding)
    cleaner = world.cleaner(Kind.IDLE_VOLUME)
    assert cleaner.recover(finding, params) is None  # the disk is still there: not done
    name = SnapshotAndDeleteDisk.snapshot_name("data", params["action_id"])
    body = {
        "location": LOCATION,
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk}},
    }
    taken = world.compute.snapshots.begin_create_or_update(RG, name, body).result()

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.CLEANED, line.text
    assert line.data["snapshot_id"] == taken.id
    assert [s.id for s in world.snapshots()] == [taken.id]
    assert [m for m, p in world.writes() if "/snapshots/" in p] == ["PUT"]  # only the test's
    assert not world.disk_exists()
    assert [(a.run_id, a.result) for a in world.store.actions(finding.id)] == [
        ("crashed-run", "interrupted"),
        (report.run_id, "done"),
    ]


# -- DeletePublicIp ----------------------------------------------------------------------------


def test_an_unused_public_ip_is_deleted_and_its_address_recorded(world: World) -> None:
    ip = world.ip(address="20.9.8.7")
    finding = world.scanned(Kind.UNATTACHED_IP, ip)

    check = world.cleaner(Kind.UNATTACHED_IP).dry_run(finding)
    report = world.run()

    assert check.readiness is Readiness.READY
    assert "20.9.8.7" in check.verdict
    assert "Microsoft.Network/publicIPAddresses/delete" in check.verdict
    assert only_line(report, finding.id).stage is Stage.CLEANED
    assert not world.ip_exists()
    assert world.writes() == [("DELETE", ip.lower())]
    [action] = world.store.actions(finding.id)
    assert (action.action, action.result) == ("delete_public_ip", "done")
    assert action.params["ip"] == "20.9.8.7"
    assert action.data["ip"] == "20.9.8.7"
    result = world.store.events(finding.id)[-1]
    assert (result.type, result.to_status, result.data["ip"]) == ("result", "cleaned", "20.9.8.7")
    assert "20.9.8.7" in (world.store.get(finding.id).outcome or "")


@pytest.mark.parametrize("holder", ["ip_configuration", "nat_gateway", "prefix"])
def test_a_public_ip_associated_after_approval_is_changed_and_kept(
    world: World, holder: str
) -> None:
    ip = world.ip()
    finding = world.scanned(Kind.UNATTACHED_IP, ip)
    user = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/x/{holder}"
    world.ip(**{holder: user})  # the same IP, now in use
    cleaner = world.cleaner(Kind.UNATTACHED_IP)

    check = cleaner.dry_run(finding)
    outcome = cleaner.execute(finding, {"action_id": 99})
    report = world.run()

    assert check.readiness is Readiness.CHANGED
    assert holder in check.verdict  # names what uses it now
    assert outcome.result is Result.CHANGED
    assert only_line(report, finding.id).stage is Stage.RESOLVED
    assert world.ip_exists()
    assert world.writes() == []


def test_a_public_ip_without_delete_permission_is_denied(world: World) -> None:
    ip = world.ip()
    finding = world.scanned(Kind.UNATTACHED_IP, ip)
    world.emu.set_permissions(SUB, ["*"], ["Microsoft.Network/*/delete"])

    check = world.cleaner(Kind.UNATTACHED_IP).dry_run(finding)

    assert check.readiness is Readiness.DENIED
    assert "missing permission Microsoft.Network/publicIPAddresses/delete" in check.verdict


def test_deleting_a_public_ip_already_gone_is_success_and_recover_says_done(
    world: World,
) -> None:
    ip = world.ip(address="20.5.5.5")
    finding = world.scanned(Kind.UNATTACHED_IP, ip)
    params = crashed_intent(world, finding)
    cleaner = world.cleaner(Kind.UNATTACHED_IP)
    assert cleaner.recover(finding, params) is None  # still there
    world.network.public_ip_addresses.begin_delete(RG, "pip").result()

    outcome = cleaner.execute(finding, params)
    recovered = cleaner.recover(finding, params)

    assert outcome.result is Result.ALREADY_GONE
    assert outcome.data["ip"] == "20.5.5.5"
    assert recovered is not None
    assert (recovered.result, recovered.data["ip"]) == (Result.DONE, "20.5.5.5")


# -- ResizeAzureVm ------------------------------------------------------------------------------


def oversized(world: World, **kwargs: Any) -> tuple[str, StoredFinding]:
    vm = world.vm(**kwargs)
    finding = world.scanned(Kind.OVERSIZED_INSTANCE, vm)
    assert finding.details["instance_type"] == "Standard_D8s_v5"
    assert finding.details["recommended_type"] != "Standard_D8s_v5"
    return vm, finding


def power_calls(world: World, vm: str) -> list[tuple[str, str]]:
    """The changing calls on one VM: (method, what) with what = '' (update) or the action."""
    prefix = vm.lower()
    return [
        (method, path[len(prefix) :].lstrip("/"))
        for method, path in world.writes()
        if path.startswith(prefix)
    ]


def test_resize_in_place_when_the_target_is_offered(resize_world: World) -> None:
    world = resize_world
    vm, finding = oversized(world)
    target = finding.details["recommended_type"]
    world.emu.set_resize_sizes(vm, ["Standard_D8s_v5", target])

    check = world.cleaner(Kind.OVERSIZED_INSTANCE).dry_run(finding)
    report = world.run()

    assert check.ok
    assert "in place" in check.verdict
    assert check.params["in_place"] is True
    assert only_line(report, finding.id).stage is Stage.CLEANED
    assert world.vm_state() == (target, "running")
    assert [m for m, what in power_calls(world, vm)] == ["PATCH"]
    [action] = world.store.actions(finding.id)
    assert (action.data["from_type"], action.data["to_type"]) == ("Standard_D8s_v5", target)


def test_resize_deallocates_resizes_and_starts_when_not_offered_in_place(
    resize_world: World,
) -> None:
    world = resize_world
    vm, finding = oversized(world)
    target = finding.details["recommended_type"]
    world.emu.set_resize_sizes(vm, ["Standard_D8s_v5", "Standard_D16s_v5"])

    check = world.cleaner(Kind.OVERSIZED_INSTANCE).dry_run(finding)
    report = world.run()

    assert check.ok
    assert "deallocate" in check.verdict
    for permission in ("deallocate/action", "virtualMachines/write", "start/action"):
        assert permission in check.verdict
    assert only_line(report, finding.id).stage is Stage.CLEANED
    assert power_calls(world, vm) == [("POST", "deallocate"), ("PATCH", ""), ("POST", "start")]
    assert world.vm_state() == (target, "running")


def test_resize_refuses_a_scale_set_vm(resize_world: World) -> None:
    world = resize_world
    scale_set = arm_id("virtualMachineScaleSets", "web")
    _, finding = oversized(world, scale_set=scale_set)
    assert finding.details["managed_group"] == scale_set

    check = world.cleaner(Kind.OVERSIZED_INSTANCE).dry_run(finding)
    outcome = world.cleaner(Kind.OVERSIZED_INSTANCE).execute(finding, {"action_id": 99})
    report = world.run()

    assert check.readiness is Readiness.REFUSED
    assert "scale set web" in check.verdict
    assert outcome.result is not Result.DONE
    line = only_line(report, finding.id)
    assert line.stage is Stage.FAILED
    assert "scale set" in line.text
    assert world.vm_state() == ("Standard_D8s_v5", "running")
    assert world.writes() == []
    assert world.intents(finding.id) == []


def test_a_failed_resize_restarts_the_vm_on_its_old_size(resize_world: World) -> None:
    world = resize_world
    vm, scanned = oversized(world)
    world.emu.set_resize_sizes(vm, ["Standard_D8s_v5"])
    # a target this location cannot host (the emulator answers 409 OperationNotAllowed)
    details = {**scanned.details, "recommended_type": "Standard_D2ds_v5"}
    finding = dataclasses.replace(scanned, details=details)
    cleaner = world.cleaner(Kind.OVERSIZED_INSTANCE)

    with pytest.raises(CleanupError) as caught:
        cleaner.execute(finding, {"action_id": 99})

    assert "Standard_D2ds_v5" in str(caught.value)
    assert world.vm_state() == ("Standard_D8s_v5", "running")
    calls = power_calls(world, vm)
    assert calls[0] == ("POST", "deallocate")
    assert calls[-1] == ("POST", "start")
    assert [request.body for request in world.emu.requests if request.method == "PATCH"] == [
        {"properties": {"hardwareProfile": {"vmSize": "Standard_D2ds_v5"}}}
    ]


def test_resize_outside_the_maintenance_window_is_held(emu: HookedEmulator, store: Store) -> None:
    world = make_world(
        emu, store, {"allow_resize": True, "maintenance_window": "Sat 02:00-06:00 UTC"}
    )
    _, finding = oversized(world)

    report = world.run()

    line = only_line(report, finding.id)
    assert line.stage is Stage.HELD
    assert "maintenance window" in line.text
    assert world.vm_state() == ("Standard_D8s_v5", "running")
    assert world.writes() == []


def test_recover_starts_a_vm_left_deallocated_by_a_crash(resize_world: World) -> None:
    world = resize_world
    vm, finding = oversized(world)
    world.emu.set_resize_sizes(vm, ["Standard_D8s_v5"])
    params = crashed_intent(world, finding)
    assert params["was_running"] is True
    world.compute.virtual_machines.begin_deallocate(RG, "big").result()  # ...then it died

    outcome = world.cleaner(Kind.OVERSIZED_INSTANCE).recover(finding, params)

    assert outcome is None  # not resized: the action goes through the rails again
    assert world.vm_state() == ("Standard_D8s_v5", "running")


def test_snapshot_tags_stay_within_azures_256_characters(world: World) -> None:
    long_name, long_group = "d" * 80, "rg-" + "g" * 60  # legal Azure names, long ids
    disk = world.emu.add_disk(SUB, long_group, long_name, LOCATION, created=T - timedelta(days=60))
    finding = world.scanned(Kind.IDLE_VOLUME, disk)
    assert len(finding.id) > 256

    report = world.run()

    assert only_line(report, finding.id).stage is Stage.CLEANED
    (snapshot,) = world.snapshots()
    assert max(len(v) for v in snapshot.tags.values()) <= 256
    assert snapshot.tags["costbot:source-disk-name"] == long_name
    assert snapshot.tags["costbot:source-resource-group"] == long_group
    assert snapshot.tags["costbot:finding-id"].startswith("sha256:")
