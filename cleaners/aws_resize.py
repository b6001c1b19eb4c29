"""Resize an oversized EC2 instance: stop -> modify instance type -> start, each step dry-run
first. Opt-in (cleanup.allow_resize), only inside the maintenance window, never for instances
in an Auto Scaling group or backed by instance store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import WaiterError

from cleaners.aws import ASG_TAG, AwsAction, ResourceGone, tags_of
from costbot.actions import DryRun, Outcome, Readiness, Result, not_actionable, would
from costbot.errors import CleanupError
from costbot.store import StoredFinding

WAIT = {"Delay": 5, "MaxAttempts": 120}


class ResizeInstance(AwsAction):
    """Change an instance to the recommended smaller type, restoring its running state."""

    action = "resize_instance"
    permissions: tuple[str, ...] = (
        "ec2:DescribeInstances",
        "ec2:StopInstances",
        "ec2:ModifyInstanceAttribute",
        "ec2:StartInstances",
    )
    needs_window = True

    def _describe(self, finding: StoredFinding) -> dict[str, Any] | None:
        try:
            reservations = self._call(
                "ec2:DescribeInstances",
                self._ec2(finding).describe_instances,
                InstanceIds=[finding.resource_id],
            )["Reservations"]
        except ResourceGone:
            return None
        found = [i for r in reservations for i in r["Instances"]]
        if not found or found[0]["State"]["Name"] in ("terminated", "shutting-down"):
            return None
        return dict(found[0])

    def _decide(self, finding: StoredFinding, instance: dict[str, Any] | None) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, instance)
        if early is not None:
            return early
        assert instance is not None
        tags = tags_of(instance)
        if ASG_TAG in tags:
            return DryRun(
                Readiness.REFUSED,
                f"{finding.resource_id} belongs to Auto Scaling group {tags[ASG_TAG]}; "
                "change its launch template instead",
            )
        if instance.get("RootDeviceType", "ebs") != "ebs":
            return DryRun(
                Readiness.REFUSED,
                f"{finding.resource_id} is instance-store backed; stopping it would lose data",
            )
        current, target = instance["InstanceType"], finding.details.get("recommended_type")
        state = instance["State"]["Name"]
        if current != finding.details.get("instance_type") or not target:
            return DryRun(Readiness.CHANGED, f"{finding.resource_id} is now {current}")
        if state not in ("running", "stopped"):
            return DryRun(Readiness.CHANGED, f"{finding.resource_id} is {state}")
        params = {"from_type": current, "to_type": target, "was_running": state == "running"}
        restart = ", start it again" if state == "running" else ""
        change = f"stop {finding.resource_id}, change {current} → {target}{restart}"
        return would(finding, change, params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-describe, decide, then EC2 DryRun of each step."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        ec2 = self._ec2(finding)
        iid = finding.resource_id
        steps: list[tuple[Any, str, dict[str, Any]]] = [
            (
                ec2.modify_instance_attribute,
                "ec2:ModifyInstanceAttribute",
                {"InstanceId": iid, "InstanceType": {"Value": decision.params["to_type"]}},
            ),
        ]
        if decision.params["was_running"]:
            steps.insert(0, (ec2.stop_instances, "ec2:StopInstances", {"InstanceIds": [iid]}))
            steps.append((ec2.start_instances, "ec2:StartInstances", {"InstanceIds": [iid]}))
        return self._provider_checks(decision, steps)

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Stop, modify, start; if the change fails, start the instance again as it was."""
        decision = self._decide(finding, self._describe(finding))
        stop = not_actionable(decision, f"{finding.resource_id} no longer exists")
        if stop is not None:
            return stop
        was_running = bool(decision.params["was_running"])
        ec2, iid, target = self._ec2(finding), finding.resource_id, decision.params["to_type"]
        try:
            if was_running:
                self._call("ec2:StopInstances", ec2.stop_instances, InstanceIds=[iid])
                self._wait(ec2, "instance_stopped", iid)
            self._call(
                "ec2:ModifyInstanceAttribute",
                ec2.modify_instance_attribute,
                InstanceId=iid,
                InstanceType={"Value": target},
            )
        finally:
            if was_running:  # whatever failed above, bring the instance back
                self._start_or_revert(ec2, iid, decision.params["from_type"], target)
        data = {"from_type": decision.params["from_type"], "to_type": target}
        return Outcome(Result.DONE, f"resized {iid} to {target}", data)

    def _start_or_revert(self, ec2: Any, iid: str, from_type: str, target: str) -> None:
        """Start the instance; if it will not start on the new type, go back and start it."""
        try:
            self._call("ec2:StartInstances", ec2.start_instances, InstanceIds=[iid])
            self._wait(ec2, "instance_running", iid)
        except CleanupError as first:
            try:
                self._wait(ec2, "instance_stopped", iid)
                self._call(
                    "ec2:ModifyInstanceAttribute",
                    ec2.modify_instance_attribute,
                    InstanceId=iid,
                    InstanceType={"Value": from_type},
                )
                self._call("ec2:StartInstances", ec2.start_instances, InstanceIds=[iid])
                self._wait(ec2, "instance_running", iid)
            except CleanupError as second:
                raise CleanupError(
                    f"{iid} did not start on {target} ({first}) nor back on {from_type} "
                    f"({second}); it is STOPPED: start it by hand"
                ) from second
            raise CleanupError(
                f"{iid} did not start on {target} ({first}); it was changed back to {from_type} "
                "and started"
            ) from first

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the type already changed; either way restart an instance we had stopped."""
        instance = self._describe(finding)
        if instance is None:
            return Outcome(Result.ALREADY_GONE, f"{finding.resource_id} no longer exists")
        if params.get("was_running") and instance["State"]["Name"] == "stopped":
            ec2 = self._ec2(finding)
            self._call("ec2:StartInstances", ec2.start_instances, InstanceIds=[finding.resource_id])
            self._wait(ec2, "instance_running", finding.resource_id)
        if instance["InstanceType"] == params.get("to_type"):
            return Outcome(Result.DONE, f"resized to {params['to_type']} before the interruption")
        return None

    @staticmethod
    def _wait(ec2: Any, waiter: str, instance_id: str) -> None:
        try:
            ec2.get_waiter(waiter).wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
        except WaiterError as exc:
            raise CleanupError(f"{instance_id}: gave up waiting for {waiter}: {exc}") from exc
