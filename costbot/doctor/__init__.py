"""`costbot doctor`: for each configured provider and account, are the credentials good, may the
scanners read what they need, and may the enabled cleaners do what they would do? Each check is
made with the provider's own means (EC2 DryRun, testIamPermissions, Azure effective permissions)
and never changes anything."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from costbot.model import Provider


class Verdict(StrEnum):
    """The result of one check."""

    OK = "ok"
    MISSING = "missing"
    ERROR = "error"
    UNCHECKED = "unchecked"


@dataclass(frozen=True, slots=True)
class Check:
    """One permission (or the credentials) of one account, for scanning or for cleanup."""

    provider: str
    account: str
    purpose: str
    """credentials, scan or cleanup."""
    permission: str
    verdict: Verdict
    detail: str = ""


WritePermissions = Mapping[Provider, Sequence[str]]
"""The permissions the enabled cleaners declare, per provider."""


def run_doctor(adapters: Sequence[object], writes: WritePermissions) -> list[Check]:
    """Every check for every adapter's accounts (failures become checks, never exceptions)."""
    from costbot.providers.aws import AwsProvider
    from costbot.providers.azure import AzureProvider
    from costbot.providers.gcp import GcpProvider

    checks: list[Check] = []
    for adapter in adapters:
        if isinstance(adapter, AwsProvider):
            from costbot.doctor.aws import check_aws

            checks += check_aws(adapter, writes.get(Provider.AWS, ()))
        elif isinstance(adapter, GcpProvider):
            from costbot.doctor.gcp import check_gcp

            checks += check_gcp(adapter, writes.get(Provider.GCP, ()))
        elif isinstance(adapter, AzureProvider):
            from costbot.doctor.azure import check_azure

            checks += check_azure(adapter, writes.get(Provider.AZURE, ()))
    return checks


def problems(checks: Sequence[Check]) -> list[Check]:
    """The checks that failed (missing permission or error)."""
    return [c for c in checks if c.verdict in (Verdict.MISSING, Verdict.ERROR)]
