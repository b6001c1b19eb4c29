"""The waste rules, as pure functions of an inventory: (inventory, context) -> verdicts.

No cloud calls and no store writes here; clocks, thresholds and prices come in the ScanContext.
The exclusion check lives here too, because the cleaners apply it again right before acting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from costbot.config import Exclusions, Rules
from costbot.errors import PricingError
from costbot.model import Address, Finding, Instance, InstanceSize, Inventory, Kind, Volume
from costbot.pricing import PriceBook

KUBERNETES_PV_TAG = "kubernetes.io/created-for/pvc/name"
KUBERNETES_TAGS = (KUBERNETES_PV_TAG, "kubernetes.io-created-for-pvc-name")
"""Tags Kubernetes puts on the volumes it provisions (EBS CSI; AKS's '/'-free spelling)."""
GKE_LABEL_PREFIX = "goog-k8s-"
SITE_RECOVERY_DISK = re.compile(r"(-ASRReplica$|^ms-asr-|^asrseeddisk-)", re.IGNORECASE)
"""Azure Site Recovery replica and seed disks: unattached by design, deleting breaks DR."""
BURSTABLE = re.compile(r"^(t\d|e2-(micro|small|medium)$|f1-micro$|g1-small$|Standard_B\d)")
"""Burstable/shared-core types, judged on CPU credits, not utilisation: EC2 t2/t3/t3a/t4g,
GCP e2 shared-core, f1-micro and g1-small, Azure B-series."""
SNAPSHOT_GB_MONTH_USD = 0.05


@dataclass(frozen=True, slots=True)
class Skipped:
    """A resource a rule looked at and deliberately did not judge (e.g. missing CPU data)."""

    kind: Kind
    resource_id: str
    reason: str


Verdict = Finding | Skipped


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Everything a rule needs besides the inventory."""

    rules: Rules
    exclusions: Exclusions
    now: datetime
    prices: PriceBook
    unattached_since: Mapping[tuple[Kind, str], datetime]
    """Our own clock: since when (kind, resource id) has been seen unattached."""


def exclusion_reason(
    resource_id: str, tags: Mapping[str, str], exclusions: Exclusions, today: date
) -> str | None:
    """Why a resource must be left alone (opt-out tag, keep-until date, allow-list), or None.

    GCP label keys cannot hold ':', so `costbot-skip` counts as `costbot:skip` (and likewise
    for keep-until) on every cloud.
    """
    skip = _tag(tags, exclusions.skip_tag)
    if skip is not None:
        return f"tagged {skip[0]}"
    keep = _tag(tags, exclusions.keep_until_tag)
    if keep is not None:
        key, value = keep
        try:
            until = date.fromisoformat(value.strip())
        except ValueError:
            return f"tag {key}={value!r} is not a date; kept to be safe"
        if today <= until:
            return f"tagged {key}={until.isoformat()}"
    for entry in exclusions.resources:
        if entry.id == resource_id and (entry.until is None or today <= entry.until):
            return f"excluded in config: {entry.reason}"
    return None


def _tag(tags: Mapping[str, str], key: str) -> tuple[str, str] | None:
    for spelling in dict.fromkeys((key, key.replace(":", "-"))):
        if spelling in tags:
            return spelling, tags[spelling]
    return None


def kubernetes_reason(tags: Mapping[str, str]) -> str | None:
    """Why a volume belongs to Kubernetes (a PV or a GKE-managed disk), or None."""
    if any(tag in tags for tag in KUBERNETES_TAGS):
        return "Kubernetes persistent volume"
    if any(key.startswith(GKE_LABEL_PREFIX) for key in tags):
        return "disk managed by GKE (goog-k8s-* labels)"
    return None


def is_burstable(instance_type: str) -> bool:
    """Whether an instance type belongs to a burstable (CPU-credit) family."""
    return bool(BURSTABLE.match(instance_type))


def _days(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds() / 86400


def idle_volumes(inventory: Inventory, ctx: ScanContext) -> Iterator[Verdict]:
    """Volumes unattached long enough, or attached only to instances stopped long enough."""
    rule = ctx.rules.idle_volume
    instances = {i.resource_id: i for i in inventory.instances}
    for volume in inventory.volumes:
        why_not = exclusion_reason(volume.resource_id, volume.tags, ctx.exclusions, ctx.now.date())
        if why_not is None and SITE_RECOVERY_DISK.search(volume.name):
            why_not = "Azure Site Recovery replica/seed disk"
        if why_not is None and not rule.include_kubernetes:
            why_not = kubernetes_reason(volume.tags)
        if why_not:
            yield Skipped(Kind.IDLE_VOLUME, volume.resource_id, why_not)
            continue
        if not volume.attached_to:
            since = volume.detached_at or ctx.unattached_since.get(
                (Kind.IDLE_VOLUME, volume.resource_id), ctx.now
            )
            days = _days(since, ctx.now)
            if days >= rule.min_unattached_days:
                yield _volume_finding(
                    volume,
                    ctx,
                    f"unattached for {days:.0f} days",
                    {"idle_reason": "unattached", "idle_days": round(days, 2)},
                )
            continue
        holders = [instances.get(iid) for iid in volume.attached_to]
        stopped = [i for i in holders if i and i.state == "stopped" and i.stopped_since]
        if len(stopped) != len(volume.attached_to):
            continue
        days = min(_days(i.stopped_since, ctx.now) for i in stopped if i.stopped_since)
        if days >= rule.min_stopped_days:
            ids = ", ".join(volume.attached_to)
            yield _volume_finding(
                volume,
                ctx,
                f"attached only to {ids}, stopped for {days:.0f} days",
                {
                    "idle_reason": "attached_to_stopped_instance",
                    "idle_days": round(days, 2),
                    "stopped_instances": list(volume.attached_to),
                },
            )


def _volume_finding(
    volume: Volume, ctx: ScanContext, reason: str, extra: Mapping[str, object]
) -> Finding:
    try:
        quote = ctx.prices.volume(
            volume.unit.region,
            volume.volume_type,
            volume.size_gb,
            volume.iops,
            volume.throughput_mbps,
        )
        cost, source, when = quote.monthly_usd, quote.source, quote.date
    except PricingError as exc:
        cost, source, when = 0.0, f"unpriced: {exc}", ctx.now.date().isoformat()
    size = f"{volume.size_gb} GiB {volume.volume_type}"
    return Finding(
        unit=volume.unit,
        kind=Kind.IDLE_VOLUME,
        resource_id=volume.resource_id,
        name=volume.name,
        reason=f"{size}, {reason}",
        monthly_cost_usd=cost,
        monthly_savings_usd=cost,
        price_source=source,
        price_date=when,
        recommendation="snapshot, then delete",
        details={
            "size_gb": volume.size_gb,
            "volume_type": volume.volume_type,
            "zone": volume.zone,
            "iops": volume.iops,
            "throughput_mbps": volume.throughput_mbps,
            "attached_to": list(volume.attached_to),
            "tags": dict(volume.tags),
            "created_at": volume.created_at.isoformat() if volume.created_at else None,
            "snapshot_monthly_cost_max_usd": round(volume.size_gb * SNAPSHOT_GB_MONTH_USD, 2),
            **({"second_opinion": dict(volume.second_opinion)} if volume.second_opinion else {}),
            **extra,
        },
    )


def unattached_ips(inventory: Inventory, ctx: ScanContext) -> Iterator[Verdict]:
    """Public IPs reserved but not associated with anything, for long enough."""
    rule = ctx.rules.unattached_ip
    for address in inventory.addresses:
        if address.associated:
            continue
        why_not = exclusion_reason(
            address.resource_id, address.tags, ctx.exclusions, ctx.now.date()
        )
        if why_not:
            yield Skipped(Kind.UNATTACHED_IP, address.resource_id, why_not)
            continue
        since = ctx.unattached_since.get((Kind.UNATTACHED_IP, address.resource_id), ctx.now)
        days = _days(since, ctx.now)
        if days >= rule.min_unattached_days:
            yield _address_finding(address, ctx, days)


def _address_finding(address: Address, ctx: ScanContext, days: float) -> Finding:
    quote = ctx.prices.public_ip(address.unit.region, str(address.details.get("sku", "")))
    return Finding(
        unit=address.unit,
        kind=Kind.UNATTACHED_IP,
        resource_id=address.resource_id,
        name=address.name,
        reason=f"public IP {address.ip} unassociated for {days:.0f} days",
        monthly_cost_usd=quote.monthly_usd,
        monthly_savings_usd=quote.monthly_usd,
        price_source=quote.source,
        price_date=quote.date,
        recommendation="release the address",
        details={
            "ip": address.ip,
            "idle_days": round(days, 2),
            "tags": dict(address.tags),
            **address.details,
        },
    )


def oversized_instances(inventory: Inventory, ctx: ScanContext) -> Iterator[Verdict]:
    """Running instances whose average and peak CPU stayed low, with a smaller size that fits."""
    rule = ctx.rules.oversized_instance
    for instance in inventory.instances:
        if instance.state != "running":
            continue
        skip = _oversize_skip_reason(instance, ctx)
        if skip:
            yield Skipped(Kind.OVERSIZED_INSTANCE, instance.resource_id, skip)
            continue
        cpu = instance.cpu
        assert cpu is not None
        if cpu.average >= rule.max_avg_cpu_percent or cpu.peak >= rule.max_peak_cpu_percent:
            continue
        family = instance.family or instance.instance_type.partition(".")[0]
        sizes = inventory.sizes.get(family, ())
        current = next((s for s in sizes if s.name == instance.instance_type), None)
        if current is None:
            yield Skipped(
                Kind.OVERSIZED_INSTANCE,
                instance.resource_id,
                f"size catalogue has no {instance.instance_type}",
            )
            continue
        target = smallest_fitting_size(
            current, sizes, cpu.average, cpu.peak, rule.target_peak_percent, rule.target_avg_percent
        )
        if target is None:
            continue
        try:
            old = ctx.prices.instance(
                instance.unit.region, current.name, current.vcpus, current.memory_gb
            )
            new = ctx.prices.instance(
                instance.unit.region, target.name, target.vcpus, target.memory_gb
            )
        except PricingError as exc:
            yield Skipped(Kind.OVERSIZED_INSTANCE, instance.resource_id, str(exc))
            continue
        yield _instance_finding(
            instance, ctx, current, target, old.monthly_usd, new.monthly_usd, old.source, old.date
        )


def _oversize_skip_reason(instance: Instance, ctx: ScanContext) -> str | None:
    rule = ctx.rules.oversized_instance
    why_not = exclusion_reason(instance.resource_id, instance.tags, ctx.exclusions, ctx.now.date())
    if why_not:
        return why_not
    if instance.not_rated:
        return instance.not_rated
    if is_burstable(instance.instance_type):
        return "burstable family: judged on CPU credits, not utilisation (not rated)"
    if instance.launched_at and _days(instance.launched_at, ctx.now) < rule.lookback_days:
        return f"running for less than the {rule.lookback_days}-day look-back window"
    cpu = instance.cpu
    if cpu is None or cpu.points == 0:
        return "no CPU data: unknown, not oversized"
    if cpu.points < cpu.expected_points * rule.min_coverage_percent / 100:
        return f"CPU data covers {cpu.points}/{cpu.expected_points} hours: unknown"
    return None


def smallest_fitting_size(
    current: InstanceSize,
    sizes: tuple[InstanceSize, ...],
    average: float,
    peak: float,
    target_peak: float,
    target_avg: float,
) -> InstanceSize | None:
    """The smallest smaller size whose projected peak and average stay within the targets."""
    for size in sorted(sizes, key=lambda s: (s.vcpus, s.name)):
        if size.vcpus >= current.vcpus:
            return None
        scale = current.vcpus / size.vcpus
        if peak * scale <= target_peak and average * scale <= target_avg:
            return size
    return None


def _instance_finding(
    instance: Instance,
    ctx: ScanContext,
    current: InstanceSize,
    target: InstanceSize,
    old_usd: float,
    new_usd: float,
    source: str,
    when: str,
) -> Finding:
    cpu = instance.cpu
    assert cpu is not None
    rule = ctx.rules.oversized_instance
    projected = cpu.peak * current.vcpus / target.vcpus
    peak_label = "peak" if rule.peak_percentile >= 100 else f"p{rule.peak_percentile:g}"
    return Finding(
        unit=instance.unit,
        kind=Kind.OVERSIZED_INSTANCE,
        resource_id=instance.resource_id,
        name=instance.name,
        reason=(
            f"{current.name}: CPU average {cpu.average:.1f}%, {peak_label} {cpu.peak:.1f}% "
            f"over {rule.lookback_days} days"
        ),
        monthly_cost_usd=old_usd,
        monthly_savings_usd=max(0.0, old_usd - new_usd),
        price_source=source,
        price_date=when,
        recommendation=(
            f"resize {current.name} → {target.name} (projected peak {math.ceil(projected)}%)"
        ),
        details={
            "instance_type": current.name,
            "vcpus": current.vcpus,
            "recommended_type": target.name,
            "recommended_vcpus": target.vcpus,
            "cpu_average_percent": round(cpu.average, 3),
            "cpu_peak_percent": round(cpu.peak, 3),
            "cpu_points": cpu.points,
            "projected_peak_percent": round(projected, 2),
            "recommended_monthly_cost_usd": round(new_usd, 4),
            "managed_group": instance.managed_group,
            "tags": dict(instance.tags),
            **(
                {"second_opinion": dict(instance.second_opinion)} if instance.second_opinion else {}
            ),
        },
    )


Scanner = Callable[[Inventory, ScanContext], Iterator[Verdict]]
SCANNERS: tuple[tuple[Kind, Scanner], ...] = (
    (Kind.IDLE_VOLUME, idle_volumes),
    (Kind.UNATTACHED_IP, unattached_ips),
    (Kind.OVERSIZED_INSTANCE, oversized_instances),
)
"""Every waste rule, with the kind of finding it produces."""
