"""A local emulator of the documented Compute Engine v1 REST API (disks, addresses, instances,
snapshots, machine types, operations) and the Cloud Billing Catalog REST API, over plain http on
127.0.0.1, for the real google-cloud-compute / google-cloud-billing clients in the demo and tests.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from costbot.emulators.gcp_billing import billing_answer, billing_error, default_skus
from costbot.emulators.gcp_compute import (
    API,
    MACHINE_TYPES,
    ZONES,
    ApiError,
    aggregated_page,
    fingerprint,
    list_page,
    machine_type,
    not_found,
    operation,
    region_of,
    rfc3339,
)
from costbot.emulators.gcp_http import JsonHttpEmulator, RecordedRequest

PROJECT_PATH = re.compile(r"/compute/v1/projects/([^/]+)/")
PROJECT_PERMISSIONS_PATH = re.compile(r"/v1/projects/([^/:]+):testIamPermissions")
RECOMMENDATIONS_PATH = re.compile(
    r"/v1/projects/([^/]+)/locations/([^/]+)/recommenders/([^/]+)/recommendations"
)
"""Recommender v1 recommendations.list (served on the same port)."""
"""Cloud Resource Manager v1 projects.testIamPermissions (served on the same port)."""
RESOURCE_PATH = re.compile(
    r"projects/(?P<project>[^/]+)/(?P<scope>(?:zones|regions)/[^/]+|global)"
    r"/(?P<collection>[^/]+)/(?P<name>[^/]+)(?:/(?P<action>[^/]+))?"
)
AGGREGATED_PATH = re.compile(r"projects/([^/]+)/aggregated/(disks|addresses|instances)")
MACHINE_TYPES_PATH = re.compile(r"projects/([^/]+)/zones/([^/]+)/machineTypes(?:/([^/]+))?")
SNAPSHOTS_PATH = re.compile(r"projects/([^/]+)/global/snapshots")
DISKS_PATH = re.compile(r"projects/([^/]+)/zones/([^/]+)/disks")
Key = tuple[str, str, str, str]
"""(project, scope, collection, name), scope being "zones/z", "regions/r" or "global"."""


def _path(key: Key) -> str:
    project, scope, collection, name = key
    return f"projects/{project}/{scope}/{collection}/{name}"


def _json_object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received.", "parseError")
    return body


class GcpEmulator(JsonHttpEmulator):
    """Compute Engine + Cloud Billing Catalog emulator; `with GcpEmulator() as emu:`."""

    def __init__(self) -> None:
        super().__init__()
        self.page_size: int = 500
        self.requests: list[RecordedRequest] = []
        self.skus: list[dict[str, Any]] = default_skus()
        self._lock = threading.Lock()
        self._resources: dict[Key, dict[str, Any]] = {}
        self._failures: dict[str, tuple[int, str]] = {}
        self._billing_failure: tuple[int, str] | None = None
        self._recommendations: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._denied: dict[str, set[str]] = {}
        self._ids = itertools.count(5_000_000_000_000_000_001)
        self._operations = itertools.count(1)

    # -- seeding ---------------------------------------------------------------------------------

    def _store(self, key: Key, resource: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            resource["id"] = str(next(self._ids))
            resource["selfLink"] = f"{API}/{_path(key)}"
            self._resources[key] = resource
            return resource

    @staticmethod
    def _labelled(labels: dict[str, str] | None) -> dict[str, Any]:
        labels = dict(labels or {})
        return {"labels": labels, "labelFingerprint": fingerprint(labels)}

    def add_disk(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        size_gb: int = 100,
        disk_type: str = "pd-standard",
        users: Iterable[str] = (),
        labels: dict[str, str] | None = None,
        created: datetime,
        last_attach: datetime | None = None,
        last_detach: datetime | None = None,
        status: str = "READY",
    ) -> dict[str, Any]:
        """Seed a zonal persistent disk; `users` are instance names in the same zone."""
        zone_url = f"{API}/projects/{project}/zones/{zone}"
        disk: dict[str, Any] = {
            "kind": "compute#disk",
            "creationTimestamp": rfc3339(created),
            "name": name,
            "sizeGb": str(size_gb),
            "zone": zone_url,
            "status": status,
            "type": f"{zone_url}/diskTypes/{disk_type}",
            "users": [f"{zone_url}/instances/{user}" for user in users],
            "physicalBlockSizeBytes": "4096",
            **self._labelled(labels),
        }
        if last_attach is not None:
            disk["lastAttachTimestamp"] = rfc3339(last_attach)
        if last_detach is not None:
            disk["lastDetachTimestamp"] = rfc3339(last_detach)
        return self._store((project, f"zones/{zone}", "disks", name), disk)

    def add_address(
        self,
        project: str,
        region: str | None,
        name: str,
        *,
        address: str = "34.1.2.3",
        address_type: str = "EXTERNAL",
        status: str = "RESERVED",
        users: Iterable[str] = (),
        labels: dict[str, str] | None = None,
        created: datetime,
    ) -> dict[str, Any]:
        """Seed a static IP address, regional or (region None) global; `users` are URLs."""
        resource: dict[str, Any] = {
            "kind": "compute#address",
            "creationTimestamp": rfc3339(created),
            "name": name,
            "address": address,
            "addressType": address_type,
            "status": status,
            "networkTier": "PREMIUM",
            "ipVersion": "IPV4",
            "users": list(users),
            **self._labelled(labels),
        }
        scope = "global" if region is None else f"regions/{region}"
        if region is not None:
            resource["region"] = f"{API}/projects/{project}/regions/{region}"
        return self._store((project, scope, "addresses", name), resource)

    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        machine_type: str = "n2-standard-8",
        status: str = "RUNNING",
        labels: dict[str, str] | None = None,
        created: datetime,
        last_start: datetime | None = None,
        last_stop: datetime | None = None,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """Seed a VM; `created_by` (a managed instance group URL) goes into its metadata."""
        zone_url = f"{API}/projects/{project}/zones/{zone}"
        items = [] if created_by is None else [{"key": "created-by", "value": created_by}]
        instance: dict[str, Any] = {
            "kind": "compute#instance",
            "creationTimestamp": rfc3339(created),
            "name": name,
            "machineType": f"{zone_url}/machineTypes/{machine_type}",
            "status": status,
            "zone": zone_url,
            "metadata": {
                "kind": "compute#metadata",
                "fingerprint": fingerprint({}),
                "items": items,
            },
            **self._labelled(labels),
        }
        if last_start is not None:
            instance["lastStartTimestamp"] = rfc3339(last_start)
        if last_stop is not None:
            instance["lastStopTimestamp"] = rfc3339(last_stop)
        return self._store((project, f"zones/{zone}", "instances", name), instance)

    def add_sku(self, sku: dict[str, Any]) -> None:
        """Append a Cloud Billing SKU JSON dict to the Compute Engine catalogue."""
        with self._lock:
            self.skus.append(sku)

    def fail_project(self, project: str, status: int, message: str) -> None:
        """Make every Compute request under projects/{project}/ answer this HTTP error."""
        with self._lock:
            self._failures[project] = (status, message)

    def add_recommendation(
        self, project: str, location: str, recommender: str, recommendation: dict[str, Any]
    ) -> None:
        """Seed a Recommender recommendation (its documented JSON) under a location."""
        with self._lock:
            self._recommendations.setdefault((project, location, recommender), []).append(
                copy.deepcopy(recommendation)
            )

    def fail_billing(self, status: int, message: str) -> None:
        """Make every Cloud Billing Catalog request answer this HTTP error."""
        with self._lock:
            self._billing_failure = (status, message)

    def deny_permissions(self, project: str, *permissions: str) -> None:
        """Leave these permissions out of testIamPermissions answers in the project."""
        with self._lock:
            self._denied.setdefault(project, set()).update(permissions)

    def resource(self, project: str, scope: str, collection: str, name: str) -> dict[str, Any]:
        """A copy of a stored resource, e.g. ("p", "zones/z", "disks", "d"); KeyError if absent."""
        with self._lock:
            return copy.deepcopy(self._resources[(project, scope, collection, name)])

    # -- serving ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Record and answer one request: (HTTP status, JSON body)."""
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body))
            if method == "POST" and (match := PROJECT_PERMISSIONS_PATH.fullmatch(path)):
                return self._project_permissions(match.group(1), body)
            if method == "GET" and (match := RECOMMENDATIONS_PATH.fullmatch(path)):
                return self._recommendations_page(match.groups(), query)
            if path.startswith("/v1/"):
                if self._billing_failure is not None:
                    return billing_error(*self._billing_failure)
                return billing_answer(method, path, query, self.skus, self.page_size)
            try:
                return 200, copy.deepcopy(self._compute(method, path, query, body))
            except ApiError as error:
                return error.status, error.body

    def _recommendations_page(self, key: tuple[str, ...], query: dict[str, str]) -> tuple[int, Any]:
        project, location, recommender = key
        if project in self._failures:
            error = ApiError(*self._failures[project])
            return error.status, error.body
        found = self._recommendations.get((project, location, recommender), [])
        if "stateInfo.state = ACTIVE" in query.get("filter", ""):
            found = [r for r in found if r.get("stateInfo", {}).get("state") == "ACTIVE"]
        start = int(query.get("pageToken") or 0)
        end = start + min(self.page_size, int(query.get("pageSize") or self.page_size))
        answer: dict[str, Any] = {"recommendations": copy.deepcopy(found[start:end])}
        if end < len(found):
            answer["nextPageToken"] = str(end)
        return 200, answer

    def _project_permissions(self, project: str, body: Any) -> tuple[int, Any]:
        if project in self._failures:
            error = ApiError(*self._failures[project])
            return error.status, error.body
        requested = _json_object(body).get("permissions", [])
        granted = [p for p in requested if p not in self._denied.get(project, set())]
        return 200, ({"permissions": granted} if granted else {})

    def _compute(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        project = PROJECT_PATH.match(path)
        if project and project.group(1) in self._failures:
            raise ApiError(*self._failures[project.group(1)])
        route = path.removeprefix("/compute/v1/")
        if method == "GET" and (match := AGGREGATED_PATH.fullmatch(route)):
            return self._aggregated(match.group(1), match.group(2), query)
        if method == "GET" and (match := MACHINE_TYPES_PATH.fullmatch(route)):
            return self._machine_types(match.group(1), match.group(2), match.group(3), query)
        if method == "GET" and (match := SNAPSHOTS_PATH.fullmatch(route)):
            snapshots = self._in_scope(match.group(1), "snapshots")
            self_link = f"projects/{match.group(1)}/global/snapshots"
            items = [resource for _, resource in snapshots]
            return list_page("compute#snapshotList", self_link, items, query, self.page_size)
        if method == "POST" and (match := DISKS_PATH.fullmatch(route)):
            return self._insert_disk(match.group(1), match.group(2), _json_object(body))
        match = RESOURCE_PATH.fullmatch(route)
        if match is None:
            raise ApiError(404, f"emulator: no route for {method} {path}", "notFound")
        project_id, scope, collection, name, action = match.groups()
        key = (project_id, scope, collection, name)
        if key not in self._resources:
            raise not_found(_path(key))
        if method == "GET" and action is None:
            return self._resources[key]
        if method == "DELETE" and action is None and collection in {"disks", "addresses"}:
            return self._delete(key)
        if method == "POST" and action == "testIamPermissions":
            requested = _json_object(body).get("permissions", [])
            granted = [p for p in requested if p not in self._denied.get(project_id, set())]
            return {"permissions": granted} if granted else {}
        actions = {
            ("disks", "createSnapshot"): self._create_snapshot,
            ("disks", "setLabels"): self._set_labels,
            ("instances", "stop"): self._stop,
            ("instances", "start"): self._start,
            ("instances", "setMachineType"): self._set_machine_type,
        }
        if method == "POST" and (collection, action) in actions:
            return actions[(collection, action)](key, _json_object(body))
        raise ApiError(404, f"emulator: no route for {method} {path}", "notFound")

    def _in_scope(self, project: str, collection: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (scope, resource)
            for (p, scope, c, _), resource in sorted(self._resources.items(), key=lambda kv: kv[0])
            if p == project and c == collection
        ]

    def _aggregated(self, project: str, collection: str, query: dict[str, str]) -> Any:
        resources = self._in_scope(project, collection)
        if collection == "addresses":
            scopes = {f"regions/{region_of(zone)}" for zone in ZONES} | {"global"}
        else:
            scopes = {f"zones/{zone}" for zone in ZONES}
        scopes |= {scope for scope, _ in resources}
        return aggregated_page(collection, project, scopes, resources, query, self.page_size)

    def _machine_types(
        self, project: str, zone: str, name: str | None, query: dict[str, str]
    ) -> Any:
        if name is None:
            items = [machine_type(project, zone, each) for each in sorted(MACHINE_TYPES)]
            self_link = f"projects/{project}/zones/{zone}/machineTypes"
            return list_page("compute#machineTypeList", self_link, items, query, self.page_size)
        if name not in MACHINE_TYPES:
            raise not_found(f"projects/{project}/zones/{zone}/machineTypes/{name}")
        return machine_type(project, zone, name)

    def _operation(self, key: Key, operation_type: str) -> Any:
        project, scope = key[0], key[1]
        target, now = self._resources[key], datetime.now(UTC)
        answer = operation(next(self._operations), project, scope, operation_type, target, now)
        self._resources[(project, scope, "operations", answer["name"])] = answer
        return answer

    def _delete(self, key: Key) -> Any:
        resource = self._resources[key]
        answer = self._operation(key, "delete")
        if not resource.get("users"):
            del self._resources[key]
            return answer
        kind = {"disks": "disk", "addresses": "address"}[key[2]]
        message = (
            f"The {kind} resource '{_path(key)}' is already being used by '{resource['users'][0]}'"
        )
        errors = [{"code": "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", "message": message}]
        answer.update(httpErrorStatusCode=400, httpErrorMessage="BAD REQUEST")
        answer["error"] = {"errors": errors}
        return answer

    def _create_snapshot(self, key: Key, body: dict[str, Any]) -> Any:
        name = body.get("name")
        if not name:
            raise ApiError(400, "Required field 'resource.name' not specified", "required")
        snapshot_key = (key[0], "global", "snapshots", str(name))
        if snapshot_key in self._resources:
            raise ApiError(409, f"The resource '{_path(snapshot_key)}' already exists")
        disk = self._resources[key]
        snapshot = {
            "kind": "compute#snapshot",
            "id": str(next(self._ids)),
            "creationTimestamp": rfc3339(datetime.now(UTC)),
            "name": name,
            "description": body.get("description", ""),
            "status": "READY",
            "sourceDisk": disk["selfLink"],
            "sourceDiskId": disk["id"],
            "diskSizeGb": disk["sizeGb"],
            "storageBytes": "0",
            "storageLocations": [region_of(key[1].removeprefix("zones/"))],
            "selfLink": f"{API}/{_path(snapshot_key)}",
            **self._labelled(body.get("labels")),
        }
        self._resources[snapshot_key] = snapshot
        return self._operation(key, "createSnapshot")

    def _insert_disk(self, project: str, zone: str, body: dict[str, Any]) -> Any:
        """disks.insert, from a snapshot of this project (what `costbot restore` sends)."""
        name, source = body.get("name"), str(body.get("sourceSnapshot", ""))
        if not name:
            raise ApiError(400, "Required field 'resource.name' not specified", "required")
        key = (project, f"zones/{zone}", "disks", str(name))
        if key in self._resources:
            raise ApiError(409, f"The resource '{_path(key)}' already exists", "alreadyExists")
        snapshot = self._resources.get((project, "global", "snapshots", source.rsplit("/", 1)[-1]))
        if source and snapshot is None:
            raise not_found(source)
        zone_url = f"{API}/projects/{project}/zones/{zone}"
        disk_type = str(body.get("type", "pd-standard")).rsplit("/", 1)[-1]
        self._resources[key] = {
            "kind": "compute#disk",
            "id": str(next(self._ids)),
            "creationTimestamp": rfc3339(datetime.now(UTC)),
            "name": name,
            "sizeGb": str(body.get("sizeGb") or (snapshot or {}).get("diskSizeGb", "10")),
            "zone": zone_url,
            "status": "READY",
            "type": f"{zone_url}/diskTypes/{disk_type}",
            "users": [],
            "sourceSnapshot": (snapshot or {}).get("selfLink", ""),
            "selfLink": f"{API}/{_path(key)}",
            **self._labelled(body.get("labels")),
        }
        return self._operation(key, "insert")

    def _set_labels(self, key: Key, body: dict[str, Any]) -> Any:
        disk = self._resources[key]
        if body.get("labelFingerprint") != disk["labelFingerprint"]:
            message = "Labels fingerprint either invalid or resource labels have changed"
            raise ApiError(412, message)
        disk.update(self._labelled(body.get("labels")))
        return self._operation(key, "setLabels")

    def _stop(self, key: Key, _body: dict[str, Any]) -> Any:
        instance = self._resources[key]
        instance["status"] = "TERMINATED"
        instance["lastStopTimestamp"] = rfc3339(datetime.now(UTC))
        return self._operation(key, "stop")

    def _start(self, key: Key, _body: dict[str, Any]) -> Any:
        instance = self._resources[key]
        instance["status"] = "RUNNING"
        instance["lastStartTimestamp"] = rfc3339(datetime.now(UTC))
        return self._operation(key, "start")

    def _set_machine_type(self, key: Key, body: dict[str, Any]) -> Any:
        instance = self._resources[key]
        wanted = str(body.get("machineType", ""))
        zone_path = f"{key[1]}/machineTypes/"
        name = wanted.rsplit("/", 1)[-1]
        if zone_path not in wanted or name not in MACHINE_TYPES:
            raise ApiError(400, f"Invalid value for field 'resource.machineType': '{wanted}'.")
        if instance["status"] != "TERMINATED":
            message = f"Instance '{key[3]}' must be stopped before changing its machine type."
            raise ApiError(400, message, "resourceNotReady")
        instance["machineType"] = f"{API}/projects/{key[0]}/{zone_path}{name}"
        return self._operation(key, "setMachineType")
