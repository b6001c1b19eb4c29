"""JSON building blocks of the Compute Engine emulator: resource URLs, timestamps, label
fingerprints, the predefined machine-type catalogue, API errors, and list/aggregated-list pages
shaped like compute v1's answers.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

API = "https://www.googleapis.com/compute/v1"
ZONES = (
    "us-central1-a",
    "us-central1-b",
    "us-central1-c",
    "us-central1-f",
    "us-east1-b",
    "us-east1-c",
    "us-east1-d",
    "europe-west1-b",
    "europe-west1-c",
    "europe-west1-d",
)
"""Zones every aggregated list reports (empty ones with a NO_RESULTS_ON_PAGE warning)."""
REASONS = {
    400: "badRequest",
    401: "required",
    403: "forbidden",
    404: "notFound",
    409: "alreadyExists",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
}


class ApiError(Exception):
    """An error answer: HTTP status plus compute's `{"error": {...}}` body."""

    def __init__(self, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        error = {
            "message": message,
            "domain": "global",
            "reason": reason or REASONS.get(status, "backendError"),
        }
        self.body = {"error": {"code": status, "message": message, "errors": [error]}}


def not_found(path: str) -> ApiError:
    """Compute's 404 for a resource path such as "projects/p/zones/z/disks/d"."""
    return ApiError(404, f"The resource '{path}' was not found")


def rfc3339(moment: datetime) -> str:
    """Compute's timestamp format ("2024-05-01T00:00:00.000+00:00"); `moment` must be tz-aware."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: give a timezone")
    return moment.isoformat(timespec="milliseconds")


def fingerprint(labels: dict[str, str]) -> str:
    """A label fingerprint: base64 of 8 bytes of a hash of the labels, as compute returns."""
    digest = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def region_of(zone: str) -> str:
    """The region of a zone ("us-central1-a" -> "us-central1")."""
    return zone.rsplit("-", 1)[0]


def _machine_types() -> dict[str, tuple[int, int, bool]]:
    """Predefined machine types: name -> (guestCpus, memoryMb, isSharedCpu)."""
    types = {"e2-micro": (2, 1024, True), "e2-small": (2, 2048, True), "e2-medium": (2, 4096, True)}
    families: tuple[tuple[str, Iterable[int], int], ...] = (
        ("e2-standard", (2, 4, 8, 16, 32), 4096),
        ("e2-highmem", (2, 4, 8, 16), 8192),
        ("n2-standard", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128), 4096),
        ("n2-highmem", (2, 4, 8, 16, 32, 48, 64, 80, 96, 128), 8192),
        ("n2-highcpu", (2, 4, 8, 16, 32, 48, 64, 80, 96), 1024),
        ("n1-standard", (1, 2, 4, 8, 16, 32, 64, 96), 3840),
        ("c3-standard", (4, 8, 22, 44, 88, 176), 4096),
    )
    for family, sizes, mb_per_cpu in families:
        types |= {f"{family}-{cpus}": (cpus, cpus * mb_per_cpu, False) for cpus in sizes}
    return types


MACHINE_TYPES = _machine_types()


def machine_type(project: str, zone: str, name: str) -> dict[str, Any]:
    """The MachineType JSON for a catalogue name in a zone (note: its `zone` is a bare name)."""
    cpus, memory_mb, shared = MACHINE_TYPES[name]
    number = int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)
    return {
        "kind": "compute#machineType",
        "id": str(number),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name,
        "description": f"{cpus} vCPU{'s' if cpus > 1 else ''}, {memory_mb / 1024:g} GB RAM",
        "guestCpus": cpus,
        "memoryMb": memory_mb,
        "imageSpaceGb": 0,
        "maximumPersistentDisks": 16 if shared else 128,
        "maximumPersistentDisksSizeGb": "3072" if shared else "263168",
        "zone": zone,
        "selfLink": f"{API}/projects/{project}/zones/{zone}/machineTypes/{name}",
        "isSharedCpu": shared,
    }


def page_bounds(query: dict[str, str], page_size: int, total: int) -> tuple[int, int]:
    """(start, end) of the page a `pageToken`/`maxResults` query asks for."""
    try:
        start = int(query.get("pageToken") or 0)
        wanted = int(query.get("maxResults") or 0)
    except ValueError as exc:
        raise ApiError(400, f"Invalid value for pageToken or maxResults: {exc}", "invalid") from exc
    if not 0 <= start <= total:
        raise ApiError(400, "Invalid value for field 'pageToken'", "invalid")
    size = min(page_size, wanted) if wanted > 0 else page_size
    return start, start + size


def list_page(
    kind: str, self_link: str, items: list[dict[str, Any]], query: dict[str, str], page_size: int
) -> dict[str, Any]:
    """A plain list answer (`items`, `nextPageToken` unless last page)."""
    start, end = page_bounds(query, page_size, len(items))
    answer: dict[str, Any] = {"kind": kind, "id": self_link, "selfLink": f"{API}/{self_link}"}
    if items[start:end]:
        answer["items"] = items[start:end]
    if end < len(items):
        answer["nextPageToken"] = str(end)
    return answer


def aggregated_page(
    collection: str,
    project: str,
    scopes: Iterable[str],
    resources: list[tuple[str, dict[str, Any]]],
    query: dict[str, str],
    page_size: int,
) -> dict[str, Any]:
    """One aggregatedList page grouped by scope; empty scopes warn NO_RESULTS_ON_PAGE on page 1."""
    start, end = page_bounds(query, page_size, len(resources))
    items: dict[str, Any] = {}
    for scope, resource in resources[start:end]:
        items.setdefault(scope, {collection: []})[collection].append(resource)
    if start == 0:
        used = {scope for scope, _ in resources}
        for scope in sorted(set(scopes) - used):
            message = f"There are no results for scope '{scope}' on this page."
            warning = {"code": "NO_RESULTS_ON_PAGE", "message": message}
            items[scope] = {"warning": warning | {"data": [{"key": "scope", "value": scope}]}}
    self_link = f"projects/{project}/aggregated/{collection}"
    singular = collection.removesuffix("es") if collection == "addresses" else collection[:-1]
    answer: dict[str, Any] = {
        "kind": f"compute#{singular}AggregatedList",
        "id": self_link,
        "items": items,
        "selfLink": f"{API}/{self_link}",
    }
    if end < len(resources):
        answer["nextPageToken"] = str(end)
    return answer


def operation(
    number: int,
    project: str,
    scope: str,
    operation_type: str,
    target: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """A finished ("DONE") Operation on `target` in a "zones/z", "regions/r" or "global" scope."""
    name = f"operation-{number}"
    answer: dict[str, Any] = {
        "kind": "compute#operation",
        "id": str(7_000_000_000_000_000_000 + number),
        "name": name,
        "operationType": operation_type,
        "targetLink": target["selfLink"],
        "targetId": target["id"],
        "status": "DONE",
        "user": "emulator@costbot.invalid",
        "progress": 100,
        "insertTime": rfc3339(now),
        "startTime": rfc3339(now),
        "endTime": rfc3339(now),
        "selfLink": f"{API}/projects/{project}/{scope}/operations/{name}",
    }
    if scope != "global":
        kind = scope.split("/", maxsplit=1)[0].removesuffix("s")
        answer[kind] = f"{API}/projects/{project}/{scope}"
    return answer
