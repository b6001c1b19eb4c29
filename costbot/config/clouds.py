"""Config sections that say where to look in each cloud: AWS accounts/regions/organization,
GCP projects and endpoints, Azure subscriptions, endpoint and credential."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from costbot.config.base import Strict


@cache
def known_aws_regions() -> frozenset[str]:
    """Every region botocore knows, across all partitions (offline data shipped with botocore)."""
    import boto3

    session = boto3.session.Session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)


class AwsAccount(Strict):
    """An AWS account reached by assuming a role in it."""

    id: Annotated[str, Field(pattern=r"^\d{12}$", description="12-digit account id")]
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")]
    name: str = ""
    external_id: str | None = None

    @model_validator(mode="after")
    def _role_in_same_account(self) -> AwsAccount:
        role_account = self.role_arn.split(":")[4]
        if role_account != self.id:
            raise ValueError(
                f"expected role_arn to be a role in account {self.id}, but it is in {role_account}"
            )
        return self


def _known_aws_region(region: str) -> str:
    if region not in known_aws_regions():
        near = difflib.get_close_matches(region, sorted(known_aws_regions()), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise ValueError(f"expected an AWS region name like 'us-east-1', got '{region}'{hint}")
    return region


AwsRegion = Annotated[str, AfterValidator(_known_aws_region)]


class AwsOrganization(Strict):
    """Scan every active member account of an AWS Organization by assuming one role name."""

    role_name: Annotated[str, Field(pattern=r"^[\w+=,.@/-]{1,64}$")]
    exclude_accounts: list[Annotated[str, Field(pattern=r"^\d{12}$")]] = []
    include_management_account: bool = True


class AwsConfig(Strict):
    """Where to look in AWS."""

    regions: Annotated[list[AwsRegion], Field(min_length=1)] | Literal["all"] = ["us-east-1"]
    accounts: list[AwsAccount] = []
    organization: AwsOrganization | None = None


class GcpEndpoints(Strict):
    """Where the Google APIs are (default: Google's): proxies, private endpoints, emulators."""

    compute: Annotated[str | None, Field(pattern=r"^https?://")] = None
    billing: Annotated[str | None, Field(pattern=r"^https?://")] = None
    resource_manager: Annotated[str | None, Field(pattern=r"^https?://")] = None
    recommender: Annotated[str | None, Field(pattern=r"^https?://")] = None
    """Cloud Resource Manager (REST), used by `costbot doctor` to test project permissions."""
    monitoring: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9.\[\]:-]+:\d+$")] = None
    """gRPC target host:port of Cloud Monitoring."""
    monitoring_insecure: bool = False
    """Plain-text gRPC to `monitoring` (local emulators only; never for Google itself)."""


class GcpConfig(Strict):
    """Google Cloud projects to scan (Application Default Credentials) and their spend source."""

    projects: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]] = []
    billing_export_table: Annotated[
        str | None, Field(pattern=r"^[A-Za-z0-9_.:-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_$]+$")
    ] = None
    """BigQuery table of the Cloud Billing export: project.dataset.table."""
    credentials: Literal["default", "anonymous"] = "default"
    """`default` = Application Default Credentials; `anonymous` only for local emulators."""
    endpoints: GcpEndpoints = GcpEndpoints()
    recommender: bool = False
    """Also read Google's Recommender (idle disks/addresses, machine types) as a second opinion
    shown on each finding; needs the Recommender API and recommender.*Recommendations.list."""


class AzureConfig(Strict):
    """Azure subscriptions to scan (DefaultAzureCredential) and their spend source."""

    subscriptions: list[
        Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")]
    ] = []
    management_endpoint: Annotated[str, Field(pattern=r"^https://")] = (
        "https://management.azure.com"
    )
    retail_prices_endpoint: Annotated[str, Field(pattern=r"^https://")] = "https://prices.azure.com"
    credential: Literal["default", "env_token"] = "default"
    """`default` = DefaultAzureCredential; `env_token` = a bearer token in AZURE_ACCESS_TOKEN."""
    ca_bundle: Path | None = None
    """PEM bundle to trust for the endpoints above (TLS-inspecting proxies, emulators)."""


class ProvidersConfig(Strict):
    """Which clouds to scan; a provider left out is not scanned."""

    aws: AwsConfig | None = None
    gcp: GcpConfig | None = None
    azure: AzureConfig | None = None
