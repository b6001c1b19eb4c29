"""The GCP emulators driven by the REAL google-cloud clients: compute_v1 and billing_v1 over REST
against GcpEmulator (plain http, AnonymousCredentials), monitoring_v3 over an injected insecure
gRPC channel against MonitoringEmulator. Paging, errors, state changes and aligner semantics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import billing_v1, compute_v1

from costbot.emulators.gcp import GcpEmulator

P = "proj-alpha"
Z = "us-central1-a"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
API = "https://www.googleapis.com/compute/v1"


@pytest.fixture
def emu() -> Iterator[GcpEmulator]:
    with GcpEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: GcpEmulator) -> Iterator[Callable[[Any], Any]]:
    """Builds real REST clients pointed at the emulator; closes them afterwards."""
    made: list[Any] = []

    def build(cls: Any) -> Any:
        options = {"api_endpoint": emu.endpoint}
        made.append(
            cls(credentials=AnonymousCredentials(), transport="rest", client_options=options)
        )
        return made[-1]

    yield build
    for each in made:
        each.transport.close()


def paths(emu: GcpEmulator, fragment: str) -> list[dict[str, str]]:
    return [r.query for r in emu.requests if fragment in r.path]


# -- Compute: listing -------------------------------------------------------------------------


def test_aggregated_disks_page_across_zones_and_warn_on_empty_ones(emu, client) -> None:
    for i, zone in enumerate(["us-central1-a", "us-central1-a", "us-east1-b", "europe-west1-d"]):
        emu.add_disk(P, zone, f"d{i}", created=T0)
    emu.add_disk("other-project", Z, "not-mine", created=T0)
    emu.page_size = 3
    disks: dict[str, list[str]] = {}
    warned = set()
    for scope, scoped in client(compute_v1.DisksClient).aggregated_list(project=P):
        disks.setdefault(scope, []).extend(d.name for d in scoped.disks)
        if scoped.warning.code == "NO_RESULTS_ON_PAGE":
            warned.add(scope)
    assert {k: sorted(v) for k, v in disks.items() if v} == {
        "zones/us-central1-a": ["d0", "d1"],
        "zones/us-east1-b": ["d2"],
        "zones/europe-west1-d": ["d3"],
    }
    assert "zones/us-central1-b" in warned and "zones/us-central1-a" not in warned
    assert [q.get("pageToken") for q in paths(emu, "aggregated/disks")] == [None, "3"]


def test_aggregated_list_honours_a_smaller_max_results(emu, client) -> None:
    for i in range(5):
        emu.add_disk(P, Z, f"d{i}", created=T0)
    request = compute_v1.AggregatedListDisksRequest(project=P, max_results=2)
    names = [
        d.name for _, s in client(compute_v1.DisksClient).aggregated_list(request) for d in s.disks
    ]
    assert sorted(names) == [f"d{i}" for i in range(5)]
    assert len(paths(emu, "aggregated/disks")) == 3


def test_disk_json_matches_the_documented_shape(emu, client) -> None:
    seeded = emu.add_disk(
        P,
        Z,
        "data",
        size_gb=250,
        disk_type="pd-ssd",
        users=["vm1"],
        labels={"team": "x"},
        created=T0,
        last_attach=T0 + timedelta(days=1),
        last_detach=T0 + timedelta(days=2),
    )
    disk = client(compute_v1.DisksClient).get(project=P, zone=Z, disk="data")
    assert disk.id == int(seeded["id"]) and disk.size_gb == 250
    assert disk.type_ == f"{API}/projects/{P}/zones/{Z}/diskTypes/pd-ssd"
    assert disk.users == [f"{API}/projects/{P}/zones/{Z}/instances/vm1"]
    assert disk.self_link == f"{API}/projects/{P}/zones/{Z}/disks/data"
    assert datetime.fromisoformat(disk.last_detach_timestamp) == T0 + timedelta(days=2)
    assert datetime.fromisoformat(disk.creation_timestamp) == T0
    assert disk.labels == {"team": "x"} and disk.label_fingerprint


def test_aggregated_addresses_are_keyed_by_region_and_global(emu, client) -> None:
    emu.add_address(P, "us-east1", "regional", address="34.9.9.9", created=T0)
    emu.add_address(P, None, "anycast", status="IN_USE", users=["https://x/fr"], created=T0)
    found = {
        scope: {a.name: a for a in scoped.addresses}
        for scope, scoped in client(compute_v1.AddressesClient).aggregated_list(project=P)
        if scoped.addresses
    }
    assert set(found) == {"regions/us-east1", "global"}
    assert found["regions/us-east1"]["regional"].region == f"{API}/projects/{P}/regions/us-east1"
    assert found["global"]["anycast"].region == "" and found["global"]["anycast"].users == [
        "https://x/fr"
    ]


def test_aggregated_instances_carry_machine_type_metadata_and_timestamps(emu, client) -> None:
    emu.add_instance(P, Z, "plain", created=T0, last_stop=T0 + timedelta(hours=1))
    emu.add_instance(P, Z, "member", machine_type="e2-medium", created=T0, created_by="igm-url")
    got = {
        i.name: i
        for _, s in client(compute_v1.InstancesClient).aggregated_list(project=P)
        for i in s.instances
    }
    assert got["member"].machine_type == f"{API}/projects/{P}/zones/{Z}/machineTypes/e2-medium"
    assert [(m.key, m.value) for m in got["member"].metadata.items] == [("created-by", "igm-url")]
    assert got["plain"].metadata.items == [] and got["plain"].last_stop_timestamp
    assert got["plain"].id != got["member"].id


def test_machine_types_list_pages_and_get_reports_sizes(emu, client) -> None:
    emu.page_size = 10
    types = client(compute_v1.MachineTypesClient)
    listed = {m.name: m for m in types.list(project=P, zone="europe-west1-b")}
    assert len(listed) == 55 and len(paths(emu, "/machineTypes")) == 6
    n1 = types.get(project=P, zone=Z, machine_type="n1-standard-4")
    assert (n1.guest_cpus, n1.memory_mb, n1.is_shared_cpu) == (4, 15360, False)
    assert (listed["e2-micro"].memory_mb, listed["e2-micro"].is_shared_cpu) == (1024, True)
    assert (listed["n2-highcpu-96"].memory_mb, listed["c3-standard-176"].guest_cpus) == (98304, 176)
    with pytest.raises(exceptions.NotFound):
        types.get(project=P, zone=Z, machine_type="n9-huge-1")


# -- Compute: mutations -----------------------------------------------------------------------


def test_delete_disk_finishes_at_once_and_the_disk_is_gone(emu, client) -> None:
    emu.add_disk(P, Z, "orphan", created=T0)
    disks = client(compute_v1.DisksClient)
    operation = disks.delete(project=P, zone=Z, disk="orphan")
    operation.result(timeout=5)
    assert not paths(emu, "/operations/")
    with pytest.raises(exceptions.NotFound, match="disks/orphan' was not found"):
        disks.get(project=P, zone=Z, disk="orphan")
    stored = client(compute_v1.ZoneOperationsClient).get(
        project=P, zone=Z, operation=operation.name
    )
    assert stored.operation_type == "delete" and stored.target_link.endswith("/disks/orphan")
    assert stored.status == compute_v1.Operation.Status.DONE


def test_delete_disk_in_use_fails_in_the_operation_and_keeps_the_disk(emu, client) -> None:
    emu.add_disk(P, Z, "boot", users=["vm1"], created=T0)
    disks = client(compute_v1.DisksClient)
    with pytest.raises(exceptions.BadRequest) as caught:
        disks.delete(project=P, zone=Z, disk="boot").result(timeout=5)
    assert caught.value.errors[0].code == "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE"
    assert disks.get(project=P, zone=Z, disk="boot").name == "boot"


def test_delete_addresses_regional_global_and_in_use(emu, client) -> None:
    emu.add_address(P, "us-central1", "r1", created=T0)
    emu.add_address(P, None, "g1", created=T0)
    emu.add_address(P, "us-central1", "busy", users=["https://x/vm"], created=T0)
    regional, global_ = client(compute_v1.AddressesClient), client(compute_v1.GlobalAddressesClient)
    regional.delete(project=P, region="us-central1", address="r1").result(timeout=5)
    op = global_.delete(project=P, address="g1")
    op.result(timeout=5)
    assert client(compute_v1.GlobalOperationsClient).get(project=P, operation=op.name).name
    for call in (
        lambda: regional.get(project=P, region="us-central1", address="r1"),
        lambda: global_.get(project=P, address="g1"),
    ):
        with pytest.raises(exceptions.NotFound):
            call()
    with pytest.raises(exceptions.BadRequest):
        regional.delete(project=P, region="us-central1", address="busy").result(timeout=5)
    assert emu.resource(P, "regions/us-central1", "addresses", "busy")["name"] == "busy"


def test_create_snapshot_then_a_duplicate_name_conflicts(emu, client) -> None:
    disk = emu.add_disk(P, Z, "data", size_gb=42, created=T0)
    disks = client(compute_v1.DisksClient)
    snapshot = {"name": "data-final", "labels": {"costbot": "yes"}, "description": "before delete"}
    disks.create_snapshot(project=P, zone=Z, disk="data", snapshot_resource=snapshot).result()
    snapshots = client(compute_v1.SnapshotsClient)
    got = snapshots.get(project=P, snapshot="data-final")
    assert (got.source_disk, got.disk_size_gb, got.status) == (disk["selfLink"], 42, "READY")
    assert got.labels == {"costbot": "yes"} and got.description == "before delete"
    assert [s.name for s in snapshots.list(project=P)] == ["data-final"]
    with pytest.raises(exceptions.Conflict):
        disks.create_snapshot(project=P, zone=Z, disk="data", snapshot_resource=snapshot)


def test_set_labels_needs_the_current_fingerprint(emu, client) -> None:
    emu.add_disk(P, Z, "data", labels={"a": "1"}, created=T0)
    disks = client(compute_v1.DisksClient)
    before = disks.get(project=P, zone=Z, disk="data")
    body = {"labels": {"a": "1", "keep": "no"}, "label_fingerprint": before.label_fingerprint}
    disks.set_labels(project=P, zone=Z, resource="data", zone_set_labels_request_resource=body)
    after = disks.get(project=P, zone=Z, disk="data")
    assert after.labels == {"a": "1", "keep": "no"}
    assert after.label_fingerprint != before.label_fingerprint
    recorded = next(r for r in emu.requests if r.path.endswith("/setLabels"))
    assert recorded.method == "POST" and recorded.body["labels"] == {"a": "1", "keep": "no"}
    with pytest.raises(exceptions.PreconditionFailed):
        disks.set_labels(project=P, zone=Z, resource="data", zone_set_labels_request_resource=body)


def test_stop_resize_start(emu, client) -> None:
    emu.add_instance(P, Z, "vm", machine_type="n2-standard-8", created=T0)
    vms = client(compute_v1.InstancesClient)
    small = {"machine_type": f"zones/{Z}/machineTypes/n2-standard-2"}

    def resize(body: dict[str, str]) -> Any:
        return vms.set_machine_type(
            project=P, zone=Z, instance="vm", instances_set_machine_type_request_resource=body
        )

    with pytest.raises(exceptions.BadRequest, match="must be stopped"):
        resize(small)
    vms.stop(project=P, zone=Z, instance="vm").result(timeout=5)
    stopped = vms.get(project=P, zone=Z, instance="vm")
    assert stopped.status == "TERMINATED" and stopped.last_stop_timestamp
    with pytest.raises(exceptions.BadRequest, match="machineType"):
        bad = {"machine_type": f"zones/{Z}/machineTypes/n2-bogus-3"}
        resize(bad)
    resize(small).result(timeout=5)
    vms.start(project=P, zone=Z, instance="vm").result(timeout=5)
    running = vms.get(project=P, zone=Z, instance="vm")
    assert running.status == "RUNNING" and running.machine_type.endswith("/n2-standard-2")
    assert running.machine_type.startswith(API)


def test_test_iam_permissions_omits_denied_ones(emu, client) -> None:
    emu.add_disk(P, Z, "d", created=T0)
    emu.add_instance(P, Z, "vm", created=T0)
    emu.add_address(P, None, "g", created=T0)
    emu.deny_permissions(P, "compute.disks.delete", "compute.instances.stop")
    asked = {"permissions": ["compute.disks.delete", "compute.disks.createSnapshot"]}
    got = client(compute_v1.DisksClient).test_iam_permissions(
        project=P, zone=Z, resource="d", test_permissions_request_resource=asked
    )
    assert got.permissions == ["compute.disks.createSnapshot"]
    stop = {"permissions": ["compute.instances.stop"]}
    vm = client(compute_v1.InstancesClient).test_iam_permissions(
        project=P, zone=Z, resource="vm", test_permissions_request_resource=stop
    )
    assert vm.permissions == []
    addr = {"permissions": ["compute.globalAddresses.delete"]}
    got = client(compute_v1.GlobalAddressesClient).test_iam_permissions(
        project=P, resource="g", test_permissions_request_resource=addr
    )
    assert got.permissions == ["compute.globalAddresses.delete"]


def test_failed_project_raises_the_mapped_exception_and_others_still_work(emu, client) -> None:
    emu.add_disk("proj-ok", Z, "d", created=T0)
    emu.fail_project(P, 403, "Compute Engine API has not been used in project")
    disks = client(compute_v1.DisksClient)
    with pytest.raises(exceptions.Forbidden, match="has not been used") as caught:
        list(disks.aggregated_list(project=P))
    assert caught.value.errors[0]["reason"] == "forbidden"
    assert [d.name for _, s in disks.aggregated_list(project="proj-ok") for d in s.disks] == ["d"]


def test_concurrent_deletes_are_consistent(emu, client) -> None:
    for i in range(20):
        emu.add_disk(P, Z, f"d{i}", created=T0)
    disks = client(compute_v1.DisksClient)
    with ThreadPoolExecutor(8) as pool:
        ops = list(pool.map(lambda i: disks.delete(project=P, zone=Z, disk=f"d{i}"), range(20)))
    names = [op.name for op in ops]
    assert len(set(names)) == 20
    assert not [d for _, s in disks.aggregated_list(project=P) for d in s.disks]


# -- Cloud Billing Catalog ---------------------------------------------------------------------


def price(sku: billing_v1.Sku) -> float:
    unit = sku.pricing_info[0].pricing_expression.tiered_rates[-1].unit_price
    return unit.units + unit.nanos / 1e9


def test_catalog_lists_compute_and_pages_its_skus(emu, client) -> None:
    catalog = client(billing_v1.CloudCatalogClient)
    assert [s.service_id for s in catalog.list_services()] == ["6F81-5844-456A"]
    emu.page_size = 10
    skus = list(catalog.list_skus(parent="services/6F81-5844-456A"))
    assert len(skus) == len(emu.skus) == 42
    queries = paths(emu, "/skus")
    assert [q.get("pageToken") for q in queries] == [None, "10", "20", "30", "40"]
    assert all("$alt" in q for q in queries)
    by_key = {(s.description, s.service_regions[0]): s for s in skus}
    assert price(by_key[("N2 Instance Core running in Americas", "us-central1")]) == 0.031611
    assert price(by_key[("N2 Instance Core running in EMEA", "europe-west1")]) == 0.034773
    pd = by_key[("Storage PD Capacity in Americas", "us-east1")]
    assert price(pd) == 0.04 and pd.pricing_info[0].pricing_expression.usage_unit == "GiBy.mo"
    ip = by_key[("Static Ip Charge in EMEA", "europe-west1")]
    assert (ip.category.resource_group, price(ip)) == ("IpAddress", 0.01)
    decoys = {s.category.usage_type for s in skus if s.category.usage_type != "OnDemand"}
    assert decoys == {"Preemptible", "Commit1Yr"}
    egress = next(s for s in skus if s.description.startswith("Network Internet Egress"))
    tiers = egress.pricing_info[0].pricing_expression.tiered_rates
    assert (
        tiers[0].start_usage_amount,
        tiers[0].unit_price.nanos,
        tiers[1].start_usage_amount,
    ) == (0, 0, 1)


def test_catalog_add_sku_errors_and_failures(emu, client) -> None:
    catalog = client(billing_v1.CloudCatalogClient)
    extra = dict(emu.skus[0], skuId="AAAA-BBBB-CCCC", description="Custom thing")
    emu.add_sku(extra)
    assert "Custom thing" in {
        s.description for s in catalog.list_skus(parent="services/6F81-5844-456A")
    }
    with pytest.raises(exceptions.NotFound):
        list(catalog.list_skus(parent="services/0000-0000-0000"))
    with pytest.raises(exceptions.BadRequest):
        euros = {"parent": "services/6F81-5844-456A", "currency_code": "EUR"}
        list(catalog.list_skus(request=euros))
    emu.fail_billing(403, "Cloud Billing API has not been used")
    with pytest.raises(exceptions.Forbidden, match="not been used"):
        list(catalog.list_skus(parent="services/6F81-5844-456A"))
