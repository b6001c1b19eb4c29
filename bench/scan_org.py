"""Benchmark: an organisation-scale AWS scan (`providers.aws.organization`) against moto_server.

moto_server runs on 127.0.0.1 as a subprocess. The script creates an organization with
--accounts member accounts (moto supports cross-account sts:AssumeRole), seeds a few
resources in every account x region (management account included): 2 unattached EBS volumes,
1 unassociated Elastic IP and 1 running t3.micro (burstable, so never CPU-rated: no CloudWatch
calls). Then it runs the real scan in-process, wired like `build_providers` does (AwsProvider
with max_pool_connections=max(10, concurrency) and a RateLimiter(config.scan.rate_limits)),
except for the session_factory: plain boto3 sessions (one data loader each, as in
production) with these botocore handlers registered on every session costbot creates:

- before-call: counts the call by operation and stamps when it was asked for;
- before-send: sleeps --latency seconds (default 30 ms) to mimic a real AWS round trip; on a
  call's first attempt it marks the call in flight and adds the time since before-call (the
  rate limiter's wait, which runs in before-call after ours, plus request building) to the
  "queued" total;
- after-call / after-call-error: the call is no longer in flight.

Printed per run: wall time, units ok/failed, findings, API calls per operation, HTTP attempts,
the achieved concurrency (max simultaneous in-flight calls, and the average: in-flight seconds
/ wall seconds), the time before the first inventory call (discovery + the serial role
assumptions in AwsProvider.units()), the seconds calls spent queued before sending, and how
many boto3 sessions costbot created.

Runs: scan.concurrency 16 and 32 with the default scan.rate_limits, then the same two with
every rate limit raised to 100000/s, to separate the limiter from the rest; then a what-if run
(highest concurrency, limits raised) whose sessions share one botocore data loader, to show
what parsing the service models once per session costs. CPU seconds of this process and of
moto_server are printed per run (both share the machine's CPUs).

Run: python bench/scan_org.py --accounts 50 --regions 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import yaml
from motoserver import start_moto, stop

from costbot.config import Config, parse_config
from costbot.logs import setup_logging
from costbot.model import Provider
from costbot.pricing import AwsPriceBook
from costbot.providers.aws import AwsProvider
from costbot.ratelimit import RateLimiter
from costbot.scan import ScanReport, run_scan
from costbot.store import Store

REGIONS = ("us-east-1", "eu-west-1", "us-west-2", "eu-central-1", "ap-southeast-1", "us-east-2")
ROLE = "costbot-read"
FAKE = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
SEED_THREADS = 8
NO_LIMITS = {"ec2": 100000.0, "cloudwatch": 100000.0, "sts": 100000.0}


# -- moto_server -------------------------------------------------------------------------------


# -- the organization and its estate -----------------------------------------------------------


@dataclass
class Estate:
    """What was seeded."""

    management: str
    members: list[str]
    regions: list[str]
    seconds: float
    per_unit: Counter[str] = field(default_factory=Counter)

    @property
    def accounts(self) -> list[str]:
        """Every account costbot should scan."""
        return [self.management, *self.members]


def session_for(account: str, management: str) -> boto3.Session:
    """A session acting in `account` (assumed role for members)."""
    base = boto3.Session(region_name="us-east-1")
    if account == management:
        return base
    creds = base.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{ROLE}", RoleSessionName="seeding"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def seed_unit(session: boto3.Session, region: str) -> Counter[str]:
    """2 unattached volumes, 1 unassociated EIP and 1 running t3.micro in one region."""
    ec2 = session.client("ec2", region_name=region)
    zone = f"{region}a"
    for size in (10, 20):
        ec2.create_volume(AvailabilityZone=zone, Size=size, VolumeType="gp3")
    ec2.allocate_address(Domain="vpc")
    ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        Placement={"AvailabilityZone": zone},
    )
    return Counter(volumes=2, addresses=1, instances=1)


def seed(accounts: int, regions: list[str]) -> Estate:
    """The organization, its members and their resources."""
    started = time.perf_counter()
    org = boto3.client("organizations", region_name="us-east-1")
    management = org.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"]
    members = [
        org.create_account(Email=f"member{n}@example.com", AccountName=f"member-{n}")[
            "CreateAccountStatus"
        ]["AccountId"]
        for n in range(accounts)
    ]
    estate = Estate(management, members, regions, 0.0)

    def one_account(account: str) -> Counter[str]:
        session = session_for(account, management)
        total: Counter[str] = Counter()
        for region in regions:
            total += seed_unit(session, region)
        return total

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        for made in pool.map(one_account, estate.accounts):
            estate.per_unit += made
    estate.seconds = time.perf_counter() - started
    return estate


# -- instrumentation ---------------------------------------------------------------------------


class Probe:
    """Counts calls and attempts, sleeps the injected latency, tracks calls in flight."""

    def __init__(self, latency: float, shared_loader: bool = False) -> None:
        self.latency = latency
        self.loader = botocore.loaders.create_loader() if shared_loader else None
        self.calls: Counter[str] = Counter()
        self.attempts = 0
        self.sessions = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_seconds = 0.0
        self.queued_seconds = 0.0
        self.first_inventory_call: float | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def factory(self) -> Callable[..., boto3.Session]:
        """The session_factory for AwsProvider: a plain boto3 session with the handlers."""

        def make(**credentials: Any) -> boto3.Session:
            if self.loader is None:
                session = boto3.Session(**credentials)
            else:  # what-if: service models parsed once per process, not once per session
                core = botocore.session.get_session()
                core.register_component("data_loader", self.loader)
                session = boto3.Session(botocore_session=core, **credentials)
            events = session.events
            events.register("before-call", self.before_call)
            events.register("before-send", self.before_send)
            events.register("after-call", self.after_call)
            events.register("after-call-error", self.after_call)
            with self._lock:
                self.sessions += 1
            return session

        return make

    def before_call(self, event_name: str = "", **_: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        now = time.perf_counter()
        self._local.asked = now
        self._local.sent = None
        with self._lock:
            self.calls[f"{service}:{operation}"] += 1
            if service == "ec2" and self.first_inventory_call is None:
                self.first_inventory_call = now

    def before_send(self, **_: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            self.attempts += 1
            if getattr(self._local, "sent", None) is None:
                self._local.sent = now
                self.queued_seconds += now - getattr(self._local, "asked", now)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.latency)

    def after_call(self, **_: Any) -> None:
        sent = getattr(self._local, "sent", None)
        if sent is None:
            return
        self._local.sent = None
        with self._lock:
            self.in_flight -= 1
            self.in_flight_seconds += time.perf_counter() - sent


# -- the scan ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One measured scan."""

    label: str
    concurrency: int
    seconds: float
    report: ScanReport
    probe: Probe
    started: float
    cpu_self: float
    cpu_moto: float


def config_for(estate: Estate, concurrency: int, limits: dict[str, float] | None) -> Config:
    data: dict[str, Any] = {
        "providers": {
            "aws": {"regions": estate.regions, "organization": {"role_name": ROLE}},
        },
        "rules": {
            "idle_volume": {"min_unattached_days": 0},
            "unattached_ip": {"min_unattached_days": 0},
        },
        "pricing": {"source": "bundled"},
        "scan": {"concurrency": concurrency, **({"rate_limits": limits} if limits else {})},
    }
    return parse_config(yaml.safe_dump(data), "<bench>")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scan(
    estate: Estate,
    workdir: Path,
    moto_pid: int,
    concurrency: int,
    latency: float,
    limits: dict[str, float] | None,
    shared_loader: bool = False,
) -> Run:
    """The real scan, wired as build_providers() does but with the instrumented sessions."""
    config = config_for(estate, concurrency, limits)
    aws = config.providers.aws
    assert aws is not None
    probe = Probe(latency, shared_loader)
    provider = AwsProvider(
        aws,
        config.rules.oversized_instance,
        session_factory=probe.factory(),
        max_pool_connections=max(10, config.scan.concurrency),
        rate_limiter=RateLimiter(config.scan.rate_limits),
    )
    label = "default rate limits" if limits is None else "rate limits raised"
    if shared_loader:
        label += ", shared loader"
    store = Store(workdir / f"scan-{len(list(workdir.glob('scan-*.db')))}.db")
    prices = {Provider.AWS: AwsPriceBook(live=False)}
    cpu_self, cpu_moto = time.process_time(), cpu_seconds(moto_pid)
    started = time.perf_counter()
    report = run_scan(config, store, [provider], prices)
    seconds = time.perf_counter() - started
    cpu_self, cpu_moto = time.process_time() - cpu_self, cpu_seconds(moto_pid) - cpu_moto
    return Run(label, concurrency, seconds, report, probe, started, cpu_self, cpu_moto)


def print_run(run: Run, estate: Estate) -> None:
    probe, report = run.probe, run.report
    units_expected = len(estate.accounts) * len(estate.regions)
    limits = (
        "ec2 50/s, cloudwatch 20/s, sts 10/s: the defaults"
        if run.label.startswith("default")
        else "every service 100000/s"
    )
    if run.probe.loader is not None:
        limits += "; one botocore loader shared by every session"
    print(f"\n== scan.concurrency {run.concurrency}, {run.label} ({limits})")
    print(f"wall time:                 {run.seconds:8.2f} s")
    discovery = (probe.first_inventory_call or run.started) - run.started
    print(f"  before 1st inventory:    {discovery:8.2f} s  (ListAccounts + serial AssumeRoles)")
    print(
        f"units:                     {len(report.units) - len(report.failed)} ok, "
        f"{len(report.failed)} failed (expected {units_expected})"
    )
    for failure in report.failed[:3]:
        print(f"  failed {failure.unit}: {failure.error}")
    expected_findings = len(estate.accounts) * len(estate.regions) * 3
    print(f"findings:                  {len(report.findings)} (seeded {expected_findings})")
    total = sum(probe.calls.values())
    print(f"API calls:                 {total} ({probe.attempts} HTTP attempts)")
    for operation, n in sorted(probe.calls.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {operation:<34}{n:6d}")
    average = probe.in_flight_seconds / run.seconds if run.seconds else 0.0
    print(
        f"achieved concurrency:      max {probe.max_in_flight} in flight, "
        f"average {average:.1f} over the wall time"
    )
    print(f"queued before sending:     {probe.queued_seconds:8.2f} s summed over calls")
    print(f"boto3 sessions created:    {probe.sessions}")
    print(
        f"CPU during the scan:       costbot process {run.cpu_self:.1f} s, "
        f"moto_server {run.cpu_moto:.1f} s ({os.cpu_count()} CPUs)"
    )
    ideal = total * probe.latency / run.concurrency
    print(f"ideal at this concurrency: {ideal:8.2f} s  (calls x latency / concurrency)")


def main(argv: Sequence[str] | None = None) -> None:
    """Start moto_server, seed the organization, scan it four ways, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=50, help="member accounts")
    parser.add_argument("--regions", type=int, default=4, choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--latency", type=float, default=0.03, help="seconds per API call")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[16, 32], help="scan.concurrency values"
    )
    parser.add_argument(
        "--no-shared-loader-run",
        dest="shared_loader_run",
        action="store_false",
        help="skip the what-if run whose sessions share one botocore loader",
    )
    args = parser.parse_args(argv)
    setup_logging(0, "text")
    regions = list(REGIONS[: args.regions])
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)
    with tempfile.TemporaryDirectory(prefix="costbot-bench-org-") as tmp:
        workdir = Path(tmp)
        os.environ.update(
            {
                **FAKE,
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
            }
        )
        process, url = start_moto(workdir / "moto.log")
        os.environ["AWS_ENDPOINT_URL"] = url
        try:
            estate = seed(args.accounts, regions)
            print(
                f"organization: management {estate.management} + {len(estate.members)} members,"
                f" {len(regions)} regions ({', '.join(regions)}) = "
                f"{len(estate.accounts) * len(regions)} units"
            )
            print(
                f"seeded in {estate.seconds:.1f} s: "
                + ", ".join(f"{n} {what}" for what, n in sorted(estate.per_unit.items()))
            )
            print(f"injected latency: {args.latency * 1000:.0f} ms per API call (before-send)")
            runs = [
                scan(estate, workdir, process.pid, concurrency, args.latency, limits)
                for limits in (None, NO_LIMITS)
                for concurrency in args.concurrency
            ]
            if args.shared_loader_run:
                runs.append(
                    scan(
                        estate,
                        workdir,
                        process.pid,
                        max(args.concurrency),
                        args.latency,
                        NO_LIMITS,
                        shared_loader=True,
                    )
                )
        finally:
            stop(process)
    for run in runs:
        print_run(run, estate)
    print("\nsummary (wall seconds):")
    for run in runs:
        print(
            f"  concurrency {run.concurrency:3d}, {run.label:<35} {run.seconds:7.2f} s,"
            f" max in flight {run.probe.max_in_flight}"
        )
    if any(run.report.failed for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
