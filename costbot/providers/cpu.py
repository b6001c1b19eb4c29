"""CPU statistics shared by every cloud: hourly (or whole-window) averages and maxima in,
one CpuStats out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from costbot.model import CpuStats, Instance
from costbot.scanners import is_burstable


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; 100 is the maximum."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def cpu_stats(
    averages: Sequence[float], maxima: Sequence[float], pct: float, expected: int
) -> CpuStats | None:
    """Average of the averages and the `pct` percentile of the maxima; None without data."""
    if not averages or not maxima:
        return None
    return CpuStats(
        average=sum(averages) / len(averages),
        peak=percentile(maxima, pct),
        points=len(averages),
        expected_points=expected,
    )


def metric_window(now: datetime, days: int, daily: bool) -> tuple[datetime, datetime]:
    """The look-back window [start, end): ending on the hour, or at midnight UTC when the
    points are daily, so every daily bucket is a whole day and weighs the same."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if daily:
        end = end.replace(hour=0)
    return end - timedelta(days=days), end


def with_cpu(instance: Instance, cpu: CpuStats | None) -> Instance:
    """The instance with its CPU statistics attached (unchanged when there are none)."""
    return instance if cpu is None else replace(instance, cpu=cpu)


def worth_rating(
    instances: Sequence[Instance], now: datetime, lookback_days: int
) -> list[Instance]:
    """The instances whose CPU is worth fetching: running, rateable (not burstable, not a shape
    without smaller sizes) and running for at least the look-back window."""
    lookback = timedelta(days=lookback_days)
    return [
        i
        for i in instances
        if i.state == "running"
        and not i.not_rated
        and not is_burstable(i.instance_type)
        and (i.launched_at is None or now - i.launched_at >= lookback)
    ]
