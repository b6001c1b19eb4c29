"""Benchmark: the weekly digest over 1,000,000 daily cost rows.

Rows: 3 providers, 200 accounts (each belongs to one provider), 80 services, 90 days ending
on the digest week's Sunday; about 11,112 (account, service) pairs spend each day. 90 % of rows
are USD, 9 % EUR (converted with digest.rates {EUR: 1.1}) and 1 % GBP (no rate: reported in
other_currencies). Amounts come from a seeded RNG.

Timed, in this process:

1. compute: `costbot.digest.compute.frame(columns)` from plain column lists (the fast path)
   plus `compute_digest(...)` for the last week: the target is < 3 s and < 1 GiB peak RSS;
2. (with --store) the store round trip: `Store.replace_costs` of every row into a temporary
   SQLite cache, `Store.cost_rows` back as CostRow objects, then `frame(rows)` +
   `compute_digest` — what `costbot digest` does on a warm cache.

Peak RSS is the process high-water mark (ru_maxrss), so it includes building the input.
`--profile` prints a cProfile of the compute step (top functions by cumulative time).

Run: python bench/digest.py [--rows 1000000] [--store] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T = TypeVar("T")
WEEK = "2026-W46"
LAST_DAY = date(2026, 11, 15)  # the Sunday ending 2026-W46
DAYS, ACCOUNTS, SERVICES = 90, 200, 80
PROVIDERS = ("aws", "gcp", "azure")
TARGET_SECONDS, TARGET_RSS_MIB = 3.0, 1024.0


def rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def columns(rows: int, seed: int = 7) -> dict[str, list[Any]]:
    """Column lists for `rows` daily cost rows, spread evenly over DAYS days."""
    rng = random.Random(seed)
    first = LAST_DAY - timedelta(days=DAYS - 1)
    day_list = [first + timedelta(days=n) for n in range(DAYS)]
    accounts = [f"acct-{n:03d}" for n in range(ACCOUNTS)]
    owner = [PROVIDERS[n % len(PROVIDERS)] for n in range(ACCOUNTS)]
    services = [f"service-{n:02d}" for n in range(SERVICES)]
    pairs = ACCOUNTS * SERVICES
    per_day = -(-rows // DAYS)
    out: dict[str, list[Any]] = {
        "day": [],
        "provider": [],
        "account": [],
        "service": [],
        "amount": [],
        "currency": [],
    }
    for n in range(rows):
        day_index, slot = divmod(n, per_day)
        # a different but stable subset of (account, service) pairs each day
        pair = (slot * 7919 + day_index * 104729) % pairs
        account, service = divmod(pair, SERVICES)
        roll = rng.random()
        out["day"].append(day_list[day_index])
        out["provider"].append(owner[account])
        out["account"].append(accounts[account])
        out["service"].append(services[service])
        out["amount"].append(round(rng.uniform(0.01, 50.0), 4))
        out["currency"].append("USD" if roll < 0.9 else "EUR" if roll < 0.99 else "GBP")
    return out


def timed(label: str, fn: Callable[[], T], results: dict[str, float]) -> T:
    started = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - started
    return value


def compute(data: Any) -> Any:
    from costbot.digest.compute import compute_digest

    return compute_digest(
        data,
        [],
        {},
        week=WEEK,
        currency="USD",
        rates={"EUR": 1.1},
        missing={},
        freshness={},
        now=datetime(2026, 11, 16, 9, tzinfo=UTC),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--store", action="store_true", help="also time the SQLite round trip")
    parser.add_argument("--profile", action="store_true", help="cProfile the compute step")
    parser.add_argument("--read-db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.read_db:
        return read_db(args.read_db)

    import pandas as pd

    from costbot.digest.compute import frame

    t: dict[str, float] = {}
    rss_start = rss_mib()
    cols = timed("build input columns", lambda: columns(args.rows), t)
    rss_input = rss_mib()
    # warm-up on a small slice so imports and first-call costs are not timed
    compute(frame({k: v[:1000] for k, v in cols.items()}))

    started = time.perf_counter()
    data = timed("frame(columns)", lambda: frame(cols), t)
    digest = timed("compute_digest", lambda: compute(data), t)
    total = time.perf_counter() - started
    rss_compute = rss_mib()

    print(
        f"rows={args.rows:,} days={DAYS} accounts={ACCOUNTS} services={SERVICES} "
        f"providers={len(PROVIDERS)} pandas={pd.__version__} python={sys.version.split()[0]}"
    )
    print(f"build input columns: {t['build input columns']:.2f} s (not counted)")
    print(f"frame(columns):      {t['frame(columns)']:.3f} s")
    print(f"compute_digest:      {t['compute_digest']:.3f} s")
    print(
        f"digest total:        {total:.3f} s  (target < {TARGET_SECONDS:.0f} s: "
        f"{'OK' if total < TARGET_SECONDS else 'MISSED'})"
    )
    print(
        f"peak RSS:            {rss_compute:.0f} MiB  (start {rss_start:.0f}, after input "
        f"{rss_input:.0f}; target < {TARGET_RSS_MIB:.0f} MiB: "
        f"{'OK' if rss_compute < TARGET_RSS_MIB else 'MISSED'})"
    )
    print(
        f"digest: week {digest.week} total {digest.total['this_week']:,.2f} {digest.currency} "
        f"({digest.total['change_pct']}% vs {digest.total['last_week']:,.2f}), "
        f"{len(digest.by_account)} accounts, {len(digest.daily)} chart points, "
        f"{len(digest.anomalies)} anomalies, other currencies {digest.other_currencies}"
    )
    ok = total < TARGET_SECONDS and rss_compute < TARGET_RSS_MIB

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        compute(frame(cols))
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())

    if args.store:
        ok = store_round_trip(cols) and ok
    return 0 if ok else 1


def store_round_trip(cols: dict[str, list[Any]]) -> bool:
    """Write every row into a temporary cost cache here, then read it back in a fresh child
    process so its peak RSS is the read path's own."""
    import subprocess

    from costbot.model import CostRow
    from costbot.store import Store

    rows = [CostRow(*r) for r in zip(*(cols[k] for k in CostRow.__slots__), strict=True)]
    first = LAST_DAY - timedelta(days=DAYS - 1)
    window = [first + timedelta(days=n) for n in range(DAYS)]
    with tempfile.TemporaryDirectory(prefix="costbot-bench-") as scratch:
        path = Path(scratch) / "costbot.db"
        store = Store(path)
        now = datetime(2026, 11, 16, 9, tzinfo=UTC)
        started = time.perf_counter()
        for provider in PROVIDERS:
            store.replace_costs(provider, window, [r for r in rows if r.provider == provider], now)
        print(
            f"store round trip: replace_costs of {len(rows):,} rows (write): "
            f"{time.perf_counter() - started:.3f} s"
        )
        child = subprocess.run(
            [sys.executable, __file__, "--read-db", str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        print(child.stdout, end="")
        print(child.stderr, end="", file=sys.stderr)
        return child.returncode == 0


def read_db(path: Path) -> int:
    """Child process: Store.cost_columns -> frame(columns) -> compute_digest, for all 90 days and
    for the 35 days build_digest reads (28 days of anomaly history + the week)."""
    from costbot.digest.compute import frame
    from costbot.store import Store

    store = Store(path)
    compute(frame(store.cost_columns(LAST_DAY - timedelta(days=7), LAST_DAY + timedelta(1))))
    end = LAST_DAY + timedelta(days=1)
    for label, start in (
        ("all 90 days", end - timedelta(days=DAYS)),
        ("35-day digest window", end - timedelta(days=35)),
    ):
        t: dict[str, float] = {}
        started = time.perf_counter()
        back = store.cost_columns(start, end)
        t["cost_columns (read)"] = time.perf_counter() - started
        started = time.perf_counter()
        data = frame(back)
        t["frame(columns)"] = time.perf_counter() - started
        started = time.perf_counter()
        compute(data)
        t["compute_digest"] = time.perf_counter() - started
        print(f"  read path, {label} ({len(back['day']):,} rows):")
        for name, seconds in t.items():
            print(f"    {name + ':':20} {seconds:.3f} s")
        print(f"    {'total:':20} {sum(t.values()):.3f} s   peak RSS so far {rss_mib():.0f} MiB")
        del back, data
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
