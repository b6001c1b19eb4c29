"""Azure cleanup actions: snapshot-then-delete (or delete) a managed disk, delete a public IP.
ARM has no dry-run flag for these calls, so each dry run is the uncached re-read of the resource,
the waste rule and exclusions again, and the caller's effective permissions on the resource group
(Microsoft.Authorization/permissions); the verdict says exactly what that proved.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
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
from costbot.errors import CleanupError, ProviderError
from costbot.model import short_id
from costbot.providers.azure import ip_holders, parse_time, wire
from costbot.providers.azure_clients import AzureClients, parse_id, permits
from costbot.scanners import SITE_RECOVERY_DISK
from costbot.store import StoredFinding

log = logging.getLogger(__name__)
MAX_TAGS = 50
MAX_TAG_VALUE = 256


def tag_value(value: str) -> str:
    """A tag value within Azure's 256 characters: long ones become 'sha256:<hex>' (the group
    and disk name tags still say where the snapshot came from)."""
    if len(value) <= MAX_TAG_VALUE:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


class ResourceGone(CleanupError):
    """ARM answered 404 for the resource."""


class AzureAction(CloudAction[AzureClients]):
    """Shared plumbing: clients, re-check helpers, the permissions probe, error mapping."""

    @staticmethod
    def _tags_of(raw: Any) -> Mapping[str, str]:
        return dict(raw.get("tags") or {})

    def _call(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return call(*args, **kwargs)
        except ResourceNotFoundError as exc:
            raise ResourceGone(f"{what}: not found") from exc
        except AzureError as exc:
            detail = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
            raise CleanupError(f"{what}: {detail}") from exc

    def _get(self, what: str, call: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
        try:
            return wire(self._call(what, call, *args))
        except ResourceGone:
            return None

    def _probe(self, finding: StoredFinding, decision: DryRun, wanted: tuple[str, ...]) -> DryRun:
        """The caller's effective permissions on the resource group must allow every action."""
        parts = parse_id(finding.resource_id)
        group = parts["resource_group"]
        try:
            grants = self._clients.permissions(parts["subscription"], f"/resourceGroups/{group}")
        except ProviderError as exc:
            return DryRun(Readiness.DENIED, f"dry run failed: {exc}", decision.params)
        missing = [a for a in wanted if not permits(a, grants)]
        if missing:
            return DryRun(
                Readiness.DENIED,
                f"dry run failed: missing permission {', '.join(missing)} on resource group "
                f"{group}",
                decision.params,
            )
        proved = (
            "re-read just now: exists, still unused, no opt-out tag; your permissions on "
            f"resource group {group} allow {', '.join(wanted)}"
        )
        return DryRun(Readiness.READY, f"{decision.verdict} ({proved})", decision.params)


class SnapshotAndDeleteDisk(AzureAction):
    """Snapshot an unattached managed disk (tagged with its source), then delete it."""

    action = "snapshot_and_delete_disk"
    permissions: tuple[str, ...] = (
        "Microsoft.Compute/disks/read",
        "Microsoft.Compute/snapshots/write",
        "Microsoft.Compute/snapshots/read",
        "Microsoft.Compute/disks/delete",
    )
    probed: tuple[str, ...] = (
        "Microsoft.Compute/snapshots/write",
        "Microsoft.Compute/disks/delete",
    )
    snapshot = True

    def _disks(self, finding: StoredFinding) -> tuple[Any, str, str]:
        parts = parse_id(finding.resource_id)
        disks = self._clients.compute(parts["subscription"]).disks
        return disks, parts["resource_group"], parts["name"]

    def _describe(self, finding: StoredFinding) -> dict[str, Any] | None:
        disks, group, name = self._disks(finding)
        return self._get("Microsoft.Compute/disks/read", disks.get, group, name)

    def _decide(self, finding: StoredFinding, disk: dict[str, Any] | None) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, disk)
        if early is not None:
            return early
        assert disk is not None
        if SITE_RECOVERY_DISK.search(disk["name"]):
            return DryRun(Readiness.REFUSED, f"{disk['name']} is an Azure Site Recovery disk")
        props = disk.get("properties", {})
        other = recreated(finding, disk["name"], parse_time(props.get("timeCreated")))
        if other is not None:
            return other
        state = props.get("diskState", "")
        if disk.get("managedBy") or state != "Unattached":
            holder = short_id(disk.get("managedBy") or "") or f"({state})"
            return attached_disk(finding, disk["name"], holder)
        params = {
            "disk_id": disk["id"],
            "location": disk["location"],
            "size_gb": props.get("diskSizeGB"),
            "sku": disk.get("sku", {}).get("name"),
            "zones": disk.get("zones", []),
            "tags": disk.get("tags") or {},
        }
        size = f"{params['size_gb']} GiB {params['sku']}"
        first = (
            f"snapshot {disk['name']} ({size}) then delete it"
            if self.snapshot
            else f"delete {disk['name']} ({size}) without a snapshot"
        )
        return would(finding, first, params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-read the disk, decide, then check the effective permissions on its group."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        wanted = self.probed if self.snapshot else ("Microsoft.Compute/disks/delete",)
        return self._probe(finding, decision, wanted)

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Snapshot (reusing one from an interrupted run), re-check, then delete."""
        decision = self._decide(finding, self._describe(finding))
        stop = not_actionable(decision, f"{finding.resource_id} was already gone")
        if stop is not None:
            return stop
        disks, group, name = self._disks(finding)
        data: dict[str, Any] = {"disk": dict(decision.params)}
        if self.snapshot:
            ids = [params.get("action_id"), *params.get("reuse_from_actions", [])]
            snapshot = self._existing_snapshot(finding, ids) or self._create_snapshot(
                finding, decision.params, params.get("action_id")
            )
            data["snapshot_id"] = snapshot
            stop = not_actionable(
                self._decide(finding, self._describe(finding)), f"{finding.resource_id} is gone"
            )
            if stop is not None:
                return Outcome(stop.result, f"{stop.note}; snapshot {snapshot} kept", data)
        try:
            poller = self._call("Microsoft.Compute/disks/delete", disks.begin_delete, group, name)
            self._call("Microsoft.Compute/disks/delete", poller.result)
        except ResourceGone:
            return Outcome(Result.ALREADY_GONE, f"{finding.resource_id} was already gone", data)
        kept = f" after snapshot {data['snapshot_id']}" if self.snapshot else ""
        return Outcome(Result.DONE, f"deleted {name}{kept}", data)

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the disk is gone (with its costbot snapshot, when one was wanted)."""
        if self._describe(finding) is not None:
            return None
        snapshot = None
        if self.snapshot:
            snapshot = self._existing_snapshot(finding, [params.get("action_id")])
            if snapshot is None:
                return Outcome(
                    Result.ALREADY_GONE,
                    f"{finding.resource_id} is gone but costbot took no snapshot of it: deleted "
                    "by someone else before the interrupted action got that far",
                )
        data = {"snapshot_id": snapshot} if snapshot else {}
        note = f"{finding.resource_id} was deleted before the interruption"
        return Outcome(Result.DONE, note, data)

    @staticmethod
    def snapshot_name(disk: str, action_id: object) -> str:
        """A deterministic snapshot name per action, so a resumed run finds its own snapshot."""
        return f"costbot-{disk[:50]}-{action_id}"[:80]

    def _existing_snapshot(self, finding: StoredFinding, action_ids: list[Any]) -> str | None:
        parts = parse_id(finding.resource_id)
        snapshots = self._clients.compute(parts["subscription"]).snapshots
        for action_id in (a for a in action_ids if a is not None):
            name = self.snapshot_name(parts["name"], action_id)
            found = self._get(
                "Microsoft.Compute/snapshots/read", snapshots.get, parts["resource_group"], name
            )
            if found and found.get("properties", {}).get("provisioningState") == "Succeeded":
                return str(found["id"])
        return None

    def _create_snapshot(
        self, finding: StoredFinding, disk: Mapping[str, Any], action_id: object
    ) -> str:
        parts = parse_id(finding.resource_id)
        snapshots = self._clients.compute(parts["subscription"]).snapshots
        ours = {
            "costbot:source-disk": tag_value(str(disk["disk_id"])),
            "costbot:source-resource-group": parts["resource_group"],
            "costbot:source-disk-name": parts["name"],
            "costbot:finding-id": tag_value(finding.id),
            "costbot:action-id": str(action_id),
            "costbot:disk-size-gb": str(disk["size_gb"]),
            "costbot:disk-sku": str(disk["sku"]),
            "costbot:disk-zones": ",".join(disk["zones"]),
        }
        original = {k: v for k, v in dict(disk["tags"]).items() if not k.startswith("costbot:")}
        tags = dict(list(original.items())[: MAX_TAGS - len(ours)]) | ours
        body = {
            "location": disk["location"],
            "tags": tags,
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk["disk_id"]},
                "incremental": True,
            },
        }
        name = self.snapshot_name(parts["name"], action_id)
        what = "Microsoft.Compute/snapshots/write"
        poller = self._call(
            what, snapshots.begin_create_or_update, parts["resource_group"], name, body
        )
        created = wire(self._call(what, poller.result))
        return str(created.get("id") or name)


class DeleteDisk(SnapshotAndDeleteDisk):
    """Delete an unattached managed disk without a snapshot (only when configured)."""

    action = "delete_disk"
    permissions: tuple[str, ...] = (
        "Microsoft.Compute/disks/read",
        "Microsoft.Compute/disks/delete",
    )
    snapshot = False


class DeletePublicIp(AzureAction):
    """Delete a public IP that no NIC, NAT gateway or prefix uses (the IP itself is recorded)."""

    action = "delete_public_ip"
    permissions: tuple[str, ...] = (
        "Microsoft.Network/publicIPAddresses/read",
        "Microsoft.Network/publicIPAddresses/delete",
    )

    def _ips(self, finding: StoredFinding) -> tuple[Any, str, str]:
        parts = parse_id(finding.resource_id)
        ips = self._clients.network(parts["subscription"]).public_ip_addresses
        return ips, parts["resource_group"], parts["name"]

    def _describe(self, finding: StoredFinding) -> dict[str, Any] | None:
        ips, group, name = self._ips(finding)
        return self._get("Microsoft.Network/publicIPAddresses/read", ips.get, group, name)

    def _decide(self, finding: StoredFinding, ip: dict[str, Any] | None) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, ip)
        if early is not None:
            return early
        assert ip is not None
        props = ip.get("properties", {})
        holders = ip_holders(props)
        address = props.get("ipAddress") or ip["name"]
        approved = finding.details.get("ip")
        if approved and address != approved:
            return DryRun(
                Readiness.CHANGED,
                f"{ip['name']} now holds {address}, not the approved {approved}: re-created "
                "since the scan",
            )
        if holders:
            return DryRun(Readiness.CHANGED, f"{address} is now used by {holders[0]}")
        params = {"ip": address, "name": ip["name"]}
        return would(finding, f"delete public IP {address} ({ip['name']})", params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-read the IP, decide, then check the effective permissions on its group."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        return self._probe(finding, decision, ("Microsoft.Network/publicIPAddresses/delete",))

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Re-check, then delete the public IP."""
        decision = self._decide(finding, self._describe(finding))
        ip = decision.params.get("ip") or finding.details.get("ip")
        gone = Outcome(
            Result.ALREADY_GONE, f"{finding.resource_id} was already deleted", {"ip": ip}
        )
        if decision.readiness is Readiness.GONE:
            return gone
        if not decision.ok:
            return Outcome(Result.CHANGED, decision.verdict)
        ips, group, name = self._ips(finding)
        what = "Microsoft.Network/publicIPAddresses/delete"
        try:
            poller = self._call(what, ips.begin_delete, group, name)
            self._call(what, poller.result)
        except ResourceGone:
            return gone
        return Outcome(Result.DONE, f"deleted public IP {ip} ({name})", {"ip": ip})

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the public IP is gone."""
        if self._describe(finding) is not None:
            return None
        ip = params.get("ip") or finding.details.get("ip")
        return Outcome(Result.DONE, f"deleted {ip} before the interruption", {"ip": ip})
