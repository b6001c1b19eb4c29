"""Domain vocabulary: providers, kinds of waste, finding statuses and their allowed moves,
the provider-neutral inventory records the scanners read, and the Finding they produce.

Enum strings are stable: they live in the database, in JSON output and in Slack payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

HOURS_PER_MONTH = 730.0


class Provider(StrEnum):
    """A cloud costbot scans."""

    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"


class Kind(StrEnum):
    """A kind of waste; one scanner each."""

    IDLE_VOLUME = "idle_volume"
    UNATTACHED_IP = "unattached_ip"
    OVERSIZED_INSTANCE = "oversized_instance"


class Status(StrEnum):
    """Where a finding is in its lifecycle (see shared/docs/domain.md §7)."""

    OPEN = "open"
    NOTIFIED = "notified"
    APPROVED = "approved"
    CLEANED = "cleaned"
    REJECTED = "rejected"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    FAILED = "failed"


S = Status
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.OPEN: frozenset({S.NOTIFIED, S.APPROVED, S.REJECTED, S.SNOOZED, S.RESOLVED}),
    S.NOTIFIED: frozenset({S.OPEN, S.APPROVED, S.REJECTED, S.SNOOZED, S.RESOLVED}),
    S.APPROVED: frozenset({S.OPEN, S.CLEANED, S.FAILED, S.RESOLVED, S.REJECTED}),
    S.SNOOZED: frozenset({S.OPEN, S.RESOLVED}),
    S.FAILED: frozenset({S.OPEN, S.APPROVED, S.REJECTED, S.SNOOZED, S.RESOLVED}),
    S.REJECTED: frozenset({S.RESOLVED}),
    S.RESOLVED: frozenset({S.OPEN}),
    S.CLEANED: frozenset(),
}
"""Allowed status moves; anything else is a TransitionError."""

ACTIVE_STATUSES = frozenset({S.OPEN, S.NOTIFIED, S.APPROVED, S.SNOOZED, S.FAILED})
"""Statuses of findings that still describe live waste (a rescan that misses them resolves them)."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One independently scanned slice of a cloud: an account/project/subscription in a region."""

    provider: Provider
    account: str
    region: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.account}:{self.region}"


@dataclass(frozen=True, slots=True)
class UnitFailure:
    """An account/project/subscription that could not be listed into units at all."""

    account: str
    regions: tuple[str, ...]
    error: str


@dataclass(frozen=True, slots=True)
class Volume:
    """A block-storage volume/disk as the provider reports it."""

    unit: Unit
    resource_id: str
    size_gb: int
    volume_type: str
    attached_to: tuple[str, ...]
    created_at: datetime | None
    zone: str = ""
    name: str = ""
    iops: int | None = None
    throughput_mbps: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    detached_at: datetime | None = None
    """When the provider itself says the volume was last detached (GCP/Azure); None on AWS."""
    second_opinion: Mapping[str, Any] = field(default_factory=dict)
    """The provider's own recommendation about this resource, when asked (GCP Recommender)."""


@dataclass(frozen=True, slots=True)
class Address:
    """A reserved public IP address."""

    unit: Unit
    resource_id: str
    ip: str
    associated: bool
    name: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CpuStats:
    """CPU utilisation over the look-back window, in percent (0-100)."""

    average: float
    peak: float
    points: int
    expected_points: int


@dataclass(frozen=True, slots=True)
class Instance:
    """A virtual machine, with its CPU statistics when they were fetched."""

    unit: Unit
    resource_id: str
    instance_type: str
    state: str
    """Provider-neutral: running, stopped, terminated or other."""
    name: str = ""
    launched_at: datetime | None = None
    stopped_since: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    cpu: CpuStats | None = None
    managed_group: str | None = None
    """Auto Scaling group / managed instance group / scale set that owns it, if any."""
    family: str = ""
    """Key into Inventory.sizes; empty means the EC2 convention (the type before the dot)."""
    zone: str = ""
    not_rated: str = ""
    """Why the provider cannot right-size this instance at all (e.g. a custom machine type)."""
    second_opinion: Mapping[str, Any] = field(default_factory=dict)
    """The provider's own recommendation about this instance, when asked (GCP Recommender)."""


@dataclass(frozen=True, slots=True)
class InstanceSize:
    """One size of an instance family, with its vCPU count."""

    name: str
    vcpus: int
    memory_gb: float = 0.0


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything collected from one unit in one scan."""

    unit: Unit
    volumes: tuple[Volume, ...] = ()
    addresses: tuple[Address, ...] = ()
    instances: tuple[Instance, ...] = ()
    sizes: Mapping[str, tuple[InstanceSize, ...]] = field(default_factory=dict)
    """Instance family -> its sizes (ascending vCPUs), for right-sizing recommendations."""

    @property
    def resource_count(self) -> int:
        """How many resources were seen in this unit."""
        return len(self.volumes) + len(self.addresses) + len(self.instances)


def short_id(resource_id: str) -> str:
    """The readable tail of a resource id: GCP paths and Azure ARM ids end with the name."""
    return resource_id.rstrip("/").rsplit("/", maxsplit=1)[-1]


def finding_id(unit: Unit, kind: Kind, resource_id: str) -> str:
    """The stable id of a finding: provider:account:region:kind:resource_id."""
    return f"{unit.provider}:{unit.account}:{unit.region}:{kind}:{resource_id}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of waste: what it is, why, what it costs and what acting on it saves."""

    unit: Unit
    kind: Kind
    resource_id: str
    reason: str
    monthly_cost_usd: float
    monthly_savings_usd: float
    price_source: str
    price_date: str
    recommendation: str
    name: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable id, see finding_id()."""
        return finding_id(self.unit, self.kind, self.resource_id)


@dataclass(frozen=True, slots=True)
class CostRow:
    """Daily spend: day, provider, account/project/subscription, service, amount, currency."""

    day: date
    provider: str
    account: str
    service: str
    amount: float
    currency: str
