"""Benchmark: one full AWS scan (`run_scan` with the real AwsProvider) against moto_server.

What it measures, for N seeded resources split across R regions:

- seeding time (reported on its own; it is moto's cost, not costbot's),
- scan wall time, from `run_scan()` start to its return (inventory, CPU metrics, rules, store),
- every AWS API call costbot made, by operation (botocore `before-call` events), HTTP attempts
  including retries (`before-send`), and the client-side seconds spent waiting per operation,
- the call count costbot should make given its page sizes, to compare with the actual count,
- findings, and memory: RSS before and after the scan and the process's peak RSS.

The estate per region is about 1/3 EBS volumes (90 % unattached), 1/3 Elastic IPs (90 %
unassociated) and 1/3 running m5 instances (60 % idle, 40 % busy) with 14 days of CPU
statistics put as pre-aggregated StatisticValues. moto stamps instances with the real launch
time, so the scan runs with its clock 15 days ahead (`run_scan(now=...)`) and the CPU data is
put inside that shifted 14-day window; otherwise no instance would be old enough to be rated.

moto's GetMetricData is O(queries x stored datapoints in the region), so the metric granularity
decides how much of the scan time is moto's own work: `--metric-granularity day` (default)
puts 14 datapoints per instance, `hour` puts 336, `window` puts one for the whole look-back
(costbot's default peak_percentile 100 asks for one whole-window Average and Maximum, which
one datapoint answers just as well). The granularity used is printed with the results. At
N=10000 with `day`, each 500-query GetMetricData call keeps moto busy for over a minute, past
botocore's 60 s read timeout, and the scan fails; use `window` there.

Run: python bench/scan_aws.py --resources 1000 --regions 3
     python bench/scan_aws.py --resources 10000 --regions 3 --metric-granularity window
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from motoserver import start_moto, stop
from scan_aws_seed import (
    CLOCK_SHIFT,
    FAKE_CREDENTIALS,
    FAMILIES_PER_TYPES_CALL,
    GRANULARITY_SECONDS,
    INSTANCE_PAGE,
    INSTANCES_PER_METRIC_CALL,
    MOTO_PAGING,
    REGIONS,
    VOLUME_PAGE,
    RegionPlan,
    make_plans,
    seed,
)

from costbot.logs import setup_logging


@dataclass
class CallCounter:
    """botocore event hooks: calls and HTTP attempts per operation, and client-side seconds."""

    calls: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def operation(event_name: str) -> str:
        """'before-call.ec2.DescribeVolumes' -> 'ec2:DescribeVolumes'."""
        _, service, name = event_name.split(".", 2)
        return f"{service}:{name}"

    def before_call(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        """Count one API call (however many HTTP attempts it takes) and note its start."""
        context["bench_started"] = time.perf_counter()
        with self.lock:
            self.calls[self.operation(event_name)] += 1

    def after_call(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        """Add the call's duration (all attempts and back-off included) to its operation."""
        elapsed = time.perf_counter() - context.get("bench_started", time.perf_counter())
        with self.lock:
            self.seconds[self.operation(event_name)] += elapsed

    def after_call_error(self, event_name: str, context: dict[str, Any], **_: Any) -> None:
        """Failed calls (after botocore's retries) count their time too."""
        self.after_call(event_name, context)

    def before_send(self, event_name: str, **_: Any) -> None:
        """Count one HTTP attempt."""
        with self.lock:
            self.attempts[self.operation(event_name)] += 1

    def session_factory(self, **kwargs: Any) -> boto3.Session:
        """A boto3.Session whose clients report to this counter."""
        session = boto3.Session(**kwargs)
        session.events.register("before-call", self.before_call)
        session.events.register("after-call", self.after_call)
        session.events.register("after-call-error", self.after_call_error)
        session.events.register("before-send", self.before_send)
        return session


# -- the scan ----------------------------------------------------------------------------------


CONFIG = """\
providers:
  aws:
    regions: [{regions}]
rules:
  idle_volume:
    min_unattached_days: 0
  unattached_ip:
    min_unattached_days: 0
pricing:
  source: bundled
store:
  path: {store}
scan:
  concurrency: {concurrency}
"""


@dataclass(frozen=True)
class ScanOutcome:
    """What one scan did."""

    seconds: float
    report: Any
    counter: CallCounter
    rss_before_mib: float
    rss_after_mib: float
    own_cpu_seconds: float
    moto_cpu_seconds: float
    load_before: float
    load_after: float


def rss_mib() -> float:
    """Current resident set size of this process, in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def own_cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scan(
    server: subprocess.Popen[bytes],
    url: str,
    plans: Sequence[RegionPlan],
    scan_now: datetime,
    workdir: Path,
    concurrency: int,
) -> ScanOutcome:
    """run_scan() in this process with an AwsProvider whose sessions count calls."""
    from costbot.config import parse_config
    from costbot.providers import build_price_books
    from costbot.providers.aws import AwsProvider
    from costbot.scan import run_scan
    from costbot.store import Store

    os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION="us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    text = CONFIG.format(
        regions=", ".join(p.region for p in plans),
        store=workdir / "bench.db",
        concurrency=concurrency,
    )
    config = parse_config(text, "<bench>")
    assert config.providers.aws is not None
    store = Store(config.store.path)
    counter = CallCounter()
    provider = AwsProvider(
        config.providers.aws,
        config.rules.oversized_instance,
        session_factory=counter.session_factory,
        max_pool_connections=max(10, config.scan.concurrency),
    )
    prices = build_price_books(config, store)
    before, load = rss_mib(), os.getloadavg()[0]
    cpu, moto_cpu = own_cpu_seconds(), process_cpu_seconds(server.pid)
    started = time.perf_counter()
    report = run_scan(config, store, [provider], prices, now=scan_now)
    seconds = time.perf_counter() - started
    cpu, moto_cpu = own_cpu_seconds() - cpu, process_cpu_seconds(server.pid) - moto_cpu
    after = (rss_mib(), os.getloadavg()[0])
    return ScanOutcome(seconds, report, counter, before, after[0], cpu, moto_cpu, load, after[1])


# -- expected calls and the report -------------------------------------------------------------


def expected_calls(plans: Sequence[RegionPlan]) -> Counter[str]:
    """Calls costbot should make for the seeded estate, given its page and batch sizes."""
    expected: Counter[str] = Counter({"sts:GetCallerIdentity": 1})
    for plan in plans:
        rated = plan.instances  # every seeded instance is running, m5 and old enough
        expected["ec2:DescribeVolumes"] += max(1, math.ceil(plan.volumes / VOLUME_PAGE))
        expected["ec2:DescribeAddresses"] += 1
        expected["ec2:DescribeInstances"] += max(1, math.ceil(plan.instances / INSTANCE_PAGE))
        if rated:
            families = 1  # m5 only
            expected["ec2:DescribeInstanceTypes"] += math.ceil(families / FAMILIES_PER_TYPES_CALL)
            expected["cloudwatch:GetMetricData"] += math.ceil(rated / INSTANCES_PER_METRIC_CALL)
    return expected


def print_results(
    args: argparse.Namespace, plans: Sequence[RegionPlan], seed_seconds: float, run: ScanOutcome
) -> None:
    """The benchmark's figures, one per line."""
    report = run.report
    seen: Counter[str] = Counter()
    for unit in report.units:
        seen.update(unit.resources)
    kinds = Counter(str(f.kind) for f in report.findings)
    print(
        f"resources N={args.resources} regions R={args.regions} "
        f"metric granularity={args.metric_granularity} scan concurrency={args.concurrency}"
    )
    for plan in plans:
        print(f"  planned {_plan_text(plan)}")
    print(f"seed: {seed_seconds:.1f} s (moto_server + boto3; not part of the scan)")
    print(
        f"scan wall: {run.seconds:.2f} s (CPU during the scan: costbot process "
        f"{run.own_cpu_seconds:.1f} s, moto_server {run.moto_cpu_seconds:.1f} s)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, 1-min load average {run.load_before:.2f} before "
        f"the scan, {run.load_after:.2f} after (other work on the machine skews wall times)"
    )
    print(f"resources seen: {sum(seen.values())} ({_counts(seen)})")
    print(f"units: {len(report.units)} ok={len(report.units) - len(report.failed)}")
    for failed in report.failed:
        print(f"  FAILED {failed.unit}: {failed.error}")
    print(f"findings: {len(report.findings)} ({_counts(kinds)})")
    _print_calls(run.counter, expected_calls(plans))
    print(
        f"RSS before scan: {run.rss_before_mib:.1f} MiB, after: {run.rss_after_mib:.1f} MiB, "
        f"peak (ru_maxrss): {peak_rss_mib():.1f} MiB"
    )


def _print_calls(counter: CallCounter, expected: Counter[str]) -> None:
    total, attempts = sum(counter.calls.values()), sum(counter.attempts.values())
    print(
        f"API calls: {total} (HTTP attempts incl. retries: {attempts}); "
        f"expected from costbot's page/batch sizes: {sum(expected.values())}"
    )
    print(f"  {'operation':<30} {'calls':>6} {'expected':>8} {'attempts':>8} {'wait s':>8}")
    for op in sorted(set(counter.calls) | set(expected)):
        print(
            f"  {op:<30} {counter.calls[op]:>6} {expected[op]:>8} "
            f"{counter.attempts[op]:>8} {counter.seconds[op]:>8.2f}"
        )
    print("  (wait s: seconds the client waited on the call, summed over concurrent unit threads)")
    for op, why in MOTO_PAGING.items():
        if counter.calls[op] < expected[op]:
            print(f"  ({op}: fewer calls than expected because {why})")


def _plan_text(plan: RegionPlan) -> str:
    return (
        f"{plan.region} {plan.volumes} vol ({plan.attached_volumes} attached) / "
        f"{plan.addresses} EIP ({plan.associated_addresses} associated) / "
        f"{plan.instances} inst ({plan.idle_instances} idle)"
    )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def main(argv: Sequence[str] | None = None) -> None:
    """Start moto_server, seed it, scan it, print the figures, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--resources", type=int, default=1000, help="N resources in total")
    parser.add_argument("--regions", type=int, default=3, choices=range(1, len(REGIONS) + 1))
    parser.add_argument(
        "--metric-granularity",
        choices=sorted(GRANULARITY_SECONDS),
        default="day",
        help="CPU datapoints per instance: hour (336), day (14) or window (1)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="config scan.concurrency")
    args = parser.parse_args(argv)
    setup_logging(0, "text")
    plans = make_plans(args.resources, args.regions)
    scan_now = datetime.now(UTC) + CLOCK_SHIFT
    with tempfile.TemporaryDirectory(prefix="costbot-bench-") as tmp:
        workdir = Path(tmp)
        process, url = start_moto(workdir / "moto.log")
        try:
            seed_seconds = seed(url, plans, scan_now, args.metric_granularity)
            run = scan(process, url, plans, scan_now, workdir, args.concurrency)
        finally:
            stop(process)
    print_results(args, plans, seed_seconds, run)
    if run.report.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
