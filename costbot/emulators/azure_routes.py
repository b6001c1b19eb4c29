"""The Azure emulator's ARM routes: compute and network resources, paged lists, long-running
operations (answered at once, polled through Azure-AsyncOperation), metrics and permissions.
"""

from __future__ import annotations

import copy
import urllib.parse
import uuid
from datetime import UTC, datetime
from typing import Any

from costbot.emulators.azure_catalog import VM_SIZES
from costbot.emulators.azure_metrics import MetricsRoutes, dig, not_found
from costbot.emulators.azure_state import (
    SIZES_BY_NAME,
    RecordedRequest,
    Reply,
    VmRecord,
    arm_time,
    disk_performance,
    error,
)

_POWER = {"poweroff": "stopped", "deallocate": "deallocated", "start": "running"}
_VM_KEYS = {"id", "name", "type", "location", "tags", "properties", "plan", "identity", "zones"}
_DISK_KEYS = {"tags", "properties", "sku"}


def _is(parts: list[str], *pattern: str) -> bool:
    """Whether lowercased path segments match a pattern ("*" matches any one segment)."""
    return len(parts) == len(pattern) and all(
        p in ("*", part) for p, part in zip(pattern, parts, strict=True)
    )


def _bad_body(kind: str, body: Any, allowed: set[str]) -> Reply | None:
    """400 as Compute answers a body that is no object or has an unknown top-level member."""
    if not isinstance(body, dict):
        return Reply(400, error("InvalidRequestContent", f"The {kind} body must be an object."))
    unknown = sorted(set(body) - allowed)
    if unknown:
        message = f"Could not find member '{unknown[0]}' on object of type '{kind}'."
        return Reply(400, error("InvalidRequestContent", message))
    return None


class ArmRoutes(MetricsRoutes):
    """Answers ARM requests from the seeded state."""

    def _answer_arm(self, request: RecordedRequest, base_url: str) -> Reply:
        """Answer one authenticated request under /subscriptions/."""
        segments = request.path.strip("/").split("/")
        parts = [segment.lower() for segment in segments]
        if len(parts) < 2 or parts[0] != "subscriptions":
            return Reply(404, error("NotFound", f"No route for {request.path}"))
        with self._lock:
            failure = self._failures.get(parts[1])
            if failure is not None:
                return Reply(failure[0], error(failure[1], failure[2]))
            if "api-version" not in request.query:
                message = "The api-version query parameter (?api-version=) is required."
                return Reply(400, error("MissingApiVersionParameter", message))
            return self._dispatch(request, segments, parts, base_url)

    def _dispatch(
        self, request: RecordedRequest, segments: list[str], parts: list[str], base_url: str
    ) -> Reply:
        if parts[-3:] == ["providers", "microsoft.insights", "metrics"]:
            return self._only(request, "GET") or self._metrics(request, "/".join(segments[:-3]))
        if parts[-3:] == ["providers", "microsoft.authorization", "permissions"]:
            return self._only(request, "GET") or self._permissions_of(parts[1])
        rest = parts[2:]
        if _is(rest, "providers", "*", "locations", "*", "operations", "*"):
            return self._only(request, "GET") or self._operation(rest[5], request.path)
        if _is(rest, "providers", "microsoft.compute", "locations", "*", "vmsizes"):
            sizes = [size.arm() for size in VM_SIZES]
            return self._only(request, "GET") or Reply(200, {"value": sizes})
        in_group = rest[:1] == ["resourcegroups"] and len(rest) > 2
        tail = rest[2:] if in_group else rest
        if len(tail) == 3 and tail[0] == "providers":
            return self._only(request, "GET") or self._list(request, parts, tail, base_url)
        if in_group and len(tail) >= 4 and tail[0] == "providers":
            return self._resource(request, segments, tail, base_url)
        return Reply(404, error("InvalidResourceType", f"No route for {request.path}"))

    def _only(self, request: RecordedRequest, *methods: str) -> Reply | None:
        if request.method in methods:
            return None
        message = f"The requested resource does not support http method '{request.method}'."
        return Reply(405, error("UnsupportedHttpMethod", message))

    def _list(
        self, request: RecordedRequest, parts: list[str], tail: list[str], base_url: str
    ) -> Reply:
        prefix = "/" + "/".join(parts[: len(parts) - 3]) + "/"
        kind = (tail[1], tail[2])
        with_view = request.query.get("statusOnly", "").lower() == "true" or (
            request.query.get("$expand", "").lower() == "instanceview"
        )
        if kind == ("microsoft.compute", "virtualmachines"):
            docs = [
                self._vm_doc(vm, with_view=with_view)
                for key, vm in sorted(self._vms.items())
                if key.startswith(prefix)
            ]
        else:
            collections = {
                ("microsoft.compute", "disks"): self._disks,
                ("microsoft.compute", "snapshots"): self._snapshots,
                ("microsoft.network", "publicipaddresses"): self._ips,
            }
            if kind not in collections:
                return Reply(404, error("InvalidResourceType", f"No route for {request.path}"))
            docs = [doc for key, doc in sorted(collections[kind].items()) if key.startswith(prefix)]
        return self._page(request, docs, base_url)

    def _page(self, request: RecordedRequest, docs: list[Any], base_url: str) -> Reply:
        token = request.query.get("$skiptoken", "0")
        if not token.isdigit():
            return Reply(400, error("InvalidSkipToken", f"Invalid $skiptoken {token!r}."))
        skip = int(token)
        body: dict[str, Any] = {"value": copy.deepcopy(docs[skip : skip + self.page_size])}
        if skip + self.page_size < len(docs):
            query = urllib.parse.urlencode(
                {**request.query, "$skiptoken": str(skip + self.page_size)}
            )
            body["nextLink"] = f"{base_url}{urllib.parse.quote(request.path)}?{query}"
        return Reply(200, body)

    def _accepted(
        self,
        request: RecordedRequest,
        base_url: str,
        location: str,
        status: int = 202,
        body: Any = None,
    ) -> Reply:
        """Register a finished operation and answer the LRO's first response."""
        segments = request.path.strip("/").split("/")
        lowered = [segment.lower() for segment in segments]
        provider = segments[lowered.index("providers", 2) + 1]
        operation = str(uuid.uuid4())
        self._operations[operation] = arm_time(datetime.now(UTC))
        query = urllib.parse.urlencode({"api-version": request.query["api-version"]})
        url = (
            f"{base_url}/subscriptions/{segments[1]}/providers/{provider}/locations/{urllib.parse.quote(location)}"
            f"/operations/{operation}?{query}"
        )
        return Reply(status, body, {"Azure-AsyncOperation": url, "Location": f"{url}&monitor=true"})

    def _operation(self, operation: str, path: str) -> Reply:
        started = self._operations.get(operation)
        if started is None:
            return not_found(path)
        return Reply(
            200,
            {"name": operation, "status": "Succeeded", "startTime": started, "endTime": started},
        )

    def _resource(
        self, request: RecordedRequest, segments: list[str], tail: list[str], base_url: str
    ) -> Reply:
        kind, extra = (tail[1], tail[2]), tail[4:]
        key = "/" + "/".join(segments[: len(segments) - len(extra)]).lower()
        shown = "/" + "/".join(segments[: len(segments) - len(extra)])
        if kind == ("microsoft.compute", "virtualmachines"):
            vm = self._vms.get(key)
            if vm is None:
                return not_found(shown)
            return self._vm_route(request, vm, extra, base_url)
        if extra:
            return Reply(404, error("InvalidResourceType", f"No route for {request.path}"))
        handlers = {
            ("microsoft.compute", "disks"): (("GET", "PUT", "PATCH", "DELETE"), self._disk),
            ("microsoft.compute", "snapshots"): (("GET", "PUT"), self._snapshot),
            ("microsoft.network", "publicipaddresses"): (("GET", "DELETE"), self._ip),
        }
        if kind not in handlers:
            return Reply(404, error("InvalidResourceType", f"No route for {request.path}"))
        methods, handler = handlers[kind]
        return self._only(request, *methods) or handler(request, key, shown, base_url)

    def _disk(self, request: RecordedRequest, key: str, shown: str, base_url: str) -> Reply:
        if request.method == "PUT":
            return self._disk_from_snapshot(request, key, shown, base_url)
        disk = self._disks.get(key)
        if disk is None:
            return not_found(shown)
        if request.method == "GET":
            return Reply(200, copy.deepcopy(disk))
        if request.method == "PATCH":
            invalid = _bad_body("DiskUpdate", request.body, _DISK_KEYS)
            if invalid is not None:
                return invalid
            if "tags" in request.body:
                disk["tags"] = dict(dig(request.body, "tags") or {})
            return self._accepted(request, base_url, disk["location"], 200, copy.deepcopy(disk))
        state = disk["properties"]["diskState"]
        if disk.get("managedBy") or state != "Unattached":
            owner = disk.get("managedBy") or "no VM"
            message = f"Disk {disk['name']} is {state} (managed by {owner}) and cannot be deleted."
            return Reply(409, error("OperationNotAllowed", message))
        del self._disks[key]
        return self._accepted(request, base_url, disk["location"])

    def _disk_from_snapshot(
        self, request: RecordedRequest, key: str, shown: str, base_url: str
    ) -> Reply:
        """A new disk copied from one of this emulator's snapshots (what a restore sends)."""
        body = request.body
        creation = dig(body, "properties", "creationData") or {}
        source = self._snapshots.get(str(creation.get("sourceResourceId", "")).lower())
        if not body.get("location"):
            return Reply(400, error("LocationRequired", "The location property is required."))
        if creation.get("createOption") != "Copy" or source is None:
            message = "creationData needs createOption Copy and the id of an existing snapshot."
            return Reply(400, error("InvalidParameter", message))
        if key in self._disks:
            return Reply(409, error("Conflict", f"Disk {shown} already exists."))
        size = int(dig(body, "properties", "diskSizeGB") or source["properties"]["diskSizeGB"])
        sku = str((body.get("sku") or {}).get("name") or "Standard_LRS")
        tier, iops, mbps = disk_performance(sku, size)
        disk: dict[str, Any] = {
            "id": shown,
            "name": shown.rsplit("/", 1)[-1],
            "type": "Microsoft.Compute/disks",
            "location": body["location"],
            "tags": dict(body.get("tags") or {}),
            "sku": {"name": sku, "tier": "Premium" if sku.startswith("Premium") else "Standard"},
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": source["id"]},
                "diskSizeGB": size,
                "diskIOPSReadWrite": iops,
                "diskMBpsReadWrite": mbps,
                "timeCreated": arm_time(datetime.now(UTC)),
                "provisioningState": "Succeeded",
                "diskState": "Unattached",
                "uniqueId": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
                **({"tier": tier} if sku.startswith("Premium") else {}),
            },
        }
        if body.get("zones"):
            disk["zones"] = list(body["zones"])
        self._disks[key] = disk
        return self._accepted(request, base_url, body["location"], 202, copy.deepcopy(disk))

    def _snapshot(self, request: RecordedRequest, key: str, shown: str, base_url: str) -> Reply:
        if request.method == "GET":
            found = self._snapshots.get(key)
            return not_found(shown) if found is None else Reply(200, copy.deepcopy(found))
        body = request.body
        invalid = _bad_body("Snapshot", body, _VM_KEYS | {"sku"})
        if invalid is not None:
            return invalid
        creation = dig(body, "properties", "creationData") or {}
        source = self._disks.get(str(creation.get("sourceResourceId", "")).lower())
        if not body.get("location"):
            return Reply(400, error("LocationRequired", "The location property is required."))
        if creation.get("createOption") not in ("Copy", "CopyStart") or source is None:
            message = "creationData needs createOption Copy and the id of an existing disk."
            return Reply(400, error("InvalidParameter", message))
        size = source["properties"]["diskSizeGB"]
        snapshot = {
            "id": shown,
            "name": shown.rsplit("/", 1)[-1],
            "type": "Microsoft.Compute/snapshots",
            "location": body["location"],
            "tags": dict(body.get("tags") or {}),
            "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "properties": {
                "creationData": {
                    "createOption": creation["createOption"],
                    "sourceResourceId": source["id"],
                    "sourceUniqueId": source["properties"]["uniqueId"],
                },
                "diskSizeGB": size,
                "diskSizeBytes": size * 1024**3,
                "incremental": bool(dig(body, "properties", "incremental")),
                "timeCreated": arm_time(datetime.now(UTC)),
                "provisioningState": "Succeeded",
                "diskState": "Unattached",
                "uniqueId": str(uuid.uuid5(uuid.NAMESPACE_URL, key)),
            },
        }
        status = 200 if key in self._snapshots else 202
        self._snapshots[key] = snapshot
        return self._accepted(request, base_url, body["location"], status, copy.deepcopy(snapshot))

    def _ip(self, request: RecordedRequest, key: str, shown: str, base_url: str) -> Reply:
        address = self._ips.get(key)
        if address is None:
            return not_found(shown)
        if request.method == "GET":
            return Reply(200, copy.deepcopy(address))
        properties = address["properties"]
        user = properties.get("ipConfiguration") or properties.get("natGateway")
        if user:
            message = (
                f"Public IP address {address['id']} can not be deleted since it is still "
                f"allocated to resource {user['id']}."
            )
            return Reply(400, error("PublicIPAddressInUse", message))
        del self._ips[key]
        return self._accepted(request, base_url, address["location"])

    def _vm_route(
        self, request: RecordedRequest, vm: VmRecord, extra: list[str], base_url: str
    ) -> Reply:
        location = vm.doc["location"]
        if not extra:
            if request.method == "GET":
                expand = request.query.get("$expand", "").lower() == "instanceview"
                return Reply(200, self._vm_doc(vm, with_view=expand))
            return self._only(request, "PATCH", "PUT") or self._resize(request, vm, base_url)
        if extra == ["instanceview"]:
            return self._only(request, "GET") or Reply(200, self._instance_view(vm))
        if extra == ["vmsizes"]:
            sizes = [SIZES_BY_NAME[name.lower()].arm() for name in self._available_sizes(vm)]
            return self._only(request, "GET") or Reply(200, {"value": sizes})
        if len(extra) == 1 and extra[0] in _POWER:
            refused = self._only(request, "POST")
            if refused is not None:
                return refused
            target = _POWER[extra[0]]
            if not (target == "stopped" and vm.power_state == "deallocated"):
                vm.power_state = target
            vm.power_changed = datetime.now(UTC)
            for disk_id in vm.disk_ids:
                disk = self._disks.get(disk_id.lower())
                if disk is not None and disk.get("managedBy", "").lower() == vm.doc["id"].lower():
                    reserved = vm.power_state == "deallocated"
                    disk["properties"]["diskState"] = "Reserved" if reserved else "Attached"
            return self._accepted(request, base_url, location)
        return Reply(404, error("InvalidResourceType", f"No route for {request.path}"))

    def _resize(self, request: RecordedRequest, vm: VmRecord, base_url: str) -> Reply:
        kind = "VirtualMachineUpdate" if request.method == "PATCH" else "VirtualMachine"
        invalid = _bad_body(kind, request.body, _VM_KEYS)
        if invalid is not None:
            return invalid
        wanted = dig(request.body, "properties", "hardwareProfile", "vmSize")
        current = vm.doc["properties"]["hardwareProfile"]["vmSize"]
        if wanted and str(wanted).lower() != current.lower():
            available = self._available_sizes(vm)
            if str(wanted).lower() not in {name.lower() for name in available}:
                message = (
                    f"Unable to resize the VM '{vm.doc['name']}' because the requested size "
                    f"{wanted} is not available in the current hardware cluster. The available "
                    f"sizes in this cluster are: {', '.join(available)}. Read more on VM "
                    "resizing strategy at https://aka.ms/azure-resizevm."
                )
                return Reply(409, error("OperationNotAllowed", message))
            vm.doc["properties"]["hardwareProfile"]["vmSize"] = SIZES_BY_NAME[wanted.lower()].name
        if "tags" in request.body:
            vm.doc["tags"] = dict(dig(request.body, "tags") or {})
        body = self._vm_doc(vm, with_view=False)
        return self._accepted(request, base_url, vm.doc["location"], 200, body)

    def _permissions_of(self, sub: str) -> Reply:
        actions, not_actions = self._permissions.get(sub, (["*"], []))
        grant = {
            "actions": list(actions),
            "notActions": list(not_actions),
            "dataActions": [],
            "notDataActions": [],
        }
        return Reply(200, {"value": [grant]})
