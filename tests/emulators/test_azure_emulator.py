"""The Azure emulator driven by the REAL azure-mgmt clients (and `requests` for Retail Prices).

Every client trusts the emulator's own CA (`connection_verify=emu.ca_path`), authenticates with
`emu.credential()` and never retries, so these tests exercise exactly what costbot's Azure
provider and cleaners will see: paging through nextLinks, LROs polled to completion, errors.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from azure.core.credentials import SupportsTokenInfo, TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as cm
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient

from costbot.emulators.azure import AzureEmulator

SUB = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
RG = "rg-app"


def disk_id(name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/{name}"


@pytest.fixture
def emu() -> Iterator[AzureEmulator]:
    with AzureEmulator() as emulator:
        yield emulator


def client_kwargs(emu: AzureEmulator) -> dict[str, Any]:
    return {"base_url": emu.endpoint, "connection_verify": emu.ca_path, "retry_total": 0}


@pytest.fixture
def compute(emu: AzureEmulator) -> Iterator[ComputeManagementClient]:
    with ComputeManagementClient(emu.credential(), SUB, **client_kwargs(emu)) as client:
        yield client


@pytest.fixture
def network(emu: AzureEmulator) -> Iterator[NetworkManagementClient]:
    with NetworkManagementClient(emu.credential(), SUB, **client_kwargs(emu)) as client:
        yield client


@pytest.fixture
def monitor(emu: AzureEmulator) -> Iterator[MonitorManagementClient]:
    with MonitorManagementClient(emu.credential(), SUB, **client_kwargs(emu)) as client:
        yield client


def resize_to(size: str) -> cm.VirtualMachineUpdate:
    hardware = cm.HardwareProfile(vm_size=size)
    return cm.VirtualMachineUpdate(
        properties=cm.VirtualMachineProperties(hardware_profile=hardware)
    )


def arm_get(emu: AzureEmulator, path: str, **params: str) -> requests.Response:
    headers = {"Authorization": "Bearer anything"}
    return requests.get(emu.endpoint + path, params=params, headers=headers, verify=emu.ca_path)


def prices(emu: AzureEmulator, **params: str) -> requests.Response:
    return requests.get(f"{emu.endpoint}/api/retail/prices", params=params, verify=emu.ca_path)


# --- transport, auth, lifecycle --------------------------------------------------------------


def test_requests_without_a_bearer_token_answer_401(emu: AzureEmulator) -> None:
    url = f"{emu.endpoint}/subscriptions/{SUB}/providers/Microsoft.Compute/disks"
    answer = requests.get(url, params={"api-version": "2026-03-02"}, verify=emu.ca_path)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AuthenticationFailed"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
    assert emu.requests[-1].authorization is None


def test_the_sdk_sends_the_emulator_token(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    assert isinstance(emu.credential(), TokenCredential)
    assert isinstance(emu.credential(), SupportsTokenInfo)
    assert list(compute.disks.list()) == []
    assert emu.requests[-1].authorization == "Bearer emulator-token"
    assert emu.requests[-1].query["api-version"]


def test_paths_are_case_insensitive_and_any_api_version_is_accepted(emu: AzureEmulator) -> None:
    emu.add_disk(SUB, RG, "d1", "eastus", created=T0)
    answer = arm_get(emu, f"/SUBSCRIPTIONS/{SUB}/PROVIDERS/microsoft.compute/DISKS", **{
        "api-version": "1999-01-01"
    })  # fmt: skip
    assert answer.status_code == 200
    assert [d["name"] for d in answer.json()["value"]] == ["d1"]
    missing = arm_get(emu, f"/subscriptions/{SUB}/providers/Microsoft.Compute/disks")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"


def test_stop_removes_the_ca_file_and_closes_the_port() -> None:
    with AzureEmulator() as emulator:
        ca_path, endpoint = emulator.ca_path, emulator.endpoint
        assert os.path.exists(ca_path)
    assert not os.path.exists(ca_path)
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoint, timeout=2)
    with pytest.raises(RuntimeError):
        _ = emulator.endpoint


def test_seeding_refuses_naive_datetimes(emu: AzureEmulator) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        emu.add_disk(SUB, RG, "d1", "eastus", created=datetime(2026, 11, 1))


# --- disks -----------------------------------------------------------------------------------


def test_disk_list_pages_through_absolute_next_links(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    emu.page_size = 2
    for index in range(5):
        emu.add_disk(SUB, RG, f"d{index}", "eastus", created=T0)
    emu.add_disk(OTHER, RG, "elsewhere", "eastus", created=T0)
    names = sorted(str(disk.name) for disk in compute.disks.list())
    assert names == ["d0", "d1", "d2", "d3", "d4"]
    pages = [r for r in emu.requests if r.path.endswith("/disks")]
    assert [r.query.get("$skiptoken") for r in pages] == [None, "2", "4"]
    assert len({r.query["api-version"] for r in pages}) == 1
    first = arm_get(emu, pages[0].path, **{"api-version": "2026-03-02"}).json()
    assert first["nextLink"].startswith(f"{emu.endpoint}/subscriptions/{SUB}/providers/")
    assert "api-version=2026-03-02" in first["nextLink"]
    last = arm_get(emu, pages[0].path, **{"api-version": "x", "$skiptoken": "4"}).json()
    assert "nextLink" not in last


def test_disk_json_follows_arm(emu: AzureEmulator, compute: ComputeManagementClient) -> None:
    owner = (
        f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/x"
    )
    emu.add_disk(
        SUB, RG, "free", "eastus", size_gb=256, sku="StandardSSD_LRS", tags={"team": "a"},
        created=T0, last_ownership_update=T0 + timedelta(days=3),
    )  # fmt: skip
    emu.add_disk(SUB, RG, "used", "westeurope", managed_by=owner, created=T0)
    emu.add_disk(SUB, RG, "sas", "eastus", disk_state="ActiveSAS", created=T0)
    raw = arm_get(emu, disk_id("free"), **{"api-version": "2026-03-02"}).json()
    assert raw["type"] == "Microsoft.Compute/disks"
    assert raw["sku"] == {"name": "StandardSSD_LRS", "tier": "Standard"}
    assert "managedBy" not in raw
    assert raw["properties"]["LastOwnershipUpdateTime"].startswith("2026-11-04T00:00:00")
    assert raw["properties"]["diskState"] == "Unattached"
    disks = {disk.name: disk for disk in compute.disks.list()}
    assert disks["free"].disk_size_gb == 256
    assert disks["free"].last_ownership_update_time == T0 + timedelta(days=3)
    assert disks["free"].time_created == T0
    assert disks["free"].tags == {"team": "a"}
    assert disks["used"].disk_state == cm.DiskState.ATTACHED
    assert disks["used"].managed_by == owner
    assert disks["used"].last_ownership_update_time is None
    assert disks["sas"].disk_state == "ActiveSAS"


def test_deleting_a_free_disk_completes_and_it_is_gone(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    emu.add_disk(SUB, RG, "old", "eastus", created=T0)
    compute.disks.begin_delete(RG, "old", polling_interval=0).result()
    with pytest.raises(ResourceNotFoundError) as caught:
        compute.disks.get(RG, "old")
    assert caught.value.status_code == 404
    polls = [r for r in emu.requests if "/operations/" in r.path]
    assert polls
    assert polls[0].path.startswith(f"/subscriptions/{SUB}/providers/Microsoft.Compute/locations/")


def test_deleting_an_attached_or_exported_disk_is_refused(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    vm = emu.add_vm(SUB, RG, "vm1", "eastus", created=T0)
    emu.add_disk(SUB, RG, "data", "eastus", managed_by=vm, created=T0)
    emu.add_disk(SUB, RG, "sas", "eastus", disk_state="ActiveSAS", created=T0)
    for name in ("data", "sas"):
        with pytest.raises(HttpResponseError) as caught:
            compute.disks.begin_delete(RG, name, polling_interval=0).result()
        assert caught.value.status_code == 409
        assert caught.value.error is not None
        assert caught.value.error.code == "OperationNotAllowed"
        assert compute.disks.get(RG, name).name == name


def test_disk_tags_update_through_patch(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    emu.add_disk(SUB, RG, "d1", "eastus", tags={"a": "1"}, created=T0)
    poller = compute.disks.begin_update(
        RG, "d1", cm.DiskUpdate(tags={"costbot": "flagged"}), polling_interval=0
    )
    assert poller.result().tags == {"costbot": "flagged"}
    assert compute.disks.get(RG, "d1").tags == {"costbot": "flagged"}
    patch = next(r for r in emu.requests if r.method == "PATCH")
    assert patch.body == {"tags": {"costbot": "flagged"}}


def test_snapshot_copies_a_disk(emu: AzureEmulator, compute: ComputeManagementClient) -> None:
    source = emu.add_disk(SUB, RG, "d1", "eastus", size_gb=512, created=T0)
    snapshot = cm.Snapshot(
        location="eastus",
        tags={"costbot": "backup"},
        properties=cm.SnapshotProperties(
            creation_data=cm.CreationData(create_option="Copy", source_resource_id=source)
        ),
    )
    made = compute.snapshots.begin_create_or_update(
        RG, "d1-snap", snapshot, polling_interval=0
    ).result()
    assert made.name == "d1-snap"
    assert made.disk_size_gb == 512
    assert made.provisioning_state == "Succeeded"
    got = compute.snapshots.get(RG, "d1-snap")
    assert got.creation_data.source_resource_id == source
    assert got.tags == {"costbot": "backup"}
    bad = cm.Snapshot(
        location="eastus",
        properties=cm.SnapshotProperties(
            creation_data=cm.CreationData(create_option="Copy", source_resource_id=disk_id("nope"))
        ),
    )
    with pytest.raises(HttpResponseError) as caught:
        compute.snapshots.begin_create_or_update(RG, "s2", bad, polling_interval=0).result()
    assert caught.value.status_code == 400


# --- public IPs ------------------------------------------------------------------------------


def test_public_ips_list_and_delete(emu: AzureEmulator, network: NetworkManagementClient) -> None:
    emu.page_size = 1
    net = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network"
    nic, nat = f"{net}/networkInterfaces/n/ipConfigurations/c", f"{net}/natGateways/g"
    emu.add_public_ip(SUB, RG, "free", "eastus", ip="20.0.0.1", sku="Basic", allocation="Dynamic")
    emu.add_public_ip(SUB, RG, "nic", "eastus", ip_configuration=nic)
    emu.add_public_ip(SUB, RG, "nat", "eastus", nat_gateway=nat)
    ips = {ip.name: ip for ip in network.public_ip_addresses.list_all()}
    assert set(ips) == {"free", "nic", "nat"}
    assert ips["free"].ip_address == "20.0.0.1"
    assert ips["free"].sku is not None
    assert ips["free"].sku.name == "Basic"
    assert ips["free"].public_ip_allocation_method == "Dynamic"
    assert ips["free"].ip_configuration is None
    assert ips["nic"].ip_configuration.id == nic
    assert ips["nat"].nat_gateway.id == nat
    for name in ("nic", "nat"):
        with pytest.raises(HttpResponseError) as caught:
            network.public_ip_addresses.begin_delete(RG, name, polling_interval=0).result()
        assert caught.value.status_code == 400
        assert caught.value.error is not None
        assert caught.value.error.code == "PublicIPAddressInUse"
    network.public_ip_addresses.begin_delete(RG, "free", polling_interval=0).result()
    assert {ip.name for ip in network.public_ip_addresses.list_all()} == {"nic", "nat"}
    with pytest.raises(ResourceNotFoundError):
        network.public_ip_addresses.get(RG, "free")


# --- VMs -------------------------------------------------------------------------------------


def test_vm_list_status_only_carries_the_instance_view(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    changed = T0 + timedelta(days=2)
    emu.add_vm(SUB, RG, "web", "eastus", created=T0)
    emu.add_vm(SUB, RG, "batch", "eastus", power_state="deallocated", created=T0,
               power_changed=changed, scale_set="/subscriptions/s/vmss/x")  # fmt: skip
    plain = {vm.name: vm for vm in compute.virtual_machines.list_all()}
    assert plain["web"].instance_view is None
    assert plain["web"].hardware_profile.vm_size == "Standard_D4s_v5"
    assert plain["batch"].virtual_machine_scale_set.id == "/subscriptions/s/vmss/x"
    views = {vm.name: vm for vm in compute.virtual_machines.list_all(status_only="true")}
    statuses = views["batch"].instance_view.statuses
    assert [s.code for s in statuses] == ["ProvisioningState/succeeded", "PowerState/deallocated"]
    assert statuses[0].time == changed
    assert views["web"].instance_view.statuses[0].time == T0
    assert views["web"].instance_view.statuses[1].display_status == "VM running"


def test_power_operations_change_state_and_disk_reservation(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    data = emu.add_disk(SUB, RG, "data", "eastus", created=T0)
    emu.add_vm(SUB, RG, "vm1", "eastus", created=T0, data_disks=[data])
    assert compute.disks.get(RG, "data").disk_state == "Attached"
    ops = compute.virtual_machines

    def power() -> str:
        statuses = ops.instance_view(RG, "vm1").statuses or []
        return str(statuses[-1].code)

    ops.begin_power_off(RG, "vm1", polling_interval=0).result()
    assert power() == "PowerState/stopped"
    ops.begin_deallocate(RG, "vm1", polling_interval=0).result()
    assert power() == "PowerState/deallocated"
    assert compute.disks.get(RG, "data").disk_state == "Reserved"
    ops.begin_start(RG, "vm1", polling_interval=0).result()
    expanded = ops.get(RG, "vm1", expand="instanceView")
    assert expanded.instance_view.statuses[1].code == "PowerState/running"
    assert expanded.instance_view.statuses[0].time > T0
    assert compute.disks.get(RG, "data").disk_state == "Attached"
    assert str(compute.disks.get(RG, "data").managed_by).endswith("/virtualMachines/vm1")


def test_resize_respects_the_available_sizes(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    vm_id = emu.add_vm(SUB, RG, "vm1", "eastus", size="Standard_D8s_v5", created=T0)
    emu.set_resize_sizes(vm_id, ["Standard_D4s_v5", "Standard_D8s_v5"])
    ops = compute.virtual_machines
    assert sorted(str(s.name) for s in ops.list_available_sizes(RG, "vm1")) == [
        "Standard_D4s_v5",
        "Standard_D8s_v5",
    ]
    update = resize_to("Standard_E4s_v5")
    with pytest.raises(HttpResponseError) as caught:
        ops.begin_update(RG, "vm1", update, polling_interval=0).result()
    assert caught.value.status_code == 409
    assert caught.value.error is not None
    assert caught.value.error.code == "OperationNotAllowed"
    smaller = resize_to("Standard_D4s_v5")
    resized = ops.begin_update(RG, "vm1", smaller, polling_interval=0).result()
    assert resized.hardware_profile.vm_size == "Standard_D4s_v5"
    patch = next(r for r in emu.requests if r.method == "PATCH")
    assert patch.body == {"properties": {"hardwareProfile": {"vmSize": "Standard_E4s_v5"}}}
    ops.begin_deallocate(RG, "vm1", polling_interval=0).result()
    everything = {s.name for s in compute.virtual_machine_sizes.list("eastus")}
    assert {s.name for s in ops.list_available_sizes(RG, "vm1")} == everything
    ops.begin_update(RG, "vm1", update, polling_interval=0).result()
    vm = ops.get(RG, "vm1")
    assert vm.hardware_profile.vm_size == "Standard_E4s_v5"
    vm.hardware_profile.vm_size = "Standard_E2s_v5"
    put = ops.begin_create_or_update(RG, "vm1", vm, polling_interval=0).result()
    assert put.hardware_profile.vm_size == "Standard_E2s_v5"
    assert ops.get(RG, "vm1").hardware_profile.vm_size == "Standard_E2s_v5"


def test_a_flattened_patch_body_is_rejected_like_arm_does(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    emu.add_vm(SUB, RG, "vm1", "eastus", created=T0)
    flat = cm.VirtualMachineUpdate({"hardwareProfile": {"vmSize": "Standard_D2s_v5"}})
    with pytest.raises(HttpResponseError) as caught:
        compute.virtual_machines.begin_update(RG, "vm1", flat, polling_interval=0).result()
    assert caught.value.status_code == 400
    assert compute.virtual_machines.get(RG, "vm1").hardware_profile.vm_size == "Standard_D4s_v5"


def test_location_size_catalogue(compute: ComputeManagementClient) -> None:
    sizes = {s.name: s for s in compute.virtual_machine_sizes.list("westeurope")}
    assert {"Standard_D2s_v5", "Standard_D96as_v5", "Standard_F72s_v2", "Standard_B1s"} <= set(
        sizes
    )
    assert sizes["Standard_E16s_v5"].memory_in_mb == 16 * 8 * 1024
    assert sizes["Standard_F8s_v2"].memory_in_mb == 8 * 2 * 1024
    assert sizes["Standard_D4s_v5"].number_of_cores == 4
    assert sizes["Standard_E8-4s_v5"].number_of_cores == 4
    assert sizes["Standard_E8-4s_v5"].memory_in_mb == sizes["Standard_E8s_v5"].memory_in_mb


def test_unknown_vm_is_404(compute: ComputeManagementClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.get(RG, "ghost")


# --- metrics, permissions, failures ----------------------------------------------------------


def test_cpu_metrics_hourly_and_merged(
    emu: AzureEmulator, monitor: MonitorManagementClient
) -> None:
    vm = emu.add_vm(SUB, RG, "vm1", "eastus", created=T0)
    idle = emu.add_vm(SUB, RG, "idle", "eastus", created=T0)
    emu.set_cpu(vm, [(T0 + timedelta(hours=h), 2.0 * h, 10.0 * h) for h in range(6)])
    span = f"{T0.isoformat()}/{(T0 + timedelta(hours=4)).isoformat()}"

    def query(resource: str, interval: str) -> Any:
        return monitor.metrics.list(
            resource, timespan=span, interval=interval, metricnames="Percentage CPU",
            aggregation="Average,Maximum",
        )  # fmt: skip

    hourly = query(vm, "PT1H").value[0]
    assert hourly.name.value == "Percentage CPU"
    assert hourly.unit == "Percent"
    points = hourly.timeseries[0].data
    assert [(p.time_stamp, p.average, p.maximum) for p in points] == [
        (T0 + timedelta(hours=h), 2.0 * h, 10.0 * h) for h in range(4)
    ]
    merged = query(vm, "PT2H").value[0].timeseries[0].data
    assert [(p.average, p.maximum) for p in merged] == [(1.0, 10.0), (5.0, 30.0)]
    assert query(idle, "PT1H").value[0].timeseries == []


def test_cpu_metrics_gaps_and_errors(emu: AzureEmulator, monitor: MonitorManagementClient) -> None:
    vm = emu.add_vm(SUB, RG, "vm1", "eastus", created=T0)
    emu.set_cpu(vm, [(T0 + timedelta(hours=1), 50.0, 90.0)])
    span = f"{T0.isoformat()}/{(T0 + timedelta(hours=3)).isoformat()}"
    data = monitor.metrics.list(vm, timespan=span, interval="PT1H", aggregation="Maximum")
    points = data.value[0].timeseries[0].data or []
    assert [(p.average, p.maximum) for p in points] == [(None, None), (None, 90.0), (None, None)]
    with pytest.raises(HttpResponseError) as caught:
        monitor.metrics.list(vm, timespan=span, interval="PT1H", metricnames="Disk Read Bytes")
    assert caught.value.status_code == 400
    with pytest.raises(HttpResponseError) as caught:
        monitor.metrics.list(vm, timespan=span, interval="PT5M")
    assert caught.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        monitor.metrics.list(vm.replace("vm1", "ghost"), timespan=span, interval="PT1H")


def test_permissions_default_to_everything_and_can_be_narrowed(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    def permissions(scope: str) -> Any:
        url = f"{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
        answer = compute.send_request(HttpRequest("GET", url))
        assert answer.status_code == 200
        return answer.json()["value"]

    group = f"/subscriptions/{SUB}/resourceGroups/{RG}"
    assert permissions(group) == [
        {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}
    ]
    emu.set_permissions(SUB, ["*/read"], ["Microsoft.Compute/disks/delete"])
    narrowed = permissions(disk_id("d1"))
    assert narrowed[0]["actions"] == ["*/read"]
    assert narrowed[0]["notActions"] == ["Microsoft.Compute/disks/delete"]


def test_a_failing_subscription_answers_its_error(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    emu.add_disk(OTHER, RG, "fine", "eastus", created=T0)
    emu.fail_subscription(SUB, 403, "AuthorizationFailed", "no access to sub")
    with pytest.raises(HttpResponseError) as caught:
        list(compute.disks.list())
    assert caught.value.status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "AuthorizationFailed"
    with ComputeManagementClient(emu.credential(), OTHER, **client_kwargs(emu)) as other:
        assert [d.name for d in other.disks.list()] == ["fine"]


# --- Retail Prices API -----------------------------------------------------------------------


def test_prices_filter_by_sku_and_region(emu: AzureEmulator) -> None:
    answer = prices(
        emu,
        currencyCode="USD",
        **{"$filter": "serviceName eq 'Virtual Machines' and armRegionName eq 'eastus'"
           " and armSkuName eq 'Standard_D4s_v5'"},
    )  # fmt: skip
    assert answer.status_code == 200
    body = answer.json()
    assert body["BillingCurrency"] == "USD"
    assert body["CustomerEntityType"] == "Retail"
    assert body["NextPageLink"] is None
    assert body["Count"] == len(body["Items"]) == 4
    rows = {(i["productName"], i["skuName"]): i["retailPrice"] for i in body["Items"]}
    linux = rows[("Virtual Machines DSv5 Series", "D4s v5")]
    assert linux == pytest.approx(0.192)
    assert rows[("Virtual Machines DSv5 Series Windows", "D4s v5")] > linux
    assert rows[("Virtual Machines DSv5 Series", "D4s v5 Spot")] < linux / 2
    assert ("Virtual Machines DSv5 Series", "D4s v5 Low Priority") in rows


def test_prices_cover_disks_ips_and_every_size(
    emu: AzureEmulator, compute: ComputeManagementClient
) -> None:
    disks = prices(emu, **{"$filter": "armRegionName eq 'eastus' and skuName eq 'P10 LRS'"})
    units = {(i["meterName"], i["unitOfMeasure"]): i["retailPrice"] for i in disks.json()["Items"]}
    assert units == {("P10 LRS Disk", "1/Month"): 19.71, ("Disk Operations", "10K"): 0.0005}
    europe = prices(
        emu, **{"$filter": "armregionname eq 'westeurope' and meterName eq 'P10 LRS Disk'"}
    )
    assert europe.json()["Items"][0]["retailPrice"] > 19.71
    ips = prices(emu, **{"$filter": "productName eq 'IP Addresses' and armRegionName eq 'eastus'"})
    assert {i["meterName"]: i["retailPrice"] for i in ips.json()["Items"]} == {
        "Standard IPv4 Static Public IP": 0.005,
        "Basic IPv4 Static Public IP": 0.0036,
        "Basic IPv4 Dynamic Public IP": 0.004,
    }
    priced = {
        i["armSkuName"]
        for i in prices(emu, **{"$filter": "serviceName eq 'Virtual Machines' and armRegionName"
                                " eq 'westeurope' and contains(skuName, 'Spot')"}).json()["Items"]
    }  # fmt: skip
    assert priced == {s.name for s in compute.virtual_machine_sizes.list("westeurope")}


def test_prices_page_by_100_with_next_page_links(emu: AzureEmulator) -> None:
    url: str | None = f"{emu.endpoint}/api/retail/prices?$filter=serviceName eq 'Virtual Machines'"
    counts = []
    while url:
        body = requests.get(url, verify=emu.ca_path).json()
        counts.append(body["Count"])
        url = body["NextPageLink"]
        assert url is None or url.startswith(f"{emu.endpoint}/api/retail/prices?")
    assert counts[:-1] == [100] * (len(counts) - 1)
    assert sum(counts) == 39 * 4 * 2


def test_prices_reject_unsupported_filters_and_can_fail(emu: AzureEmulator) -> None:
    for text in ("serviceName ne 'Storage'", "nosuchfield eq 'x'", "serviceName eq 'a' or x"):
        answer = prices(emu, **{"$filter": text})
        assert answer.status_code == 400, text
        assert answer.json()["Error"]["Message"]
    emu.add_price({"serviceName": "Custom", "meterName": "it's mine", "retailPrice": 1.0})
    mine = prices(emu, **{"$filter": "meterName eq 'it''s mine'"}).json()["Items"]
    assert mine == [{"serviceName": "Custom", "meterName": "it's mine", "retailPrice": 1.0}]
    emu.fail_prices(503, "maintenance")
    failed = prices(emu)
    assert failed.status_code == 503
    assert failed.json()["Error"]["Message"] == "maintenance"
