"""Read-only Google Cloud inventory, one whole project per unit (region '*'): persistent disks,
static external addresses (regional and global) and instances from Compute Engine's aggregated
lists, CPU from Cloud Monitoring, and each zone's machine types for right-sizing.

Every record carries its own region; every SDK error becomes a ProviderError for the project.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from costbot.config import GcpConfig, OversizedInstanceRule
from costbot.model import (
    Address,
    CpuStats,
    Instance,
    InstanceSize,
    Inventory,
    Provider,
    Unit,
    UnitFailure,
    Volume,
)
from costbot.providers.cpu import cpu_stats, metric_window, with_cpu, worth_rating
from costbot.providers.gcp_clients import GcpClients, gcp_errors
from costbot.scanners import is_burstable

CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
PAGE_SIZE = 500
_UNRATED = "{}: custom, GPU or local-SSD shape, no predefined smaller size"
STATES = {
    "RUNNING": "running",
    "TERMINATED": "stopped",
    "STOPPED": "stopped",
    "SUSPENDED": "stopped",
}


def relative_name(url: str) -> str:
    """A Compute self link without its host: 'https://.../projects/p/zones/z' -> 'projects/...'."""
    index = url.find("projects/")
    return url[index:] if index >= 0 else url


def last_segment(url: str) -> str:
    """The last path segment of a Compute URL (a zone, machine type or disk type name)."""
    return url.rstrip("/").rsplit("/", maxsplit=1)[-1]


def zone_region(zone: str) -> str:
    """us-central1-a -> us-central1."""
    return zone.rsplit("-", maxsplit=1)[0]


def machine_family(machine_type: str) -> str | None:
    """n2-standard-8 -> n2-standard; None for custom, shared-core, GPU or local-SSD shapes."""
    head, _, count = machine_type.rpartition("-")
    if not head or not count.isdigit() or "custom" in machine_type:
        return None
    return head


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 timestamp from the Compute API, or None when absent."""
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


class GcpProvider:
    """Lists GCP projects as units and collects each project's inventory in one pass."""

    provider = Provider.GCP

    def __init__(
        self,
        config: GcpConfig,
        rule: OversizedInstanceRule,
        *,
        clients: GcpClients | None = None,
        retry_timeout_s: float = 120,
    ) -> None:
        self._config = config
        self._rule = rule
        self.clients = clients or GcpClients(config)
        self._retry_timeout = retry_timeout_s
        self._machine_types: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()

    def units(self) -> tuple[list[Unit], list[UnitFailure]]:
        """One unit per configured project (Compute lists every region at once)."""
        return [Unit(Provider.GCP, project, "*") for project in self._config.projects], []

    def collect(self, unit: Unit, now: datetime) -> Inventory:
        """Every disk, external address and instance of a project, with CPU for the candidates."""
        project = unit.account
        volumes = tuple(self._disks(project))
        addresses = tuple(self._addresses(project))
        listed = list(self._instances(project))
        instances = [instance for _id, instance in listed]
        to_rate = worth_rating(instances, now, self._rule.lookback_days)
        sizes: dict[str, tuple[InstanceSize, ...]] = {}
        if to_rate:
            for zone in sorted({i.zone for i in to_rate}):
                sizes |= self._sizes(project, zone)
            stats = self._cpu(project, now)
            instances = [with_cpu(i, stats.get(numeric_id)) for numeric_id, i in listed]
        if self._config.recommender:
            volumes, addresses, instances = self._with_opinions(
                project, volumes, addresses, instances, to_rate
            )
        return Inventory(unit, volumes, addresses, tuple(instances), sizes)

    def _with_opinions(
        self,
        project: str,
        volumes: tuple[Volume, ...],
        addresses: tuple[Address, ...],
        instances: list[Instance],
        to_rate: list[Instance],
    ) -> tuple[tuple[Volume, ...], tuple[Address, ...], list[Instance]]:
        """The records with Google Recommender's opinion attached where it has one."""
        from costbot.providers import gcp_recommender as rec

        wanted = {
            rec.DISKS: {v.zone for v in volumes if not v.attached_to},
            rec.ADDRESSES: {a.unit.region for a in addresses if not a.associated},
            rec.MACHINE_TYPES: {i.zone for i in to_rate},
        }
        found = rec.second_opinions(self.clients, project, wanted, self._retry())
        return (
            tuple(replace(v, second_opinion=found.get(v.resource_id, {})) for v in volumes),
            tuple(
                replace(a, details={**a.details, "second_opinion": found[a.resource_id]})
                if a.resource_id in found
                else a
                for a in addresses
            ),
            [replace(i, second_opinion=found.get(i.resource_id, {})) for i in instances],
        )

    # -- Compute listings --------------------------------------------------------------------

    def _aggregated(self, client_name: str, project: str, field: str) -> Iterator[tuple[str, Any]]:
        operation = f"compute.{field}.aggregatedList"
        with gcp_errors(project, operation):
            client = self.clients.compute(client_name)
            pager = client.aggregated_list(
                request={"project": project, "max_results": PAGE_SIZE}, retry=self._retry()
            )
            for scope, scoped in pager:
                for item in getattr(scoped, field):
                    yield scope, item

    def _disks(self, project: str) -> Iterator[Volume]:
        for _scope, disk in self._aggregated("DisksClient", project, "disks"):
            zone = last_segment(disk.zone)
            if not zone:  # regional disks carry `region`, not `zone`
                zone = last_segment(disk.region)
            region = zone_region(zone) if disk.zone else zone
            created = parse_time(disk.creation_timestamp)
            detached = parse_time(disk.last_detach_timestamp)
            if detached is None and not disk.last_attach_timestamp:
                detached = created  # never attached: the clock starts at creation
            yield Volume(
                unit=Unit(Provider.GCP, project, region),
                resource_id=relative_name(disk.self_link)
                or f"projects/{project}/zones/{zone}/disks/{disk.name}",
                size_gb=int(disk.size_gb),
                volume_type=last_segment(disk.type_),
                attached_to=tuple(relative_name(u) for u in disk.users),
                created_at=created,
                zone=zone,
                name=disk.name,
                iops=int(disk.provisioned_iops) or None,
                throughput_mbps=int(disk.provisioned_throughput) or None,
                tags=dict(disk.labels),
                detached_at=detached,
            )

    def _addresses(self, project: str) -> Iterator[Address]:
        for scope, address in self._aggregated("AddressesClient", project, "addresses"):
            if address.address_type != "EXTERNAL":
                continue  # INTERNAL reservations are not public IPs
            region = "global" if scope == "global" else last_segment(scope)
            yield Address(
                unit=Unit(Provider.GCP, project, region),
                resource_id=relative_name(address.self_link)
                or _address_path(project, region, address.name),
                ip=address.address,
                associated=address.status != "RESERVED",
                name=address.name,
                tags=dict(address.labels),
                details={
                    "address_type": address.address_type,
                    "network_tier": address.network_tier,
                    "scope": region,
                    "users": [relative_name(u) for u in address.users],
                },
            )

    def _instances(self, project: str) -> Iterator[tuple[str, Instance]]:
        """(numeric id, instance): Cloud Monitoring labels series with the numeric id."""
        for _scope, raw in self._aggregated("InstancesClient", project, "instances"):
            zone = last_segment(raw.zone)
            machine_type = last_segment(raw.machine_type)
            family = machine_family(machine_type)
            state = STATES.get(raw.status, "other")
            created_by = next((m.value for m in raw.metadata.items if m.key == "created-by"), None)
            yield (
                str(raw.id),
                Instance(
                    unit=Unit(Provider.GCP, project, zone_region(zone)),
                    resource_id=relative_name(raw.self_link)
                    or f"projects/{project}/zones/{zone}/instances/{raw.name}",
                    instance_type=machine_type,
                    state=state,
                    name=raw.name,
                    launched_at=parse_time(raw.last_start_timestamp)
                    or parse_time(raw.creation_timestamp),
                    stopped_since=parse_time(raw.last_stop_timestamp)
                    if state == "stopped"
                    else None,
                    tags=dict(raw.labels),
                    managed_group=created_by
                    if created_by and "instanceGroupManagers" in created_by
                    else None,
                    family=f"{zone}/{family}" if family else "",
                    zone=zone,
                    not_rated=""
                    if family or is_burstable(machine_type)
                    else _UNRATED.format(machine_type),
                ),
            )

    def _sizes(self, project: str, zone: str) -> dict[str, tuple[InstanceSize, ...]]:
        with self._lock:
            types = self._machine_types.get((project, zone))
        if types is None:
            with gcp_errors(project, "compute.machineTypes.list", zone_region(zone)):
                pager = self.clients.compute("MachineTypesClient").list(
                    request={"project": project, "zone": zone, "max_results": PAGE_SIZE},
                    retry=self._retry(),
                )
                types = list(pager)
            with self._lock:
                self._machine_types[(project, zone)] = types
        found: dict[str, list[InstanceSize]] = defaultdict(list)
        for mt in types:
            family = machine_family(mt.name)
            if family and not mt.is_shared_cpu:
                found[f"{zone}/{family}"].append(
                    InstanceSize(mt.name, int(mt.guest_cpus), int(mt.memory_mb) / 1024)
                )
        return {f: tuple(sorted(s, key=lambda x: (x.vcpus, x.name))) for f, s in found.items()}

    # -- Cloud Monitoring --------------------------------------------------------------------

    def _cpu(self, project: str, now: datetime) -> dict[str, CpuStats]:
        from google.cloud import monitoring_v3

        # Hourly points when a percentile of the hourly maxima is asked for; daily ones when the
        # peak is the plain maximum (same mean and max, 24x fewer points, coverage still seen).
        period = 86400 if self._rule.peak_percentile >= 100 else 3600
        start, end = metric_window(now, self._rule.lookback_days, daily=period == 86400)
        expected = self._rule.lookback_days * 86400 // period
        aligner = monitoring_v3.Aggregation.Aligner
        series: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for name, how in (("mean", aligner.ALIGN_MEAN), ("max", aligner.ALIGN_MAX)):
            request = {
                "name": f"projects/{project}",
                "filter": f'metric.type = "{CPU_METRIC}" AND resource.type = "gce_instance"',
                "interval": {
                    "start_time": {"seconds": int(start.timestamp())},
                    "end_time": {"seconds": int(end.timestamp())},
                },
                "aggregation": {"alignment_period": {"seconds": period}, "per_series_aligner": how},
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
                "page_size": 1000,
            }
            with gcp_errors(project, "monitoring.timeSeries.list"):
                for ts in self.clients.monitoring().list_time_series(
                    request=request, retry=self._retry()
                ):
                    values = series[ts.resource.labels["instance_id"]][name]
                    values.extend(p.value.double_value * 100 for p in ts.points)
        stats: dict[str, CpuStats] = {}
        for instance_id, by_aligner in series.items():
            found = cpu_stats(
                by_aligner["mean"], by_aligner["max"], self._rule.peak_percentile, expected
            )
            if found is not None:
                stats[instance_id] = found
        return stats

    def _retry(self) -> Any:
        from google.api_core.retry import Retry, if_transient_error

        return Retry(predicate=if_transient_error, timeout=self._retry_timeout)


def _address_path(project: str, region: str, name: str) -> str:
    if region == "global":
        return f"projects/{project}/global/addresses/{name}"
    return f"projects/{project}/regions/{region}/addresses/{name}"
