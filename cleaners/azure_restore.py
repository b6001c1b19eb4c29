"""`costbot restore` for Azure: recreate a managed disk costbot deleted, from the snapshot it
took first — same resource group, location, zones, SKU, size and tags (plus
costbot:restored-from)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cleaners.azure import AzureAction, tag_value
from costbot.actions import Restored
from costbot.providers.azure import wire
from costbot.providers.azure_clients import parse_id
from costbot.store import StoredFinding


class RestoreAzureDisk(AzureAction):
    """Recreates a deleted disk from the costbot snapshot recorded in the finding's audit."""

    permissions: tuple[str, ...] = (
        "Microsoft.Compute/disks/read",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/snapshots/read",
    )

    def restore(self, finding: StoredFinding, data: Mapping[str, Any]) -> Restored:
        """Create the disk (its old name, or <name>-restored when taken) and wait for it."""
        snapshot, disk = str(data["snapshot_id"]), dict(data["disk"])
        parts = parse_id(finding.resource_id)
        disks = self._clients.compute(parts["subscription"]).disks
        group, name = parts["resource_group"], parts["name"]
        if self._get("Microsoft.Compute/disks/read", disks.get, group, name) is not None:
            name = f"{name[:70]}-restored"
        tags = {k: v for k, v in dict(disk.get("tags", {})).items() if not k.startswith("costbot:")}
        tags["costbot:restored-from"] = tag_value(snapshot)
        body: dict[str, Any] = {
            "location": disk["location"],
            "sku": {"name": disk["sku"]},
            "tags": tags,
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": snapshot},
                "diskSizeGB": int(disk["size_gb"]),
            },
        }
        if disk.get("zones"):
            body["zones"] = list(disk["zones"])
        what = "Microsoft.Compute/disks/write"
        poller = self._call(what, disks.begin_create_or_update, group, name, body)
        created = wire(self._call(what, poller.result))
        return Restored(
            volume_id=str(created.get("id") or name),
            snapshot_id=snapshot,
            source_volume=finding.resource_id,
            finding_id=finding.id,
            zone=str(disk["location"]),
            volume_type=str(disk["sku"]),
            size_gb=int(disk["size_gb"]),
        )
