"""`costbot restore` for GCP: recreate a persistent disk costbot deleted, from the snapshot it
took first — same zone, type, size and labels (plus costbot-restored-from)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cleaners.gcp import GcpAction, label_value, path_parts
from costbot.actions import Restored
from costbot.errors import CleanupError
from costbot.store import StoredFinding


class RestoreGcpDisk(GcpAction):
    """Recreates a deleted disk from the costbot snapshot recorded in the finding's audit."""

    permissions: tuple[str, ...] = (
        "compute.disks.get",
        "compute.disks.create",
        "compute.snapshots.useReadOnly",
    )

    def restore(self, finding: StoredFinding, data: Mapping[str, Any]) -> Restored:
        """Create the disk (its old name, or <name>-restored when taken) and wait for it."""
        snapshot, disk = str(data["snapshot"]), dict(data["disk"])
        project = path_parts(finding.resource_id)["projects"]
        zone, name = str(disk["zone"]), str(disk["disk"])
        disks = self._clients.compute("DisksClient")
        if self._get("compute.disks.get", disks.get, project=project, zone=zone, disk=name):
            name = label_value(f"{name[:54]}-restored")
        labels = {
            **{
                k: v for k, v in dict(disk.get("labels", {})).items() if not k.startswith("costbot")
            },
            "costbot-restored-from": label_value(snapshot.rsplit("/", 1)[-1]),
        }
        operation = self._call(
            "compute.disks.insert",
            disks.insert_unary,
            project=project,
            zone=zone,
            disk_resource={
                "name": name,
                "source_snapshot": snapshot,
                "size_gb": int(disk["size_gb"]),
                "type_": f"zones/{zone}/diskTypes/{disk['disk_type']}",
                "labels": labels,
            },
        )
        self._wait(project, operation)
        if self._get("compute.disks.get", disks.get, project=project, zone=zone, disk=name) is None:
            raise CleanupError(f"restoring {snapshot}: disk {name} did not appear")
        return Restored(
            volume_id=f"projects/{project}/zones/{zone}/disks/{name}",
            snapshot_id=snapshot,
            source_volume=finding.resource_id,
            finding_id=finding.id,
            zone=zone,
            volume_type=str(disk["disk_type"]),
            size_gb=int(disk["size_gb"]),
        )
