"""AWS cleanup actions, one small class each: snapshot-then-delete (or delete) an EBS volume,
release an Elastic IP, resize an instance. Each dry run re-describes the resource uncached,
re-applies the waste rule and the exclusions, then asks EC2 itself with DryRun=True; execute
re-checks with the same decision function before it changes anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costbot.actions import (
    CloudAction,
    DryRun,
    Outcome,
    Readiness,
    Result,
    attached_disk,
    not_actionable,
    would,
)
from costbot.config import Exclusions
from costbot.errors import CleanupError
from costbot.store import StoredFinding

log = logging.getLogger(__name__)
ClientSource = Callable[[str, str, str], Any]
"""(account, service, region) -> boto3 client."""

NOT_FOUND = frozenset(
    {
        "InvalidVolume.NotFound",
        "InvalidAllocationID.NotFound",
        "InvalidAddress.NotFound",
        "InvalidInstanceID.NotFound",
    }
)
SNAPSHOT_TAG_PREFIX = "costbot:"
MAX_TAGS = 50
ASG_TAG = "aws:autoscaling:groupName"


class ResourceGone(CleanupError):
    """EC2 answered that the resource does not exist (any more)."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def tags_of(raw: Mapping[str, Any]) -> dict[str, str]:
    """EC2's Tags list as a dict."""
    return {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) or []}


class AwsAction(CloudAction[ClientSource]):
    """Shared plumbing: clients per finding, EC2's DryRun answer, error mapping."""

    @staticmethod
    def _tags_of(raw: Any) -> Mapping[str, str]:
        return tags_of(raw)

    def _ec2(self, finding: StoredFinding) -> Any:
        return self._clients(finding.account, "ec2", finding.region)

    @staticmethod
    def _provider_dry_run(call: Callable[..., Any], permission: str, **kwargs: Any) -> str | None:
        """None when EC2 answers DryRunOperation; otherwise why the real call would fail."""
        try:
            call(DryRun=True, **kwargs)
        except ClientError as exc:
            code = _code(exc)
            if code == "DryRunOperation":
                return None
            if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
                return f"missing permission {permission}"
            return f"{permission} dry run failed: {code}: {exc.response['Error'].get('Message')}"
        except BotoCoreError as exc:
            return f"{permission} dry run failed: {exc}"
        return f"{permission} dry run was not refused as a dry run; not trusted"

    def _provider_checks(
        self, decision: DryRun, steps: list[tuple[Callable[..., Any], str, dict[str, Any]]]
    ) -> DryRun:
        """EC2's DryRun for every call the action will make; the first refusal wins."""
        for call, permission, kwargs in steps:
            problem = self._provider_dry_run(call, permission, **kwargs)
            if problem:
                return DryRun(Readiness.DENIED, f"dry run failed: {problem}", decision.params)
        return DryRun(Readiness.READY, decision.verdict + " (EC2 dry run passed)", decision.params)

    def _call(self, what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return call(**kwargs)
        except ClientError as exc:
            if _code(exc) in NOT_FOUND:
                raise ResourceGone(f"{what}: {_code(exc)}") from exc
            raise CleanupError(
                f"{what}: {_code(exc)}: {exc.response['Error'].get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            raise CleanupError(f"{what}: {exc}") from exc


class SnapshotAndDeleteVolume(AwsAction):
    """Snapshot an unattached EBS volume (tagged for restore), wait for it, then delete it."""

    action = "snapshot_and_delete_volume"
    permissions: tuple[str, ...] = (
        "ec2:DescribeVolumes",
        "ec2:CreateSnapshot",
        "ec2:CreateTags",
        "ec2:DescribeSnapshots",
        "ec2:DeleteVolume",
    )
    snapshot = True

    def __init__(
        self,
        clients: ClientSource,
        exclusions: Exclusions,
        today: Callable[[], datetime],
        *,
        snapshot_timeout_s: float = 3600,
        poll_s: float = 15,
    ) -> None:
        super().__init__(clients, exclusions, today)
        self._timeout_s = snapshot_timeout_s
        self._poll_s = poll_s

    def _describe(self, finding: StoredFinding) -> dict[str, Any] | None:
        try:
            volumes = self._call(
                "ec2:DescribeVolumes",
                self._ec2(finding).describe_volumes,
                VolumeIds=[finding.resource_id],
            )["Volumes"]
        except ResourceGone:
            return None
        if not volumes or volumes[0]["State"] in ("deleting", "deleted"):
            return None
        return dict(volumes[0])

    def _decide(self, finding: StoredFinding, volume: dict[str, Any] | None) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, volume)
        if early is not None:
            return early
        assert volume is not None
        tags = tags_of(volume)
        holders = [a["InstanceId"] for a in volume.get("Attachments", [])]
        if volume["State"] != "available" or holders:
            return attached_disk(
                finding, finding.resource_id, ", ".join(holders) or f"({volume['State']})"
            )
        params = {
            "volume_id": volume["VolumeId"],
            "size_gb": volume["Size"],
            "volume_type": volume.get("VolumeType"),
            "zone": volume.get("AvailabilityZone"),
            "iops": volume.get("Iops"),
            "throughput": volume.get("Throughput"),
            "encrypted": volume.get("Encrypted", False),
            "tags": tags,
        }
        size = f"{volume['Size']} GiB {volume.get('VolumeType')}"
        first = (
            f"snapshot {finding.resource_id} ({size}) then delete it"
            if self.snapshot
            else (f"delete {finding.resource_id} ({size}) without a snapshot")
        )
        return would(finding, first, params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-describe, decide, then EC2 DryRun of CreateSnapshot and DeleteVolume."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        ec2 = self._ec2(finding)
        target = {"VolumeId": finding.resource_id}
        steps = [(ec2.delete_volume, "ec2:DeleteVolume", target)]
        if self.snapshot:
            steps.insert(0, (ec2.create_snapshot, "ec2:CreateSnapshot", target))
        return self._provider_checks(decision, steps)

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Snapshot (reusing one from an interrupted run), wait until completed, delete."""
        decision = self._decide(finding, self._describe(finding))
        stop = not_actionable(decision, f"{finding.resource_id} was already gone")
        if stop is not None:
            return stop
        ec2 = self._ec2(finding)
        data: dict[str, Any] = {"volume": dict(decision.params)}
        if self.snapshot:
            action_id = params.get("action_id")
            interrupted = list(params.get("reuse_from_actions", []))
            snapshot_id = self._existing_snapshot(finding, interrupted) or self._create_snapshot(
                finding, decision.params, action_id
            )
            self._wait_completed(ec2, snapshot_id)
            data["snapshot_id"] = snapshot_id
            # the wait can be long: re-check (attached again? opt-out tag?) right before deleting
            stop = not_actionable(
                self._decide(finding, self._describe(finding)), f"{finding.resource_id} is gone"
            )
            if stop is not None:
                return Outcome(stop.result, f"{stop.note}; snapshot {snapshot_id} kept", data)
        try:
            self._call("ec2:DeleteVolume", ec2.delete_volume, VolumeId=finding.resource_id)
        except ResourceGone:
            return Outcome(Result.ALREADY_GONE, f"{finding.resource_id} was already gone", data)
        kept = f" after snapshot {data['snapshot_id']}" if self.snapshot else ""
        return Outcome(Result.DONE, f"deleted {finding.resource_id}{kept}", data)

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the volume is gone (with its costbot snapshot, when one was wanted)."""
        if self._describe(finding) is not None:
            return None
        interrupted = [params["action_id"]] if "action_id" in params else []
        snapshot_id = self._existing_snapshot(finding, interrupted) if self.snapshot else None
        if self.snapshot and snapshot_id is None:
            return Outcome(
                Result.ALREADY_GONE,
                f"{finding.resource_id} is gone but costbot took no snapshot of it: deleted by "
                "someone else before the interrupted action got that far",
            )
        data = {"snapshot_id": snapshot_id} if snapshot_id else {}
        return Outcome(
            Result.DONE, f"{finding.resource_id} was deleted before the interruption", data
        )

    def _existing_snapshot(self, finding: StoredFinding, action_ids: list[Any]) -> str | None:
        """A snapshot taken by one of these actions (never one from an older approval)."""
        wanted = [str(a) for a in action_ids if a is not None]
        if not wanted:
            return None
        snapshots = self._call(
            "ec2:DescribeSnapshots",
            self._ec2(finding).describe_snapshots,
            OwnerIds=["self"],
            Filters=[
                {"Name": "tag:costbot:finding-id", "Values": [finding.id]},
                {"Name": "tag:costbot:action-id", "Values": wanted},
                {"Name": "status", "Values": ["pending", "completed"]},
            ],
        )["Snapshots"]
        return str(snapshots[0]["SnapshotId"]) if snapshots else None

    def _create_snapshot(
        self, finding: StoredFinding, params: Mapping[str, Any], action_id: Any
    ) -> str:
        tags = snapshot_tags(finding.id, params, action_id)
        snapshot = self._call(
            "ec2:CreateSnapshot",
            self._ec2(finding).create_snapshot,
            VolumeId=finding.resource_id,
            Description=f"costbot: before deleting {finding.resource_id} ({finding.id})",
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )
        return str(snapshot["SnapshotId"])

    def _wait_completed(self, ec2: Any, snapshot_id: str) -> None:
        """Poll until the snapshot is completed, logging its progress; bounded by the timeout."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            found = self._call(
                "ec2:DescribeSnapshots", ec2.describe_snapshots, SnapshotIds=[snapshot_id]
            )["Snapshots"]
            state = found[0]["State"] if found else "missing"
            progress = found[0].get("Progress", "") if found else ""
            if state == "completed":
                return
            if state in ("error", "missing") or time.monotonic() >= deadline:
                raise CleanupError(
                    f"snapshot {snapshot_id} is {state} {progress} after waiting up to "
                    f"{self._timeout_s:.0f}s; the volume was kept"
                )
            log.info("waiting for snapshot", extra={"snapshot": snapshot_id, "progress": progress})
            time.sleep(min(self._poll_s, max(0.0, deadline - time.monotonic())))


class DeleteVolume(SnapshotAndDeleteVolume):
    """Delete an unattached EBS volume without a snapshot (only when configured)."""

    action = "delete_volume"
    permissions: tuple[str, ...] = ("ec2:DescribeVolumes", "ec2:DeleteVolume")
    snapshot = False


def snapshot_tags(
    finding_id: str, params: Mapping[str, Any], action_id: Any = None
) -> dict[str, str]:
    """The volume's own tags plus what `costbot restore` needs, within EC2's 50-tag limit."""
    ours = {
        "costbot:source-volume": str(params["volume_id"]),
        "costbot:finding-id": finding_id,
        "costbot:volume-size": str(params["size_gb"]),
        "costbot:volume-type": str(params["volume_type"]),
        "costbot:volume-az": str(params["zone"]),
    }
    if action_id is not None:
        ours["costbot:action-id"] = str(action_id)
    if params.get("iops"):
        ours["costbot:volume-iops"] = str(params["iops"])
    if params.get("throughput"):
        ours["costbot:volume-throughput"] = str(params["throughput"])
    original = {
        k: v
        for k, v in dict(params.get("tags", {})).items()
        if not k.startswith(("aws:", SNAPSHOT_TAG_PREFIX))
    }
    room = MAX_TAGS - len(ours)
    return dict(list(original.items())[:room]) | ours


class ReleaseAddress(AwsAction):
    """Release an Elastic IP that nothing is associated with (the IP itself is recorded)."""

    action = "release_address"
    permissions: tuple[str, ...] = ("ec2:DescribeAddresses", "ec2:ReleaseAddress")

    def _describe(self, finding: StoredFinding) -> dict[str, Any] | None:
        key = "AllocationIds" if finding.resource_id.startswith("eipalloc-") else "PublicIps"
        try:
            found = self._call(
                "ec2:DescribeAddresses",
                self._ec2(finding).describe_addresses,
                **{key: [finding.resource_id]},
            )["Addresses"]
        except ResourceGone:
            return None
        return found[0] if found else None

    def _decide(self, finding: StoredFinding, address: dict[str, Any] | None) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, address)
        if early is not None:
            return early
        assert address is not None
        if "AssociationId" in address:
            target = address.get("InstanceId") or address.get("NetworkInterfaceId") or "something"
            return DryRun(
                Readiness.CHANGED, f"{address['PublicIp']} is now associated with {target}"
            )
        params = {"ip": address["PublicIp"], "allocation_id": address.get("AllocationId")}
        return would(finding, f"release {address['PublicIp']} ({finding.resource_id})", params)

    def _release_args(self, finding: StoredFinding) -> dict[str, str]:
        if finding.resource_id.startswith("eipalloc-"):
            return {"AllocationId": finding.resource_id}
        return {"PublicIp": finding.resource_id}

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-describe, decide, then EC2 DryRun of ReleaseAddress."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        release = self._ec2(finding).release_address
        return self._provider_checks(
            decision, [(release, "ec2:ReleaseAddress", self._release_args(finding))]
        )

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Re-check, then release."""
        decision = self._decide(finding, self._describe(finding))
        ip = decision.params.get("ip") or finding.details.get("ip")
        if decision.readiness is Readiness.GONE:
            return Outcome(
                Result.ALREADY_GONE, f"{finding.resource_id} was already released", {"ip": ip}
            )
        if not decision.ok:
            return Outcome(Result.CHANGED, decision.verdict)
        try:
            self._call(
                "ec2:ReleaseAddress",
                self._ec2(finding).release_address,
                **self._release_args(finding),
            )
        except ResourceGone:
            return Outcome(
                Result.ALREADY_GONE, f"{finding.resource_id} was already released", {"ip": ip}
            )
        return Outcome(Result.DONE, f"released {ip} ({finding.resource_id})", {"ip": ip})

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the address is gone."""
        if self._describe(finding) is not None:
            return None
        ip = params.get("ip") or finding.details.get("ip")
        return Outcome(Result.DONE, f"released {ip} before the interruption", {"ip": ip})
