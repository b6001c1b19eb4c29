"""Benchmark: the cleanup engine (`CleanupRun`, dry run then execute) on N approved AWS findings.

Against a real `moto_server` process it seeds N resources, unattached EBS volumes with a few
tags and (by default a quarter) unassociated Elastic IPs, split over one or two regions, then in
this process:

1. runs a real scan (`run_scan` with the real AwsProvider; min_unattached_days 0, bundled
   pricing) into a temporary store, and approves every finding via `costbot.approvals.decide`;
2. runs `CleanupRun(execute=False)` (re-check + EC2 DryRun of every approved finding);
3. runs `CleanupRun(execute=True)` (snapshot-then-delete volumes, release addresses).

Both cleanup runs use cleaners from `cleaners.build_cleaners(config, session_factory=...)`, whose
boto3 sessions carry botocore hooks that count every API call per operation (`before-call`
events) and every boto3 client created (`creating-client-class` events). It prints N, seed
seconds, the wall seconds and API calls per finding of each run (per operation too), and checks
the write-ahead audit in SQLite: exactly one intent and one result per finding in the `actions`
table and in the `events` table, no action left without a result.

`--profile` adds a cProfile of the execute run (top functions by cumulative time).

Run: python bench/cleanup_aws.py --findings 1000
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from motoserver import start_moto, stop

REGIONS = ("us-east-1", "eu-west-1")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
SEED_THREADS = 8
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
cleanup:
  execute: true
  max_per_run: {max_per_run}
"""


# -- moto_server -------------------------------------------------------------------------------


# -- seeding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionPlan:
    """What to create in one region."""

    region: str
    volumes: int
    addresses: int


def make_plans(findings: int, regions: int, ip_share: float) -> list[RegionPlan]:
    """N resources over R regions; a share of each region's are Elastic IPs, the rest volumes."""
    plans = []
    for n, region in enumerate(REGIONS[:regions]):
        share = findings // regions + (1 if n < findings % regions else 0)
        addresses = round(share * ip_share)
        plans.append(RegionPlan(region, share - addresses, addresses))
    return plans


def seed(url: str, plans: Sequence[RegionPlan]) -> float:
    """Create every region's volumes and addresses through boto3, a few threads per region."""
    from botocore.config import Config

    started = time.perf_counter()
    config = Config(max_pool_connections=SEED_THREADS + 2, retries={"mode": "standard"})
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        for plan in plans:
            ec2: Any = boto3.Session(
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                region_name=plan.region,
            ).client("ec2", endpoint_url=url, config=config)
            zone = f"{plan.region}a"
            volumes = [(ec2, zone, n) for n in range(plan.volumes)]
            list(pool.map(lambda job: _create_volume(*job), volumes))
            list(pool.map(_allocate, [ec2] * plan.addresses))
    return time.perf_counter() - started


def _allocate(ec2: Any) -> None:
    ec2.allocate_address(Domain="vpc")


def _create_volume(ec2: Any, zone: str, n: int) -> None:
    tags = {"Name": f"bench-{n:05d}", "team": "bench", "env": "test"}
    ec2.create_volume(
        AvailabilityZone=zone,
        Size=10 + n % 90,
        VolumeType="gp3",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )


# -- counting API calls ------------------------------------------------------------------------


@dataclass
class CallCounter:
    """botocore event hooks: API calls and their client-side seconds per operation (EC2 DryRun
    calls apart), and boto3 clients created with the seconds spent creating them."""

    calls: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    clients: Counter[str] = field(default_factory=Counter)
    client_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def operation(event_name: str, params: Any) -> str:
        """'before-call.ec2.DeleteVolume' -> 'ec2:DeleteVolume', plus ' (DryRun)' for dry runs."""
        _, service, name = event_name.split(".", 2)
        body = params.get("body") if isinstance(params, dict) else None
        dry = isinstance(body, dict) and str(body.get("DryRun", "")).lower() == "true"
        return f"{service}:{name}{' (DryRun)' if dry else ''}"

    def before_call(self, event_name: str, params: Any, context: dict[str, Any], **_: Any) -> None:
        """Count one API call (however many HTTP attempts it takes) and note its start."""
        op = self.operation(event_name, params)
        context["bench_op"], context["bench_started"] = op, time.perf_counter()
        with self.lock:
            self.calls[op] += 1

    def after_call(self, context: dict[str, Any], **_: Any) -> None:
        """Add the call's client-side duration (errors included: they parse before raising)."""
        if "bench_started" in context:
            elapsed = time.perf_counter() - context["bench_started"]
            with self.lock:
                self.seconds[context["bench_op"]] += elapsed

    def creating_client(self, event_name: str, **_: Any) -> None:
        """'creating-client-class.ec2' -> one more ec2 client built."""
        with self.lock:
            self.clients[event_name.split(".", 1)[1]] += 1

    def session_factory(self, **kwargs: Any) -> boto3.Session:
        """A boto3.Session whose clients report to this counter (and time their creation)."""
        counter = self

        class TimedSession(boto3.Session):
            def client(self, *args: Any, **kw: Any) -> Any:
                started = time.perf_counter()
                made = super().client(*args, **kw)
                with counter.lock:
                    counter.client_seconds += time.perf_counter() - started
                return made

        session = TimedSession(**kwargs)
        session.events.register("before-call", self.before_call)
        session.events.register("after-call", self.after_call)
        session.events.register("creating-client-class", self.creating_client)
        return session


# -- the phases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One timed cleanup run."""

    name: str
    seconds: float
    stages: Counter[str]
    counter: CallCounter
    profile: str = ""


def scan_and_approve(
    url: str, plans: Sequence[RegionPlan], workdir: Path
) -> tuple[Any, Any, float]:
    """A real scan in this process, then every finding approved; (config, store, scan seconds)."""
    from cleaners import build_cleaners
    from costbot.approvals import Decision, decide
    from costbot.config import parse_config
    from costbot.providers import build_price_books, build_providers
    from costbot.scan import run_scan
    from costbot.store import Store

    os.environ.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=url, AWS_DEFAULT_REGION="us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_PRICING"):
        os.environ.pop(name, None)
    total = sum(p.volumes + p.addresses for p in plans)
    text = CONFIG.format(
        regions=", ".join(p.region for p in plans),
        store=workdir / "bench.db",
        max_per_run=max(total, 1),
    )
    config = parse_config(text, "<bench>")
    store = Store(config.store.path)
    started = time.perf_counter()
    report = run_scan(config, store, build_providers(config), build_price_books(config, store))
    scan_seconds = time.perf_counter() - started
    if report.failed:
        raise SystemExit(f"scan failed: {[(str(u.unit), u.error) for u in report.failed]}")
    ids = [f.id for f in report.findings]
    if len(ids) != total:
        raise SystemExit(f"scan found {len(ids)} findings, expected {total}")
    decide(
        store,
        ids,
        Decision.APPROVE,
        actor="bench",
        approvers=config.cleanup.cli_approvers,
        actionable=set(build_cleaners(config)),
        source={"via": "bench"},
    )
    return config, store, scan_seconds


def cleanup(config: Any, store: Any, *, execute: bool, profile: bool = False) -> Phase:
    """One CleanupRun over every approved finding, with freshly built counting cleaners."""
    from cleaners import build_cleaners
    from costbot.cleanup import CleanupRun

    counter = CallCounter()
    cleaners = build_cleaners(config, session_factory=counter.session_factory)
    run: Callable[[], Any] = CleanupRun(config, store, cleaners, execute=execute).run
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    report = profiler.runcall(run) if profiler is not None else run()
    seconds = time.perf_counter() - started
    stages = Counter(str(line.stage) for line in report.lines)
    text = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        text = out.getvalue()
    return Phase("execute" if execute else "dry run", seconds, stages, counter, text)


# -- the audit ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditCheck:
    """What the store's audit tables say about the execute run."""

    findings: int
    actions: int
    open_actions: int
    action_results: Counter[str]
    bad_action_findings: list[str]
    intent_events: int
    result_events: int
    bad_event_findings: list[str]
    dry_run_events: int
    statuses: Counter[str]

    @property
    def ok(self) -> bool:
        """Exactly one intent and one result per finding, in both tables."""
        return (
            self.actions == self.findings
            and self.open_actions == 0
            and not self.bad_action_findings
            and self.intent_events == self.result_events == self.findings
            and not self.bad_event_findings
        )


def check_audit(path: Path) -> AuditCheck:
    """Read the actions and events tables with sqlite3."""
    with closing(sqlite3.connect(path)) as conn:
        statuses = Counter(dict(conn.execute("SELECT status, COUNT(*) FROM findings GROUP BY 1")))
        findings = sum(statuses.values())
        actions = conn.execute("SELECT COUNT(*) FROM actions").fetchone()[0]
        open_actions = conn.execute("SELECT COUNT(*) FROM actions WHERE result IS NULL").fetchone()[
            0
        ]
        results = Counter(
            dict(conn.execute("SELECT COALESCE(result, 'NULL'), COUNT(*) FROM actions GROUP BY 1"))
        )
        bad_actions = [
            row[0]
            for row in conn.execute(
                "SELECT f.id FROM findings f LEFT JOIN actions a ON a.finding_id = f.id"
                " GROUP BY f.id HAVING COUNT(a.id) != 1 OR COUNT(a.result) != 1"
            )
        ]
        events = Counter(
            dict(
                conn.execute(
                    "SELECT type, COUNT(*) FROM events WHERE type IN ('intent', 'result',"
                    " 'dry_run') GROUP BY type"
                )
            )
        )
        bad_events = [
            row[0]
            for row in conn.execute(
                "SELECT f.id FROM findings f LEFT JOIN events e ON e.finding_id = f.id"
                " GROUP BY f.id HAVING SUM(e.type = 'intent') != 1 OR SUM(e.type = 'result') != 1"
            )
        ]
    return AuditCheck(
        findings=findings,
        actions=actions,
        open_actions=open_actions,
        action_results=results,
        bad_action_findings=bad_actions,
        intent_events=events["intent"],
        result_events=events["result"],
        bad_event_findings=bad_events,
        dry_run_events=events["dry_run"],
        statuses=statuses,
    )


# -- the report --------------------------------------------------------------------------------


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def print_phase(phase: Phase, n: int) -> None:
    """Wall time, API calls per finding, per operation, and clients built."""
    calls = sum(phase.counter.calls.values())
    clients = sum(phase.counter.clients.values())
    print(
        f"{phase.name}: wall {phase.seconds:.2f} s ({1000 * phase.seconds / n:.1f} ms/finding), "
        f"stages: {_counts(phase.stages)}"
    )
    api_s = sum(phase.counter.seconds.values())
    client_s = phase.counter.client_seconds
    print(f"  API calls: {calls} total, {calls / n:.2f} per finding")
    print(f"  boto3 clients created: {clients} ({clients / n:.2f} per finding)")
    print(
        f"  wall split: API calls {api_s:.2f} s, creating clients {client_s:.2f} s, "
        f"rest (store, costbot) {phase.seconds - api_s - client_s:.2f} s"
    )
    print(f"  {'operation':<34} {'calls':>6} {'per finding':>12} {'client s':>9}")
    for op, count in sorted(phase.counter.calls.items()):
        print(f"  {op:<34} {count:>6} {count / n:>12.3f} {phase.counter.seconds[op]:>9.2f}")


def print_audit(audit: AuditCheck) -> None:
    """The audit check's figures and its verdict."""
    print(
        f"audit: findings {audit.findings} ({_counts(audit.statuses)}); "
        f"actions rows {audit.actions}, open {audit.open_actions}, "
        f"results: {_counts(audit.action_results)}"
    )
    print(
        f"  events: intent {audit.intent_events}, result {audit.result_events}, "
        f"dry_run {audit.dry_run_events}"
    )
    print(
        f"  findings without exactly one intent+result: actions table "
        f"{len(audit.bad_action_findings)}, events table {len(audit.bad_event_findings)}"
    )
    print(f"  audit check: {'OK' if audit.ok else 'FAILED'}")


def progress(what: str) -> None:
    """A progress line on stderr (the results go to stdout at the end)."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}...", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Start moto_server, seed it, scan and approve, dry-run and execute, check the audit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--findings", type=int, default=1000, help="N resources (= findings)")
    parser.add_argument("--regions", type=int, default=2, choices=range(1, len(REGIONS) + 1))
    parser.add_argument(
        "--ip-share", type=float, default=0.25, help="fraction of N that are Elastic IPs"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the execute run")
    args = parser.parse_args(argv)
    n = args.findings
    plans = make_plans(n, args.regions, args.ip_share)
    with tempfile.TemporaryDirectory(prefix="costbot-bench-") as tmp:
        workdir = Path(tmp)
        process, url = start_moto(workdir / "moto.log")
        try:
            progress(f"seeding {n} resources")
            seed_seconds = seed(url, plans)
            progress("scanning and approving")
            config, store, scan_seconds = scan_and_approve(url, plans, workdir)
            progress("cleanup dry run")
            dry = cleanup(config, store, execute=False)
            progress("cleanup execute")
            real = cleanup(config, store, execute=True, profile=args.profile)
        finally:
            stop(process)
        audit = check_audit(workdir / "bench.db")
    planned = ", ".join(f"{p.region} {p.volumes} vol + {p.addresses} EIP" for p in plans)
    print(f"N={n} findings ({planned})")
    print(f"seed: {seed_seconds:.1f} s (moto_server + boto3; not part of the cleanup)")
    print(f"scan + approve: scan {scan_seconds:.2f} s")
    print_phase(dry, n)
    print_phase(real, n)
    print_audit(audit)
    if real.profile:
        print("\ncProfile of the execute run (top 25 by cumulative time):")
        print(real.profile)
    if not audit.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
