"""`costbot restore`: recreate a deleted EBS volume from the snapshot costbot took before
deleting it — same AZ, type, size, IOPS/throughput and tags."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError, WaiterError

from cleaners.aws import SNAPSHOT_TAG_PREFIX, ClientSource, tags_of
from costbot.actions import Restored
from costbot.errors import CleanupError


class RestoreVolume:
    """Finds costbot snapshots and recreates volumes from them."""

    permissions = ("ec2:DescribeSnapshots", "ec2:CreateVolume", "ec2:CreateTags")

    def __init__(self, clients: ClientSource) -> None:
        self._clients = clients

    def find(
        self, account: str, region: str, *, snapshot_id: str = "", finding_id: str = ""
    ) -> dict[str, Any] | None:
        """The costbot snapshot with this id, or the one taken for this finding."""
        ec2 = self._clients(account, "ec2", region)
        if snapshot_id:
            query: dict[str, Any] = {"SnapshotIds": [snapshot_id]}
        else:
            query = {
                "OwnerIds": ["self"],
                "Filters": [{"Name": "tag:costbot:finding-id", "Values": [finding_id]}],
            }
        try:
            found = ec2.describe_snapshots(**query)["Snapshots"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidSnapshot.NotFound":
                return None
            raise CleanupError(f"ec2:DescribeSnapshots in {region}: {exc}") from exc
        ours = [s for s in found if "costbot:source-volume" in tags_of(s)]
        ours.sort(key=lambda s: s.get("StartTime") or 0, reverse=True)
        return dict(ours[0]) if ours else None

    def restore(self, account: str, region: str, snapshot: dict[str, Any]) -> Restored:
        """Create the volume, tagged as the original was, and wait until it is available."""
        tags = tags_of(snapshot)
        original = {k: v for k, v in tags.items() if not k.startswith(SNAPSHOT_TAG_PREFIX)}
        original["costbot:restored-from"] = snapshot["SnapshotId"]
        args: dict[str, Any] = {
            "SnapshotId": snapshot["SnapshotId"],
            "AvailabilityZone": tags["costbot:volume-az"],
            "VolumeType": tags["costbot:volume-type"],
            "Size": int(tags["costbot:volume-size"]),
            "TagSpecifications": [
                {
                    "ResourceType": "volume",
                    "Tags": [{"Key": k, "Value": v} for k, v in original.items()],
                }
            ],
        }
        if "costbot:volume-iops" in tags and tags["costbot:volume-type"] in ("io1", "io2", "gp3"):
            args["Iops"] = int(tags["costbot:volume-iops"])
        if "costbot:volume-throughput" in tags and tags["costbot:volume-type"] == "gp3":
            args["Throughput"] = int(tags["costbot:volume-throughput"])
        ec2 = self._clients(account, "ec2", region)
        try:
            volume = ec2.create_volume(**args)
            ec2.get_waiter("volume_available").wait(
                VolumeIds=[volume["VolumeId"]], WaiterConfig={"Delay": 5, "MaxAttempts": 120}
            )
        except (ClientError, WaiterError) as exc:
            raise CleanupError(f"restoring from {snapshot['SnapshotId']} failed: {exc}") from exc
        return Restored(
            volume_id=str(volume["VolumeId"]),
            snapshot_id=str(snapshot["SnapshotId"]),
            source_volume=tags["costbot:source-volume"],
            finding_id=tags.get("costbot:finding-id", ""),
            zone=args["AvailabilityZone"],
            volume_type=args["VolumeType"],
            size_gb=args["Size"],
        )
