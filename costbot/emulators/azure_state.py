"""The Azure emulator's resources (managed disks, public IPs, VMs, snapshots, CPU series,
permissions and scripted failures) and the calls that seed them, kept as ARM JSON documents.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from costbot.emulators.azure_catalog import VM_SIZES

SIZES_BY_NAME = {size.name.lower(): size for size in VM_SIZES}
DISK_STATES = {"Unattached", "Attached", "Reserved", "ActiveSAS", "ActiveSASFrozen", "Frozen"}
POWER_STATES = {"running", "stopped", "deallocated"}
# Managed disk performance tiers: (max GiB, tier number, IOPS, MB/s) for Premium SSD.
_TIERS = [
    (4, "1", 120, 25), (8, "2", 120, 25), (16, "3", 120, 25), (32, "4", 120, 25),
    (64, "6", 240, 50), (128, "10", 500, 100), (256, "15", 1100, 125), (512, "20", 2300, 150),
    (1024, "30", 5000, 200), (2048, "40", 7500, 250), (4096, "50", 7500, 250),
    (8192, "60", 16000, 500), (16384, "70", 18000, 750), (32767, "80", 20000, 900),
]  # fmt: skip


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered (path unquoted, query values last-wins)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


@dataclass(frozen=True)
class Reply:
    """One answer: status, JSON body (None for no body) and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class VmRecord:
    """A VM's ARM document plus the state ARM reports through its instance view."""

    doc: dict[str, Any]
    power_state: str
    created: datetime
    power_changed: datetime | None
    resize_sizes: list[str] | None = None
    disk_ids: list[str] = field(default_factory=list)


def arm_time(moment: datetime) -> str:
    """ARM's timestamp format: ISO 8601 with microseconds and a +00:00 offset."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def aware(moment: datetime) -> datetime:
    """The datetime itself; raises ValueError for a naive one."""
    if moment.tzinfo is None:
        raise ValueError(f"timezone-aware datetime required, got {moment!r}")
    return moment


def error(code: str, message: str) -> dict[str, Any]:
    """The ARM error envelope."""
    return {"error": {"code": code, "message": message}}


def _id(sub: str, rg: str, provider: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def _uuid(resource_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, resource_id.lower()))


def disk_performance(sku: str, size_gb: int) -> tuple[str, int, int]:
    """(performance tier such as P10, IOPS, MB/s) of a managed disk of this SKU and size."""
    _, number, iops, mbps = next((t for t in _TIERS if size_gb <= t[0]), _TIERS[-1])
    if sku.startswith("Premium"):
        return f"P{number}", iops, mbps
    if sku.startswith("StandardSSD"):
        return f"E{number}", min(iops, 6000), min(mbps, 750)
    return f"S{max(int(number), 4)}", min(iops, 2000), min(mbps, 500)


class ArmState:
    """Thread-safe ARM resources, seeded by the add_/set_/fail_ calls below."""

    page_size: int = 100

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._disks: dict[str, dict[str, Any]] = {}
        self._ips: dict[str, dict[str, Any]] = {}
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._vms: dict[str, VmRecord] = {}
        self._cpu: dict[str, list[tuple[datetime, float, float]]] = {}
        self._failures: dict[str, tuple[int, str, str]] = {}
        self._permissions: dict[str, tuple[list[str], list[str]]] = {}
        self._operations: dict[str, str] = {}

    def add_disk(
        self,
        sub: str,
        rg: str,
        name: str,
        location: str,
        *,
        size_gb: int = 128,
        sku: str = "Premium_LRS",
        managed_by: str | None = None,
        disk_state: str | None = None,
        tags: dict[str, str] | None = None,
        created: datetime,
        last_ownership_update: datetime | None = None,
    ) -> str:
        """Seed a managed disk; returns its resource id."""
        state = disk_state or ("Attached" if managed_by else "Unattached")
        if state not in DISK_STATES:
            raise ValueError(f"unknown diskState {state!r}")
        disk_id = _id(sub, rg, "Microsoft.Compute", "disks", name)
        tier, iops, mbps = disk_performance(sku, size_gb)
        properties: dict[str, Any] = {
            "creationData": {"createOption": "Empty"},
            "diskSizeGB": size_gb,
            "diskSizeBytes": size_gb * 1024**3,
            "diskIOPSReadWrite": iops,
            "diskMBpsReadWrite": mbps,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "timeCreated": arm_time(aware(created)),
            "provisioningState": "Succeeded",
            "diskState": state,
            "uniqueId": _uuid(disk_id),
        }
        if sku.startswith("Premium"):
            properties["tier"] = tier
        if last_ownership_update is not None:
            properties["LastOwnershipUpdateTime"] = arm_time(aware(last_ownership_update))
        doc: dict[str, Any] = {
            "id": disk_id,
            "name": name,
            "type": "Microsoft.Compute/disks",
            "location": location,
            "tags": dict(tags or {}),
            "sku": {"name": sku, "tier": "Premium" if sku.startswith("Premium") else "Standard"},
            "properties": properties,
        }
        if managed_by:
            doc["managedBy"] = managed_by
        with self._lock:
            self._disks[disk_id.lower()] = doc
        return disk_id

    def add_public_ip(
        self,
        sub: str,
        rg: str,
        name: str,
        location: str,
        *,
        ip: str = "20.1.2.3",
        sku: str = "Standard",
        allocation: str = "Static",
        ip_configuration: str | None = None,
        nat_gateway: str | None = None,
        prefix: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Seed a public IP address; returns its resource id."""
        ip_id = _id(sub, rg, "Microsoft.Network", "publicIPAddresses", name)
        properties: dict[str, Any] = {
            "provisioningState": "Succeeded",
            "resourceGuid": _uuid(ip_id),
            "ipAddress": ip,
            "publicIPAddressVersion": "IPv4",
            "publicIPAllocationMethod": allocation,
            "idleTimeoutInMinutes": 4,
        }
        for key, linked in (
            ("ipConfiguration", ip_configuration),
            ("natGateway", nat_gateway),
            ("publicIPPrefix", prefix),
        ):
            if linked:
                properties[key] = {"id": linked}
        doc = {
            "id": ip_id,
            "name": name,
            "type": "Microsoft.Network/publicIPAddresses",
            "location": location,
            "tags": dict(tags or {}),
            "etag": f'W/"{_uuid(ip_id + "/etag")}"',
            "sku": {"name": sku, "tier": "Regional"},
            "properties": properties,
        }
        with self._lock:
            self._ips[ip_id.lower()] = doc
        return ip_id

    def add_vm(
        self,
        sub: str,
        rg: str,
        name: str,
        location: str,
        *,
        size: str = "Standard_D4s_v5",
        power_state: str = "running",
        tags: dict[str, str] | None = None,
        created: datetime,
        power_changed: datetime | None = None,
        scale_set: str | None = None,
        os_disk: str | None = None,
        data_disks: Iterable[str] = (),
    ) -> str:
        """Seed a VM; seeded disks among os_disk/data_disks become managed by it. Returns its id."""
        if power_state not in POWER_STATES:
            raise ValueError(f"power_state must be one of {sorted(POWER_STATES)}")
        vm_id = _id(sub, rg, "Microsoft.Compute", "virtualMachines", name)
        data = list(data_disks)
        storage: dict[str, Any] = {
            "dataDisks": [
                {
                    "lun": lun,
                    "name": disk.rsplit("/", 1)[-1],
                    "createOption": "Attach",
                    "managedDisk": {"id": disk},
                }
                for lun, disk in enumerate(data)
            ]
        }
        if os_disk:
            storage["osDisk"] = {
                "osType": "Linux",
                "name": os_disk.rsplit("/", 1)[-1],
                "createOption": "FromImage",
                "managedDisk": {"id": os_disk},
            }
        properties: dict[str, Any] = {
            "vmId": _uuid(vm_id),
            "hardwareProfile": {"vmSize": size},
            "storageProfile": storage,
            "timeCreated": arm_time(aware(created)),
            "provisioningState": "Succeeded",
        }
        if scale_set:
            properties["virtualMachineScaleSet"] = {"id": scale_set}
        doc = {
            "id": vm_id,
            "name": name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": location,
            "tags": dict(tags or {}),
            "properties": properties,
        }
        disk_ids = [d for d in [os_disk, *data] if d]
        changed = aware(power_changed) if power_changed else None
        record = VmRecord(doc, power_state, created, changed, disk_ids=disk_ids)
        with self._lock:
            self._vms[vm_id.lower()] = record
            for disk_id in disk_ids:
                disk = self._disks.get(disk_id.lower())
                if disk is not None:
                    disk["managedBy"] = vm_id
                    reserved = power_state == "deallocated"
                    disk["properties"]["diskState"] = "Reserved" if reserved else "Attached"
        return vm_id

    def set_cpu(self, resource_id: str, hourly: Sequence[tuple[datetime, float, float]]) -> None:
        """Replace a resource's Percentage CPU series: (hour start, average %, maximum %)."""
        series = sorted((aware(start), avg, peak) for start, avg, peak in hourly)
        with self._lock:
            self._cpu[resource_id.lower()] = series

    def set_resize_sizes(self, vm_id: str, sizes: Iterable[str]) -> None:
        """Restrict the sizes a running (allocated) VM may resize to."""
        with self._lock:
            self._vms[vm_id.lower()].resize_sizes = list(sizes)

    def fail_subscription(self, sub: str, status: int, code: str, message: str) -> None:
        """Answer every request under /subscriptions/{sub}/ with this ARM error."""
        with self._lock:
            self._failures[sub.lower()] = (status, code, message)

    def set_permissions(
        self, sub: str, actions: list[str], not_actions: Sequence[str] = ()
    ) -> None:
        """The caller's permissions anywhere in the subscription (default: ["*"])."""
        with self._lock:
            self._permissions[sub.lower()] = (list(actions), list(not_actions))

    def _available_sizes(self, vm: VmRecord) -> list[str]:
        """Sizes the VM may resize to: all of its location once deallocated."""
        if vm.power_state == "deallocated" or vm.resize_sizes is None:
            return [size.name for size in VM_SIZES]
        return [name for name in vm.resize_sizes if name.lower() in SIZES_BY_NAME]

    def _instance_view(self, vm: VmRecord) -> dict[str, Any]:
        changed = vm.power_changed or vm.created
        state = vm.power_state
        return {
            "statuses": [
                {
                    "code": "ProvisioningState/succeeded",
                    "level": "Info",
                    "displayStatus": "Provisioning succeeded",
                    "time": arm_time(changed),
                },
                {"code": f"PowerState/{state}", "level": "Info", "displayStatus": f"VM {state}"},
            ]
        }

    def _vm_doc(self, vm: VmRecord, *, with_view: bool) -> dict[str, Any]:
        doc = copy.deepcopy(vm.doc)
        if with_view:
            doc["properties"]["instanceView"] = self._instance_view(vm)
        return doc
