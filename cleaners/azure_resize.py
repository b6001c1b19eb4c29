"""Resize an oversized Azure VM to the recommended smaller size in its series. When the size is
offered on the VM's current hardware cluster, one update (Azure restarts the VM itself); else
deallocate -> update -> start. Opt-in (cleanup.allow_resize), only inside the maintenance window,
never for VMs of a scale set. The dry run is the re-read plus the permissions probe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cleaners.azure import AzureAction, ResourceGone
from costbot.actions import DryRun, Outcome, Readiness, Result, not_actionable, would
from costbot.errors import CleanupError
from costbot.providers.azure import power_state, wire
from costbot.providers.azure_clients import parse_id
from costbot.store import StoredFinding


class ResizeAzureVm(AzureAction):
    """Change a VM to the recommended smaller size, restoring its running state."""

    action = "resize_instance"
    permissions: tuple[str, ...] = (
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Compute/virtualMachines/vmSizes/read",
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/virtualMachines/deallocate/action",
        "Microsoft.Compute/virtualMachines/start/action",
    )
    needs_window = True

    def _vms(self, finding: StoredFinding) -> tuple[Any, str, str]:
        parts = parse_id(finding.resource_id)
        vms = self._clients.compute(parts["subscription"]).virtual_machines
        return vms, parts["resource_group"], parts["name"]

    def _describe(self, finding: StoredFinding) -> dict[str, Any] | None:
        vms, group, name = self._vms(finding)
        try:
            return wire(
                self._call("virtualMachines/read", vms.get, group, name, expand="instanceView")
            )
        except ResourceGone:
            return None

    def _decide(self, finding: StoredFinding, vm: dict[str, Any] | None) -> DryRun:
        """The one decision function behind both the dry run and the execution."""
        early = self._gone_or_excluded(finding, vm)
        if early is not None:
            return early
        assert vm is not None
        props = vm.get("properties", {})
        scale_set = (props.get("virtualMachineScaleSet") or {}).get("id")
        if scale_set:
            return DryRun(
                Readiness.REFUSED,
                f"{vm['name']} belongs to scale set {scale_set.rsplit('/', 1)[-1]}; "
                "change the scale set model instead",
            )
        current = props.get("hardwareProfile", {}).get("vmSize", "")
        target = finding.details.get("recommended_type")
        if current != finding.details.get("instance_type") or not target:
            return DryRun(Readiness.CHANGED, f"{vm['name']} is now {current}")
        state, _since = power_state(vm)
        if state not in ("running", "stopped"):
            return DryRun(Readiness.CHANGED, f"{vm['name']} is neither running nor deallocated")
        vms, group, name = self._vms(finding)
        offered = {
            wire(s)["name"]
            for s in self._call(
                "virtualMachines/vmSizes/read", vms.list_available_sizes, group, name
            )
        }
        in_place = target in offered
        params = {
            "from_type": current,
            "to_type": target,
            "was_running": state == "running",
            "in_place": in_place,
        }
        how = (
            "resize in place (Azure restarts it)"
            if in_place
            else "deallocate it, resize" + (", start it again" if state == "running" else "")
        )
        return would(finding, f"{how}: {current} → {target}", params)

    def dry_run(self, finding: StoredFinding) -> DryRun:
        """Re-read the VM and its offered sizes, decide, then check the effective permissions."""
        decision = self._decide(finding, self._describe(finding))
        if not decision.ok:
            return decision
        wanted: tuple[str, ...] = ("Microsoft.Compute/virtualMachines/write",)
        if not decision.params["in_place"]:
            wanted = (
                "Microsoft.Compute/virtualMachines/deallocate/action",
                *wanted,
                "Microsoft.Compute/virtualMachines/start/action",
            )
        return self._probe(finding, decision, wanted)

    def execute(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome:
        """Resize in place, or deallocate/resize/start; on failure start it as it was."""
        decision = self._decide(finding, self._describe(finding))
        stop = not_actionable(decision, f"{finding.resource_id} no longer exists")
        if stop is not None:
            return stop
        p = decision.params
        vms, group, name = self._vms(finding)
        data = {"from_type": p["from_type"], "to_type": p["to_type"], "in_place": p["in_place"]}
        if p["in_place"]:
            self._set_size(vms, group, name, p["to_type"])
            return Outcome(Result.DONE, f"resized {name} to {p['to_type']} in place", data)
        try:
            if p["was_running"]:
                self._lro("virtualMachines/deallocate/action", vms.begin_deallocate, group, name)
            self._set_size(vms, group, name, p["to_type"])
        finally:
            if p["was_running"]:
                self._start_or_revert(vms, group, name, p["from_type"], p["to_type"])
        return Outcome(Result.DONE, f"resized {name} to {p['to_type']}", data)

    def recover(self, finding: StoredFinding, params: Mapping[str, Any]) -> Outcome | None:
        """Done if the size already changed; either way restart a VM we had deallocated."""
        vm = self._describe(finding)
        if vm is None:
            return Outcome(Result.ALREADY_GONE, f"{finding.resource_id} no longer exists")
        vms, group, name = self._vms(finding)
        if params.get("was_running") and power_state(vm)[0] == "stopped":
            self._lro("virtualMachines/start/action", vms.begin_start, group, name)
        size = vm.get("properties", {}).get("hardwareProfile", {}).get("vmSize")
        if size == params.get("to_type"):
            return Outcome(Result.DONE, f"resized to {size} before the interruption")
        return None

    def _lro(self, what: str, begin: Any, *args: Any) -> Any:
        poller = self._call(what, begin, *args)
        return self._call(what, poller.result)

    def _set_size(self, vms: Any, group: str, name: str, size: str) -> None:
        body = {"properties": {"hardwareProfile": {"vmSize": size}}}
        self._lro("virtualMachines/write", vms.begin_update, group, name, body)

    def _start_or_revert(self, vms: Any, group: str, name: str, old: str, new: str) -> None:
        """Start the VM; if it will not start on the new size, go back and start it."""
        try:
            self._lro("virtualMachines/start/action", vms.begin_start, group, name)
        except CleanupError as first:
            try:
                self._set_size(vms, group, name, old)
                self._lro("virtualMachines/start/action", vms.begin_start, group, name)
            except CleanupError as second:
                raise CleanupError(
                    f"{name} did not start on {new} ({first}) nor back on {old} ({second}); "
                    "it is DEALLOCATED: start it by hand"
                ) from second
            raise CleanupError(
                f"{name} did not start on {new} ({first}); it was changed back to {old} and started"
            ) from first
