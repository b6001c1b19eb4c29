"""Doctor checks for Azure: the caller's effective permissions on each subscription
(Microsoft.Authorization/permissions) against the scanners' reads and the cleaners' writes."""

from __future__ import annotations

from collections.abc import Sequence

from costbot.doctor import Check, Verdict
from costbot.errors import ProviderError
from costbot.providers.azure import AzureProvider
from costbot.providers.azure_clients import permits

READ = (
    "Microsoft.Compute/disks/read",
    "Microsoft.Network/publicIPAddresses/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/locations/vmSizes/read",
    "Microsoft.Insights/metrics/read",
)


def check_azure(adapter: AzureProvider, writes: Sequence[str]) -> list[Check]:
    """Checks for every configured subscription."""
    checks: list[Check] = []
    wanted = [*READ, *dict.fromkeys(w for w in writes if w not in READ)]
    for unit in adapter.units()[0]:
        sub = unit.account
        try:
            grants = adapter.clients.permissions(sub)
        except ProviderError as exc:
            checks.append(Check("azure", sub, "credentials", "-", Verdict.ERROR, str(exc)))
            continue
        checks.append(Check("azure", sub, "credentials", "-", Verdict.OK, "subscription reachable"))
        for action in wanted:
            purpose = "scan" if action in READ else "cleanup"
            verdict = Verdict.OK if permits(action, grants) else Verdict.MISSING
            checks.append(Check("azure", sub, purpose, action, verdict))
    return checks
