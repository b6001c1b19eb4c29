"""Read-only Azure inventory, one whole subscription per unit (region '*'): managed disks,
public IPs and VMs (with power state) from the ARM list-all calls, CPU from Azure Monitor's
`Percentage CPU`, and each location's VM sizes for right-sizing.

Every record carries its own location; every SDK error becomes a ProviderError.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from costbot.config import AzureConfig, OversizedInstanceRule
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
from costbot.pricing.azure import vm_series
from costbot.providers.azure_clients import AzureClients, azure_errors
from costbot.providers.cpu import cpu_stats, metric_window, with_cpu, worth_rating

CPU_METRIC = "Percentage CPU"
RESOURCE_ID_DIMENSION = "Microsoft.ResourceId"
METRIC_TOP_SLACK = 10
"""Extra series asked for per location (VMs created since the listing); `top` defaults to 10."""
POWER_STATES = {"running": "running", "deallocated": "stopped", "stopped": "other"}
"""A merely stopped VM still holds (and bills) its compute; only a deallocated one is 'stopped'."""


def parse_time(value: Any) -> datetime | None:
    """An ARM timestamp (ISO string or datetime) as an aware UTC datetime, or None."""
    if not value:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def wire(model: Any) -> dict[str, Any]:
    """An azure-mgmt model as its wire JSON (camelCase keys, as the API documents it)."""
    data: dict[str, Any] = model.as_dict() if hasattr(model, "as_dict") else dict(model)
    return data


def power_state(vm: dict[str, Any]) -> tuple[str, datetime | None]:
    """(provider-neutral state, since when) from a VM's instanceView statuses."""
    statuses = vm.get("properties", {}).get("instanceView", {}).get("statuses", [])
    codes = {s.get("code", "").split("/")[0]: s for s in statuses}
    power = codes.get("PowerState", {}).get("code", "PowerState/unknown").split("/")[-1]
    state = POWER_STATES.get(power, "other")
    since = (
        parse_time(codes.get("ProvisioningState", {}).get("time")) if state == "stopped" else None
    )
    return state, since


def ip_holders(props: dict[str, Any]) -> list[str]:
    """What uses a public IP: its NIC ipConfiguration, NAT gateway or public IP prefix."""
    keys = ("ipConfiguration", "natGateway", "publicIPPrefix")
    return [props[key]["id"] for key in keys if props.get(key)]


class AzureProvider:
    """Lists Azure subscriptions as units and collects each one's inventory in one pass."""

    provider = Provider.AZURE

    def __init__(
        self,
        config: AzureConfig,
        rule: OversizedInstanceRule,
        *,
        clients: AzureClients | None = None,
    ) -> None:
        self._config = config
        self._rule = rule
        self.clients = clients or AzureClients(config)
        self._sizes_cache: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def units(self) -> tuple[list[Unit], list[UnitFailure]]:
        """One unit per configured subscription (ARM lists every location at once)."""
        return [Unit(Provider.AZURE, sub, "*") for sub in self._config.subscriptions], []

    def collect(self, unit: Unit, now: datetime) -> Inventory:
        """Every managed disk, public IP and VM of a subscription, CPU for the candidates."""
        sub = unit.account
        instances = list(self._vms(sub))
        by_lower_id = {i.resource_id.lower(): i.resource_id for i in instances}
        volumes = tuple(self._disks(sub, by_lower_id))
        addresses = tuple(self._public_ips(sub))
        to_rate = worth_rating(instances, now, self._rule.lookback_days)
        sizes: dict[str, tuple[InstanceSize, ...]] = {}
        if to_rate:
            for location in sorted({i.zone for i in to_rate}):
                sizes |= self._sizes(sub, location)
            population = Counter(i.zone for i in instances)  # every VM may answer, not just ours
            stats = self._cpu(sub, to_rate, population, now)
            instances = [with_cpu(i, stats.get(i.resource_id)) for i in instances]
        return Inventory(unit, volumes, addresses, tuple(instances), sizes)

    # -- listings ------------------------------------------------------------------------------

    def _list(self, sub: str, operation: str, pages: Any) -> Iterator[dict[str, Any]]:
        with azure_errors(sub, operation):
            for item in pages():
                yield wire(item)

    def _disks(self, sub: str, vm_ids: dict[str, str]) -> Iterator[Volume]:
        compute = self.clients.compute(sub)
        for disk in self._list(sub, "Microsoft.Compute/disks/read", compute.disks.list):
            props = disk.get("properties", {})
            state = props.get("diskState", "")
            managed_by = disk.get("managedBy")
            attached: tuple[str, ...] = ()
            if managed_by:
                attached = (vm_ids.get(managed_by.lower(), managed_by),)
            elif state != "Unattached":
                attached = (f"({state or 'unknown state'})",)
            tags = disk.get("tags") or {}
            yield Volume(
                unit=Unit(Provider.AZURE, sub, disk["location"]),
                resource_id=disk["id"],
                size_gb=int(props.get("diskSizeGB", 0)),
                volume_type=disk.get("sku", {}).get("name", ""),
                attached_to=attached,
                created_at=parse_time(props.get("timeCreated")),
                zone=disk["location"],
                name=disk["name"],
                iops=props.get("diskIOPSReadWrite"),
                throughput_mbps=props.get("diskMBpsReadWrite"),
                tags=tags,
                detached_at=None if attached else parse_time(props.get("LastOwnershipUpdateTime")),
            )

    def _public_ips(self, sub: str) -> Iterator[Address]:
        network = self.clients.network(sub)
        listing = network.public_ip_addresses.list_all
        for ip in self._list(sub, "Microsoft.Network/publicIPAddresses/read", listing):
            props = ip.get("properties", {})
            if not props.get("ipAddress"):
                continue  # a dynamic IP with no address allocated costs nothing
            holders = ip_holders(props)
            yield Address(
                unit=Unit(Provider.AZURE, sub, ip["location"]),
                resource_id=ip["id"],
                ip=props["ipAddress"],
                associated=bool(holders),
                name=ip["name"],
                tags=ip.get("tags") or {},
                details={
                    "sku": ip.get("sku", {}).get("name", "Basic"),
                    "allocation": props.get("publicIPAllocationMethod", ""),
                    "associated_with": holders,
                },
            )

    def _vms(self, sub: str) -> Iterator[Instance]:
        compute = self.clients.compute(sub)

        def pages() -> Iterable[Any]:
            listing: Iterable[Any] = compute.virtual_machines.list_all(status_only="true")
            return listing

        for vm in self._list(sub, "Microsoft.Compute/virtualMachines/read", pages):
            props = vm.get("properties", {})
            size = props.get("hardwareProfile", {}).get("vmSize", "")
            state, since = power_state(vm)
            series = vm_series(size)
            location = vm["location"]
            yield Instance(
                unit=Unit(Provider.AZURE, sub, location),
                resource_id=vm["id"],
                instance_type=size,
                state=state,
                name=vm["name"],
                launched_at=parse_time(props.get("timeCreated")),
                stopped_since=since,
                tags=vm.get("tags") or {},
                managed_group=(props.get("virtualMachineScaleSet") or {}).get("id"),
                family=f"{location}/{series}" if series else "",
                zone=location,
                not_rated="" if series else f"{size}: constrained or unknown size series",
            )

    def _sizes(self, sub: str, location: str) -> dict[str, tuple[InstanceSize, ...]]:
        with self._lock:
            known = self._sizes_cache.get((sub, location))
        if known is None:
            compute = self.clients.compute(sub)
            known = list(
                self._list(
                    sub,
                    "Microsoft.Compute/locations/vmSizes/read",
                    lambda: compute.virtual_machine_sizes.list(location),
                )
            )
            with self._lock:
                self._sizes_cache[(sub, location)] = known
        found: dict[str, list[InstanceSize]] = defaultdict(list)
        for size in known:
            series = vm_series(size["name"])
            if series:
                found[f"{location}/{series}"].append(
                    InstanceSize(
                        size["name"], int(size["numberOfCores"]), int(size["memoryInMB"]) / 1024
                    )
                )
        return {f: tuple(sorted(s, key=lambda x: (x.vcpus, x.name))) for f, s in found.items()}

    # -- Azure Monitor -------------------------------------------------------------------------

    def _cpu(
        self, sub: str, vms: list[Instance], population: Counter[str], now: datetime
    ) -> dict[str, CpuStats]:
        """One subscription-scope Monitor call per location: a series per VM, split by the
        Microsoft.ResourceId dimension (never one call per VM)."""
        whole_window = self._rule.peak_percentile >= 100
        start, end = metric_window(now, self._rule.lookback_days, daily=whole_window)
        interval = "P1D" if whole_window else "PT1H"
        expected = self._rule.lookback_days * (1 if whole_window else 24)
        timespan = f"{start.strftime('%Y-%m-%dT%H:%M:%SZ')}/{end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        monitor = self.clients.monitor(sub)
        wanted = {vm.resource_id.lower(): vm.resource_id for vm in vms}
        stats: dict[str, CpuStats] = {}
        for location in sorted({vm.zone for vm in vms}):
            with azure_errors(sub, "Microsoft.Insights/metrics/read", location):
                answer = monitor.metrics.list_at_subscription_scope(
                    location,
                    timespan=timespan,
                    interval=interval,
                    metricnames=CPU_METRIC,
                    aggregation="Average,Maximum",
                    metricnamespace="Microsoft.Compute/virtualMachines",
                    filter=f"{RESOURCE_ID_DIMENSION} eq '*'",
                    top=population[location] + METRIC_TOP_SLACK,
                )
            for metric in answer.value or []:
                for series in metric.timeseries or []:
                    vm_id = wanted.get(_resource_id_of(series).lower())
                    if vm_id is None:
                        continue
                    points = [p for p in series.data or [] if p.average is not None]
                    found = cpu_stats(
                        [float(p.average) for p in points],
                        [float(p.maximum) for p in points if p.maximum is not None],
                        self._rule.peak_percentile,
                        expected,
                    )
                    if found is not None:
                        stats[vm_id] = found
        return stats


def _resource_id_of(series: Any) -> str:
    """The Microsoft.ResourceId dimension value of a subscription-scope time series."""
    for meta in series.metadatavalues or []:
        name = getattr(meta.name, "value", "") or ""
        if name.lower() == RESOURCE_ID_DIMENSION.lower():
            return str(meta.value or "")
    return ""
