"""Resize an oversized Compute Engine instance: stop -> setMachineType -> start, with the same
dry run as every GCP action (uncached re-read + testIamPermissions). Opt-in
(cleanup.allow_resize), only inside the maintenance window, never for instances of a managed
instance group or with local SSDs (stopping would lose their data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cleaners.gcp import GcpAction, ResourceGone, path_parts
from costbot.actions import DryRun, Outcome, Readiness, Result, not_actionable, would
from costbot.errors import CleanupError
from costbot.providers.gcp import last_segment
from costbot.store import StoredFinding


class ResizeGcpInstance(GcpAction):
    """Change an instance to the recommended smaller machine type, restoring its running state."""

    action = "resize_instance"
    permissions: tuple[str, ...] = (
        "compute.instances.get",
        "compute.instances.stop",
        "compute.instances.setMachineType",
        "compute.instances.start",
    )
    needs_window = True

    def _where(self, finding: StoredFinding) -> dict[str, str]:
        parts = path_parts(finding.resource_id)
        return {
            "project": parts["projects"],
            "zone": parts["zones"],
            "instance": parts["instances"],
        }

    def _describe(self, finding: StoredFinding) -> Any:
        instances = self._clients.compute("InstancesClient")
        return self._get("compute.instances.get", instances.get, **self._where(finding))

    def _decide(self, finding: StoredFinding, instance: Any) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, instance)
        if early is not None:
            return early
        created_by = next((m.value for m in instance.metadata.items if m.key == "created-by"), "")
        if "instanceGroupManagers" in created_by:
            return DryRun(
                Readiness.REFUSED,
                f"{instance.name} belongs to managed instance group {last_segment(created_by)}; "
                "change its instance template instead",
            )
        if any(d.type_ == "SCRATCH" for d in instance.disks):
            return DryRun(
                Readiness.REFUSED, f"{instance.name} has local SSDs; stopping it would lose data"
            )
        current = last_segment(instance.machine_type)
        target = finding.details.get("recommended_type")
        if current != finding.details.get("instance_type") or not target:
            return DryRun(Readiness.CHANGED, f"{instance.name} is now {current}")
        if instance.status not in ("RUNNING", "TERMINATED"):
            return DryRun(Readiness.CHANGED, f"{instance.name} is {instance.status}")
        running = instance.status == "RUNNING"
        params = {"from_type": current, "to_type": target, "was_running": running}
        restart = ", start it again" if running else ""
        return would(finding, f"stop {instance.name}, change {current} → {target}{restart}", params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-read the instance, decide, then testIamPermissions for every step."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        where = self._where(finding)
        instances = self._clients.compute("InstancesClient")
        wanted: tuple[str, ...] = ("compute.instances.setMachineType",)
        if decision.params["was_running"]:
            wanted = ("compute.instances.stop", *wanted, "compute.instances.start")
        return self._probe(
            decision,
            "compute.instances",
            instances.test_iam_permissions,
            wanted,
            project=where["project"],
            zone=where["zone"],
            resource=where["instance"],
        )

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Stop, change the machine type, start; if the change fails, start it as it was."""
        decision = self._decide(finding, self._describe(finding))
        stop = not_actionable(decision, f"{finding.resource_id} no longer exists")
        if stop is not None:
            return stop
        was_running = bool(decision.params["was_running"])
        from_type, target = decision.params["from_type"], decision.params["to_type"]
        where = self._where(finding)
        try:
            if was_running:
                self._step("compute.instances.stop", "stop_unary", where)
            self._set_type(where, target)
        finally:
            if was_running:  # whatever failed above, bring the instance back
                self._start_or_revert(where, from_type, target)
        data = {"from_type": from_type, "to_type": target}
        return Outcome(Result.DONE, f"resized {where['instance']} to {target}", data)

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the type already changed; either way restart an instance we had stopped."""
        instance = self._describe(finding)
        if instance is None:
            return Outcome(Result.ALREADY_GONE, f"{finding.resource_id} no longer exists")
        if params.get("was_running") and instance.status == "TERMINATED":
            self._step("compute.instances.start", "start_unary", self._where(finding))
        if last_segment(instance.machine_type) == params.get("to_type"):
            return Outcome(Result.DONE, f"resized to {params['to_type']} before the interruption")
        return None

    def _step(self, what: str, method: str, where: Mapping[str, str], **kwargs: Any) -> None:
        instances = self._clients.compute("InstancesClient")
        self._wait(
            where["project"], self._call(what, getattr(instances, method), **where, **kwargs)
        )

    def _set_type(self, where: Mapping[str, str], machine_type: str) -> None:
        self._step(
            "compute.instances.setMachineType",
            "set_machine_type_unary",
            where,
            instances_set_machine_type_request_resource={
                "machine_type": f"zones/{where['zone']}/machineTypes/{machine_type}"
            },
        )

    def _start_or_revert(self, where: Mapping[str, str], from_type: str, target: str) -> None:
        """Start the instance; if it will not start on the new type, go back and start it."""
        name = where["instance"]
        try:
            self._step("compute.instances.start", "start_unary", where)
        except CleanupError as first:
            if isinstance(first, ResourceGone):
                raise
            try:
                self._set_type(where, from_type)
                self._step("compute.instances.start", "start_unary", where)
            except CleanupError as second:
                raise CleanupError(
                    f"{name} did not start on {target} ({first}) nor back on {from_type} "
                    f"({second}); it is STOPPED: start it by hand"
                ) from second
            raise CleanupError(
                f"{name} did not start on {target} ({first}); it was changed back to "
                f"{from_type} and started"
            ) from first
