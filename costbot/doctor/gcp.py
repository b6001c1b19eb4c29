"""Doctor checks for Google Cloud: one Resource Manager testIamPermissions call per project
answers the credentials, the scanners' read permissions and the cleaners' write permissions."""

from __future__ import annotations

from collections.abc import Sequence

from costbot.doctor import Check, Verdict
from costbot.errors import ProviderError
from costbot.providers.gcp import GcpProvider

READ = (
    "compute.disks.list",
    "compute.addresses.list",
    "compute.instances.list",
    "compute.machineTypes.list",
    "monitoring.timeSeries.list",
)


def check_gcp(adapter: GcpProvider, writes: Sequence[str]) -> list[Check]:
    """Checks for every configured project."""
    checks: list[Check] = []
    wanted = [*READ, *dict.fromkeys(w for w in writes if w not in READ)]
    for unit in adapter.units()[0]:
        project = unit.account
        try:
            granted = adapter.clients.test_project_permissions(project, wanted)
        except ProviderError as exc:
            checks.append(Check("gcp", project, "credentials", "-", Verdict.ERROR, str(exc)))
            continue
        checks.append(Check("gcp", project, "credentials", "-", Verdict.OK, "project reachable"))
        for permission in wanted:
            purpose = "scan" if permission in READ else "cleanup"
            verdict = Verdict.OK if permission in granted else Verdict.MISSING
            checks.append(Check("gcp", project, purpose, permission, verdict))
    return checks
