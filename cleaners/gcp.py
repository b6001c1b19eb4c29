"""Google Cloud cleanup actions: snapshot-then-delete (or delete) a persistent disk, release a
static external address. Compute has no DryRun flag, so each dry run is the uncached re-read of
the resource, the waste rule and exclusions again, and testIamPermissions on the resource itself;
the verdict says exactly which permissions that proved.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from costbot.actions import (
    CloudAction,
    DryRun,
    Outcome,
    Readiness,
    Result,
    attached_disk,
    not_actionable,
    recreated,
    would,
)
from costbot.config import Exclusions
from costbot.errors import CleanupError
from costbot.providers.gcp import last_segment, parse_time
from costbot.providers.gcp_clients import GcpClients
from costbot.store import StoredFinding

log = logging.getLogger(__name__)
OPERATION_TIMEOUT_S = 600
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]")


class ResourceGone(CleanupError):
    """Compute answered 404 for the resource."""


def label_value(value: object) -> str:
    """A GCP label value: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return _LABEL_UNSAFE.sub("-", str(value).lower())[:63]


def path_parts(resource_id: str) -> dict[str, str]:
    """'projects/p/zones/z/disks/d' -> {'projects': 'p', 'zones': 'z', 'disks': 'd'}."""
    parts = resource_id.strip("/").split("/")
    found: dict[str, str] = {}
    index = 0
    while index < len(parts) - 1:
        if parts[index] == "global":  # 'global' is a scope without a value
            found["global"] = "global"
            index += 1
            continue
        found[parts[index]] = parts[index + 1]
        index += 2
    return found


class GcpAction(CloudAction[GcpClients]):
    """Shared plumbing: clients, re-check helpers, permission probes, operation waits."""

    def __init__(
        self,
        clients: GcpClients,
        exclusions: Exclusions,
        today: Callable[[], datetime],
        *,
        operation_timeout_s: float = OPERATION_TIMEOUT_S,
    ) -> None:
        super().__init__(clients, exclusions, today)
        self._timeout_s = operation_timeout_s

    def _call(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        from google.api_core.exceptions import GoogleAPIError, NotFound
        from google.auth.exceptions import GoogleAuthError

        try:
            return call(**kwargs)
        except NotFound as exc:
            raise ResourceGone(f"{what}: {exc.message}") from exc
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise CleanupError(f"{what}: {getattr(exc, 'message', None) or exc}") from exc

    def _get(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return self._call(what, call, **kwargs)
        except ResourceGone:
            return None

    @staticmethod
    def _tags_of(raw: Any) -> Mapping[str, str]:
        return dict(raw.labels)

    def _probe(
        self,
        decision: DryRun,
        what: str,
        call: Callable[..., Any],
        wanted: tuple[str, ...],
        **kw: Any,
    ) -> DryRun:
        """testIamPermissions on the resource: READY only when every permission is granted."""
        try:
            answer = self._call(
                f"{what}.testIamPermissions",
                call,
                test_permissions_request_resource={"permissions": list(wanted)},
                **kw,
            )
        except CleanupError as exc:
            return DryRun(Readiness.DENIED, f"dry run failed: {exc}", decision.params)
        missing = [p for p in wanted if p not in set(answer.permissions)]
        if missing:
            return DryRun(
                Readiness.DENIED,
                f"dry run failed: missing permission {', '.join(missing)}",
                decision.params,
            )
        proved = (
            f"re-read just now: exists, still unused, no opt-out label; testIamPermissions "
            f"granted {', '.join(wanted)}"
        )
        return DryRun(Readiness.READY, f"{decision.verdict} ({proved})", decision.params)

    def _wait(self, project: str, operation: Any) -> None:
        """Wait for a zonal/regional/global operation with our own clients; raise its error."""
        deadline = time.monotonic() + self._timeout_s
        while operation.status != operation.Status.DONE:
            if time.monotonic() >= deadline:
                raise CleanupError(f"operation {operation.name} not done after {self._timeout_s}s")
            if operation.zone:
                client, scope = "ZoneOperationsClient", {"zone": last_segment(operation.zone)}
            elif operation.region:
                client, scope = "RegionOperationsClient", {"region": last_segment(operation.region)}
            else:
                client, scope = "GlobalOperationsClient", {}
            operation = self._call(
                "compute.operations.wait",
                self._clients.compute(client).wait,
                project=project,
                operation=operation.name,
                **scope,
            )
        errors = [f"{e.code}: {e.message}" for e in operation.error.errors]
        if operation.http_error_status_code == 404:
            raise ResourceGone(f"operation {operation.name}: {'; '.join(errors)}")
        if errors or operation.http_error_status_code:
            detail = "; ".join(errors) or operation.http_error_message
            raise CleanupError(f"operation {operation.name} failed: {detail}")


class SnapshotAndDeleteDisk(GcpAction):
    """Snapshot an unattached persistent disk (labelled with its source), then delete it."""

    action = "snapshot_and_delete_disk"
    permissions: tuple[str, ...] = (
        "compute.disks.get",
        "compute.disks.createSnapshot",
        "compute.snapshots.create",
        "compute.snapshots.get",
        "compute.disks.delete",
    )
    probed: tuple[str, ...] = ("compute.disks.createSnapshot", "compute.disks.delete")
    snapshot = True

    def _where(self, finding: StoredFinding) -> dict[str, str]:
        parts = path_parts(finding.resource_id)
        if "zones" not in parts:
            raise CleanupError(f"{finding.resource_id}: only zonal disks are supported")
        return {"project": parts["projects"], "zone": parts["zones"], "disk": parts["disks"]}

    def _describe(self, finding: StoredFinding) -> Any:
        disks = self._clients.compute("DisksClient")
        return self._get("compute.disks.get", disks.get, **self._where(finding))

    def _decide(self, finding: StoredFinding, disk: Any) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        if "zones" not in path_parts(finding.resource_id):
            return DryRun(Readiness.REFUSED, f"{finding.resource_id}: regional disks not supported")
        early = self._gone_or_excluded(finding, disk)
        if early is not None:
            return early
        other = recreated(finding, disk.name, parse_time(disk.creation_timestamp))
        if other is not None:
            return other
        if disk.users:
            users = ", ".join(last_segment(u) for u in disk.users)
            return attached_disk(finding, disk.name, users)
        params = {
            "disk": disk.name,
            "self_link": disk.self_link,
            "size_gb": int(disk.size_gb),
            "disk_type": last_segment(disk.type_),
            "zone": last_segment(disk.zone),
            "labels": dict(disk.labels),
        }
        size = f"{params['size_gb']} GiB {params['disk_type']}"
        first = (
            f"snapshot {disk.name} ({size}) then delete it"
            if self.snapshot
            else f"delete {disk.name} ({size}) without a snapshot"
        )
        return would(finding, first, params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-read the disk, decide, then testIamPermissions on it."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        wanted = self.probed if self.snapshot else ("compute.disks.delete",)
        disks = self._clients.compute("DisksClient")
        where = self._where(finding)
        return self._probe(
            decision,
            "compute.disks",
            disks.test_iam_permissions,
            wanted,
            project=where["project"],
            zone=where["zone"],
            resource=where["disk"],
        )

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Snapshot (reusing one from an interrupted run), wait until READY, re-check, delete."""
        decision = self._decide(finding, self._describe(finding))
        stop = not_actionable(decision, f"{finding.resource_id} was already gone")
        if stop is not None:
            return stop
        where = self._where(finding)
        data: dict[str, Any] = {"disk": dict(decision.params)}
        if self.snapshot:
            ids = [params.get("action_id"), *params.get("reuse_from_actions", [])]
            name = self._existing_snapshot(where, finding, ids) or self._create_snapshot(
                where, finding, decision.params, params.get("action_id")
            )
            data["snapshot"] = f"projects/{where['project']}/global/snapshots/{name}"
            stop = not_actionable(
                self._decide(finding, self._describe(finding)), f"{finding.resource_id} is gone"
            )
            if stop is not None:
                return Outcome(stop.result, f"{stop.note}; snapshot {name} kept", data)
        disks = self._clients.compute("DisksClient")
        try:
            operation = self._call("compute.disks.delete", disks.delete_unary, **where)
            self._wait(where["project"], operation)
        except ResourceGone:
            return Outcome(Result.ALREADY_GONE, f"{finding.resource_id} was already gone", data)
        kept = f" after snapshot {data['snapshot']}" if self.snapshot else ""
        return Outcome(Result.DONE, f"deleted {finding.resource_id}{kept}", data)

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the disk is gone (with its costbot snapshot, when one was wanted)."""
        if self._describe(finding) is not None:
            return None
        name = None
        if self.snapshot:
            name = self._existing_snapshot(self._where(finding), finding, [params.get("action_id")])
            if name is None:
                return Outcome(
                    Result.ALREADY_GONE,
                    f"{finding.resource_id} is gone but costbot took no snapshot of it: deleted "
                    "by someone else before the interrupted action got that far",
                )
        data = {"snapshot": name} if name else {}
        return Outcome(
            Result.DONE, f"{finding.resource_id} was deleted before the interruption", data
        )

    @staticmethod
    def snapshot_name(disk: str, action_id: object) -> str:
        """A deterministic snapshot name per action, so a resumed run finds its own snapshot."""
        return label_value(f"costbot-{disk[:40]}-{action_id}").strip("-_")

    def _existing_snapshot(
        self, where: Mapping[str, str], finding: StoredFinding, action_ids: list[Any]
    ) -> str | None:
        snapshots = self._clients.compute("SnapshotsClient")
        for action_id in (a for a in action_ids if a is not None):
            name = self.snapshot_name(where["disk"], action_id)
            found = self._get(
                "compute.snapshots.get", snapshots.get, project=where["project"], snapshot=name
            )
            if found is not None and found.status in ("CREATING", "UPLOADING", "READY"):
                self._wait_ready(where["project"], name)
                return name
        return None

    def _create_snapshot(
        self,
        where: Mapping[str, str],
        finding: StoredFinding,
        disk: Mapping[str, Any],
        action_id: object,
    ) -> str:
        name = self.snapshot_name(where["disk"], action_id)
        labels = {
            **{k: v for k, v in dict(disk["labels"]).items() if not k.startswith("costbot")},
            "costbot-source-disk": label_value(where["disk"]),
            "costbot-source-zone": label_value(where["zone"]),
            "costbot-disk-type": label_value(disk["disk_type"]),
            "costbot-size-gb": str(disk["size_gb"]),
            "costbot-action-id": label_value(action_id),
        }
        description = json.dumps(
            {"costbot": "snapshot before delete", "finding": finding.id, "source": disk},
            sort_keys=True,
        )[:2048]
        disks = self._clients.compute("DisksClient")
        operation = self._call(
            "compute.disks.createSnapshot",
            disks.create_snapshot_unary,
            **where,
            snapshot_resource={"name": name, "labels": labels, "description": description},
        )
        self._wait(where["project"], operation)
        self._wait_ready(where["project"], name)
        return name

    def _wait_ready(self, project: str, name: str) -> None:
        snapshots = self._clients.compute("SnapshotsClient")
        deadline = time.monotonic() + self._timeout_s
        while True:
            found = self._call(
                "compute.snapshots.get", snapshots.get, project=project, snapshot=name
            )
            if found.status == "READY":
                return
            if found.status in ("FAILED", "DELETING") or time.monotonic() >= deadline:
                raise CleanupError(f"snapshot {name} is {found.status}; the disk was kept")
            log.info("waiting for snapshot", extra={"snapshot": name, "status": found.status})
            time.sleep(2)


class DeleteDisk(SnapshotAndDeleteDisk):
    """Delete an unattached persistent disk without a snapshot (only when configured)."""

    action = "delete_disk"
    permissions: tuple[str, ...] = ("compute.disks.get", "compute.disks.delete")
    snapshot = False


class ReleaseAddress(GcpAction):
    """Release a reserved static external address nobody uses (the IP itself is recorded)."""

    action = "release_address"
    permissions: tuple[str, ...] = (
        "compute.addresses.get",
        "compute.addresses.delete",
        "compute.globalAddresses.get",
        "compute.globalAddresses.delete",
    )

    def _target(self, finding: StoredFinding) -> tuple[Any, dict[str, str], str]:
        parts = path_parts(finding.resource_id)
        where = {"project": parts["projects"], "address": parts["addresses"]}
        if "regions" in parts:
            client = self._clients.compute("AddressesClient")
            return client, {**where, "region": parts["regions"]}, "compute.addresses"
        return self._clients.compute("GlobalAddressesClient"), where, "compute.globalAddresses"

    def _describe(self, finding: StoredFinding) -> Any:
        client, where, what = self._target(finding)
        return self._get(f"{what}.get", client.get, **where)

    def _decide(self, finding: StoredFinding, address: Any) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, address)
        if early is not None:
            return early
        ip = finding.details.get("ip")
        if ip and address.address != ip:
            return DryRun(
                Readiness.CHANGED,
                f"{address.name} now holds {address.address}, not the approved {ip}: "
                "re-reserved since the scan",
            )
        if address.status != "RESERVED" or address.address_type != "EXTERNAL":
            users = ", ".join(last_segment(u) for u in address.users) or address.status
            return DryRun(Readiness.CHANGED, f"{address.address} is now in use ({users})")
        params = {"ip": address.address, "name": address.name}
        return would(finding, f"release {address.address} ({address.name})", params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-read the address, decide, then testIamPermissions on it."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        client, where, what = self._target(finding)
        probe_where = {k: v for k, v in where.items() if k != "address"}
        return self._probe(
            decision,
            what,
            client.test_iam_permissions,
            (f"{what}.delete",),
            resource=where["address"],
            **probe_where,
        )

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Re-check, then delete the address."""
        decision = self._decide(finding, self._describe(finding))
        ip = decision.params.get("ip") or finding.details.get("ip")
        gone = Outcome(
            Result.ALREADY_GONE, f"{finding.resource_id} was already released", {"ip": ip}
        )
        if decision.readiness is Readiness.GONE:
            return gone
        if not decision.ok:
            return Outcome(Result.CHANGED, decision.verdict)
        client, where, what = self._target(finding)
        try:
            operation = self._call(f"{what}.delete", client.delete_unary, **where)
            self._wait(where["project"], operation)
        except ResourceGone:
            return gone
        return Outcome(Result.DONE, f"released {ip} ({finding.resource_id})", {"ip": ip})

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the address is gone."""
        if self._describe(finding) is not None:
            return None
        ip = params.get("ip") or finding.details.get("ip")
        return Outcome(Result.DONE, f"released {ip} before the interruption", {"ip": ip})
