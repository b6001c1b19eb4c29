"""run_scan(): every provider unit (account x region) collected concurrently, judged by the
waste rules and written to the store. One failing unit is recorded and the others complete.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from costbot.config import Config
from costbot.errors import CostbotError
from costbot.model import Finding, Inventory, Kind, Provider, Unit, UnitFailure
from costbot.pricing import PriceBook
from costbot.scanners import SCANNERS, ScanContext, Skipped
from costbot.store import Store, utcnow

log = logging.getLogger(__name__)


class InventoryProvider(Protocol):
    """What a cloud adapter offers the scan."""

    provider: Provider

    def units(self) -> tuple[list[Unit], Sequence[UnitFailure]]:
        """Units to scan, and accounts that failed before any unit could be listed."""
        ...

    def collect(self, unit: Unit, now: datetime) -> Inventory:
        """The inventory of one unit."""
        ...


@dataclass(frozen=True, slots=True)
class UnitResult:
    """The outcome of scanning one unit."""

    unit: Unit
    error: str | None = None
    resources: Counter[str] = field(default_factory=Counter)
    findings: tuple[Finding, ...] = ()
    skipped: Counter[str] = field(default_factory=Counter)
    new: int = 0
    resolved: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the unit was scanned completely."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class ScanReport:
    """Everything one scan run did."""

    run_id: str
    units: tuple[UnitResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def findings(self) -> list[Finding]:
        """Every finding from every unit that succeeded."""
        return [f for u in self.units for f in u.findings]

    @property
    def failed(self) -> list[UnitResult]:
        """Units that could not be scanned."""
        return [u for u in self.units if not u.ok]


ProgressCallback = Callable[[UnitResult, int], None]
"""Called after each unit with its result and the number of units in the run."""


def run_scan(
    config: Config,
    store: Store,
    providers: Sequence[InventoryProvider],
    prices: dict[Provider, PriceBook],
    *,
    now: datetime | None = None,
    on_unit: ProgressCallback | None = None,
) -> ScanReport:
    """Scan every unit of every provider concurrently and record the results in the store."""
    moment = now or utcnow()
    run_id = uuid.uuid4().hex[:12]
    results: list[UnitResult] = []
    jobs: list[tuple[InventoryProvider, Unit]] = []
    for adapter in providers:
        try:
            units, failures = adapter.units()
        except CostbotError as exc:
            units, failures = [], []
            results.append(
                _record_failure(store, Unit(adapter.provider, "*", "*"), run_id, moment, str(exc))
            )
        for failure in failures:
            for region in failure.regions:
                unit = Unit(adapter.provider, failure.account, region)
                results.append(_record_failure(store, unit, run_id, moment, failure.error))
        jobs.extend((adapter, unit) for unit in units)
    total = len(jobs) + len(results)
    for done in results:
        if on_unit:
            on_unit(done, total)
    with ThreadPoolExecutor(max_workers=config.scan.concurrency, thread_name_prefix="scan") as pool:
        futures = [
            pool.submit(
                _scan_unit, config, store, adapter, unit, prices[adapter.provider], run_id, moment
            )
            for adapter, unit in jobs
        ]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_unit:
                on_unit(result, total)
    notes = tuple(dict.fromkeys(n for book in prices.values() for n in getattr(book, "notes", [])))
    order = {id(u): n for n, u in enumerate(results)}
    ordered = sorted(results, key=lambda r: (str(r.unit), order[id(r)]))
    return ScanReport(run_id, tuple(ordered), notes)


def _record_failure(store: Store, unit: Unit, run_id: str, now: datetime, error: str) -> UnitResult:
    log.error("scan unit failed", extra={"unit": str(unit), "error": error})
    store.record_scan(
        unit,
        run_id=run_id,
        started_at=now,
        finished_at=now,
        findings=(),
        resource_counts={},
        error=error,
    )
    return UnitResult(unit, error=error)


def _scan_unit(
    config: Config,
    store: Store,
    adapter: InventoryProvider,
    unit: Unit,
    prices: PriceBook,
    run_id: str,
    now: datetime,
) -> UnitResult:
    """Scan one unit; any failure is recorded for this unit alone and the run goes on."""
    try:
        return _scan_unit_or_raise(config, store, adapter, unit, prices, run_id, now)
    except CostbotError as exc:
        return _record_failure(store, unit, run_id, now, str(exc))
    except Exception as exc:  # a bug must not take the other units down with it
        log.exception("unexpected error scanning a unit", extra={"unit": str(unit)})
        return _record_failure(
            store, unit, run_id, now, f"internal error (please report): {type(exc).__name__}: {exc}"
        )


def _scan_unit_or_raise(
    config: Config,
    store: Store,
    adapter: InventoryProvider,
    unit: Unit,
    prices: PriceBook,
    run_id: str,
    now: datetime,
) -> UnitResult:
    started = time.perf_counter()
    inventory = adapter.collect(unit, now)
    counts = Counter(
        volumes=len(inventory.volumes),
        addresses=len(inventory.addresses),
        instances=len(inventory.instances),
    )
    since = {
        (Kind.IDLE_VOLUME, rid): moment
        for rid, moment in store.note_unattached(
            unit,
            Kind.IDLE_VOLUME,
            [v.resource_id for v in inventory.volumes if not v.attached_to],
            now,
        ).items()
    }
    since |= {
        (Kind.UNATTACHED_IP, rid): moment
        for rid, moment in store.note_unattached(
            unit,
            Kind.UNATTACHED_IP,
            [a.resource_id for a in inventory.addresses if not a.associated],
            now,
        ).items()
    }
    ctx = ScanContext(config.rules, config.exclusions, now, prices, since)
    findings: list[Finding] = []
    skipped: Counter[str] = Counter()
    for _kind, scanner in SCANNERS:
        for verdict in scanner(inventory, ctx):
            if isinstance(verdict, Skipped):
                skipped[f"{verdict.kind}: {verdict.reason}"] += 1
            else:
                findings.append(verdict)
    record = store.record_scan(
        unit,
        run_id=run_id,
        started_at=now,
        finished_at=now + timedelta(seconds=time.perf_counter() - started),
        findings=findings,
        resource_counts=counts,
        unattached_since={rid: moment for (_k, rid), moment in since.items()},
    )
    return UnitResult(
        unit,
        None,
        counts,
        tuple(findings),
        skipped,
        record.new,
        record.resolved,
        time.perf_counter() - started,
    )
