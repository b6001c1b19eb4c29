"""What every price book offers the scanners: monthly quotes that name their source and date.

A month is 730 hours. Quotes are monthly USD estimates; rounding is left to display code.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Protocol

from costbot.store import CachedPrice, Store


@dataclass(frozen=True, slots=True)
class Quote:
    """A monthly price estimate and where it came from."""

    monthly_usd: float
    source: str
    date: str


class PriceBook(Protocol):
    """What the scanners need to put a price on waste."""

    def volume(
        self, region: str, volume_type: str, size_gb: int, iops: int | None, throughput: int | None
    ) -> Quote:
        """Monthly cost of a block volume."""
        ...

    def public_ip(self, region: str, sku: str = "") -> Quote:
        """Monthly cost of one public IPv4 address."""
        ...

    def instance(
        self, region: str, instance_type: str, vcpus: int, memory_gb: float = 0.0
    ) -> Quote:
        """Monthly on-demand cost of an instance type (Linux, no licence)."""
        ...


class RateCache:
    """Live rates remembered per process and in the store for `cache_days`. Thread-safe."""

    def __init__(self, store: Store | None, cache_days: int, now: datetime) -> None:
        self._store = store
        self._max_age = timedelta(days=cache_days)
        self._now = now
        self._lock = threading.Lock()
        self._memo: dict[str, CachedPrice | None] = {}

    def get(self, key: str, fetch: Callable[[], CachedPrice | None]) -> CachedPrice | None:
        """The rate for `key`: remembered, or fetched (None = the live source has none)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            cached = self._store.cached_price(key) if self._store else None
            if cached is not None and self._now - cached.fetched_at <= self._max_age:
                self._memo[key] = cached
                return cached
            found = fetch()
            self._memo[key] = found
            if found is not None and self._store is not None:
                self._store.save_price(key, found)
            return found


def combine(total: float, parts: list[CachedPrice]) -> Quote:
    """A quote for `total` that names every source it was built from and the newest date."""
    sources = sorted({p.source for p in parts})
    when = max(p.fetched_at for p in parts).date().isoformat()
    return Quote(total, " + ".join(sources), when)


def bundled_table(name: str) -> dict[str, Any]:
    """A dated fallback price table shipped with costbot (costbot/data/<name>.json)."""
    text = resources.files("costbot").joinpath(f"data/{name}.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
