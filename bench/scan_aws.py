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
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from motoserver import start_moto, stop

from costbot.logs import setup_logging

REGIONS = ("us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-1", "us-east-2")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
CLOCK_SHIFT = timedelta(days=15)
LOOKBACK = timedelta(days=14)
GRANULARITY_SECONDS = {"hour": 3600, "day": 86400, "window": int(LOOKBACK.total_seconds())}
IDLE_TYPE, BUSY_TYPE = "m5.2xlarge", "m5.xlarge"
RUN_BATCH = 250
DATUMS_PER_PUT = 1000
SEED_THREADS = 8

# Page sizes and batch sizes used by costbot/providers/aws.py, for the expected call count.
VOLUME_PAGE = 500  # _volumes: describe_volumes PageSize
INSTANCE_PAGE = 1000  # _instances: describe_instances PageSize
FAMILIES_PER_TYPES_CALL = 50  # _sizes: _chunks(wanted, 50)
INSTANCES_PER_METRIC_CALL = 250  # _cpu: METRIC_QUERIES_PER_CALL // 2 (Average + Maximum)
MOTO_PAGING = {
    "ec2:DescribeVolumes": "moto ignores MaxResults here and answers with one page",
    "ec2:DescribeInstances": (
        f"moto counts MaxResults in reservations, and run_instances puts {RUN_BATCH} in each"
    ),
}


# -- moto_server -------------------------------------------------------------------------------


# -- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionPlan:
    """What to create in one region."""

    region: str
    volumes: int
    addresses: int
    instances: int

    @property
    def attached_volumes(self) -> int:
        """Volumes to attach (one per instance at most)."""
        return min(self.volumes // 10, self.instances)

    @property
    def associated_addresses(self) -> int:
        """Addresses to associate (one per instance at most)."""
        return min(self.addresses // 10, self.instances)

    @property
    def idle_instances(self) -> int:
        """Instances with low CPU (the rest are busy)."""
        return self.instances * 6 // 10


def make_plans(resources: int, regions: int) -> list[RegionPlan]:
    """N resources over R regions, each region about 1/3 volumes, EIPs and instances."""
    plans = []
    for n, region in enumerate(REGIONS[:regions]):
        share = resources // regions + (1 if n < resources % regions else 0)
        volumes, addresses = share // 3, share // 3
        plans.append(RegionPlan(region, volumes, addresses, share - volumes - addresses))
    return plans


@dataclass(frozen=True)
class SeedResult:
    """What seeding one region made and how long it took."""

    region: str
    seconds: float
    datums: int
    put_calls: int


def seed_region(url: str, plan: RegionPlan, scan_now: datetime, granularity: str) -> SeedResult:
    """Create one region's estate through boto3 (runs in a worker process)."""
    started = time.perf_counter()
    clients = _clients(url, plan.region)
    ec2, cloudwatch = clients["ec2"], clients["cloudwatch"]
    zone = f"{plan.region}a"
    idle = _run_instances(ec2, zone, IDLE_TYPE, plan.idle_instances)
    busy = _run_instances(ec2, zone, BUSY_TYPE, plan.instances - plan.idle_instances)
    holders = idle + busy
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        volumes = list(pool.map(lambda _: _create_volume(ec2, zone), range(plan.volumes)))
        addresses = list(pool.map(lambda _: _allocate(ec2), range(plan.addresses)))
        attach = list(zip(volumes, holders[: plan.attached_volumes], strict=False))
        list(pool.map(lambda pair: _attach(ec2, *pair), attach))
        associate = list(zip(addresses, holders[: plan.associated_addresses], strict=False))
        list(pool.map(lambda pair: _associate(ec2, *pair), associate))
        batches = _metric_batches(idle, busy, scan_now, granularity)
        datums, calls = _put_metrics(pool, cloudwatch, batches)
    return SeedResult(plan.region, time.perf_counter() - started, datums, calls)


def _put_metrics(
    pool: ThreadPoolExecutor, cloudwatch: Any, batches: Iterator[list[dict[str, Any]]]
) -> tuple[int, int]:
    """put_metric_data for every batch, a bounded number in flight (datums are built lazily)."""
    pending: deque[Future[Any]] = deque()
    datums = calls = 0
    for batch in batches:
        if len(pending) >= 2 * SEED_THREADS:
            pending.popleft().result()
        pending.append(
            pool.submit(cloudwatch.put_metric_data, Namespace="AWS/EC2", MetricData=batch)
        )
        datums, calls = datums + len(batch), calls + 1
    for future in pending:
        future.result()
    return datums, calls


def _clients(url: str, region: str) -> dict[str, Any]:
    session = boto3.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    config = BotoConfig(max_pool_connections=SEED_THREADS + 2, retries={"mode": "standard"})
    return {
        "ec2": session.client("ec2", endpoint_url=url, config=config),
        "cloudwatch": session.client("cloudwatch", endpoint_url=url, config=config),
    }


def _run_instances(ec2: Any, zone: str, instance_type: str, count: int) -> list[str]:
    """Launch `count` instances in batches; no root volume, so volume counts stay as planned."""
    ids: list[str] = []
    while len(ids) < count:
        batch = min(RUN_BATCH, count - len(ids))
        answer = ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=batch,
            MaxCount=batch,
            InstanceType=instance_type,
            Placement={"AvailabilityZone": zone},
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "NoDevice": ""}],
        )
        ids.extend(i["InstanceId"] for i in answer["Instances"])
    return ids


def _create_volume(ec2: Any, zone: str) -> str:
    volume_id: str = ec2.create_volume(AvailabilityZone=zone, Size=100, VolumeType="gp3")[
        "VolumeId"
    ]
    return volume_id


def _allocate(ec2: Any) -> str:
    allocation_id: str = ec2.allocate_address(Domain="vpc")["AllocationId"]
    return allocation_id


def _attach(ec2: Any, volume_id: str, instance_id: str) -> None:
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")


def _associate(ec2: Any, allocation_id: str, instance_id: str) -> None:
    ec2.associate_address(AllocationId=allocation_id, InstanceId=instance_id)


def _metric_batches(
    idle: Sequence[str], busy: Sequence[str], scan_now: datetime, granularity: str
) -> Iterator[list[dict[str, Any]]]:
    """CPUUtilization datums inside the scan's look-back window, DATUMS_PER_PUT at a time."""
    step = GRANULARITY_SECONDS[granularity]
    end = scan_now.replace(minute=0, second=0, microsecond=0)
    start = end - LOOKBACK
    buckets = int(LOOKBACK.total_seconds()) // step
    batch: list[dict[str, Any]] = []
    for instance_id, profile in [(i, (3.0, 15.0)) for i in idle] + [
        (i, (50.0, 90.0)) for i in busy
    ]:
        rng = random.Random(instance_id)
        avg, peak = profile
        for k in range(buckets):
            mean = avg * rng.uniform(0.8, 1.2)
            samples = step // 300
            batch.append(
                {
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                    "Timestamp": start + timedelta(seconds=k * step + step // 2),
                    "StatisticValues": {
                        "SampleCount": samples,
                        "Sum": mean * samples,
                        "Minimum": mean / 2,
                        "Maximum": peak if k == 0 else min(peak, mean * 1.3),
                    },
                    "Unit": "Percent",
                }
            )
            if len(batch) == DATUMS_PER_PUT:
                yield batch
                batch = []
    if batch:
        yield batch


def seed(url: str, plans: Sequence[RegionPlan], scan_now: datetime, granularity: str) -> float:
    """Seed every region in worker processes (so the scan's process keeps a clean RSS)."""
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(len(plans), 2), mp_context=context) as pool:
        futures = [pool.submit(seed_region, url, p, scan_now, granularity) for p in plans]
        for future in futures:
            result = future.result()
            print(
                f"  seeded {result.region}: {result.seconds:.1f} s, "
                f"{result.datums} CPU datums in {result.put_calls} put_metric_data calls"
            )
    return time.perf_counter() - started


# -- counting API calls ------------------------------------------------------------------------


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
