"""The demo cloud behind `costbot demo`: an in-process AWS emulator (moto) seeded with a small,
realistic estate in two regions, plus costbot's own GCP and Azure emulators (demo_clouds.py),
all scanned by the same scan -> store path as production.

The demo simulates history honestly: a first scan "8 days ago" (an injected clock), then
today's scan, so idle clocks have run long enough for findings to be due.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from costbot.approvals import Decision, decide
from costbot.cleanup import Cleaners, CleanupReport, CleanupRun, dry_run_findings
from costbot.config import Config, load_config
from costbot.costs.aws import AwsCosts
from costbot.demo_clouds import emulated_gcp_azure
from costbot.demo_costs import seed_cost_explorer
from costbot.digest import build_digest
from costbot.digest.chart import render_chart
from costbot.digest.compute import Digest
from costbot.errors import ConfigError
from costbot.model import Kind
from costbot.scan import ScanReport, run_scan
from costbot.slack.blocks import Message, summary_messages
from costbot.store import Store, StoredFinding, utcnow

DEMO_REGIONS = ("us-east-1", "eu-west-1")
HISTORY_DAYS = 8
DEMO_ENV = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
    "AWS_DEFAULT_REGION": "us-east-1",
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
DEMO_CONFIG = """\
# Written by `costbot demo`. The demo's clouds are emulators that stop when the demo ends;
# prices come from the bundled tables.
providers:
  aws:
    regions: [us-east-1, eu-west-1]
{clouds}
pricing:
  source: bundled
store:
  path: {store}
cleanup:
  execute: {execute}
"""
DEMO_APPROVER = "demo-approver"


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    report: ScanReport
    findings: list[StoredFinding]
    store_path: Path
    config_path: Path
    cleanup: CleanupReport | None = None
    slack_messages: list[Message] = field(default_factory=list)
    slack_json_path: Path | None = None
    digest: Digest | None = None
    chart_path: Path | None = None


@contextmanager
def emulated_aws() -> Iterator[None]:
    """Run the body against moto's in-process AWS, with throwaway credentials."""
    try:
        from moto import mock_aws
    except ImportError:
        raise ConfigError(
            "costbot demo needs the AWS emulator: pip install 'costbot[demo]'"
        ) from None
    saved = {k: os.environ.get(k) for k in (*DEMO_ENV, "AWS_PROFILE", "AWS_ENDPOINT_URL")}
    os.environ.update(DEMO_ENV)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        with mock_aws():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(
    store_path: Path | None = None,
    now: datetime | None = None,
    *,
    cleaners_factory: Callable[[Config], Cleaners] | None = None,
    execute: bool = False,
) -> DemoResult:
    """Seed the emulator, scan it twice (8 days ago and now), dry-run the findings, approve two
    and run the cleanup (a dry run unless `execute`)."""
    from costbot.providers import build_price_books, build_providers

    today = now or utcnow()
    workdir = Path(tempfile.mkdtemp(prefix="costbot-demo-"))
    store_path = (store_path or workdir / "costbot.db").resolve()
    config_path = workdir / "costbot.yaml"
    store = Store(store_path)
    cleanup = None
    digest: Digest | None = None
    chart: Path | None = None
    messages: list[Message] = []
    slack_json: Path | None = None
    with emulated_aws(), emulated_gcp_azure(today) as clouds:
        import boto3

        fragment = yaml.safe_dump(clouds, sort_keys=False)
        config_path.write_text(
            DEMO_CONFIG.format(
                store=store_path,
                execute=str(execute).lower(),
                clouds="\n".join(f"  {line}" for line in fragment.splitlines()),
            ),
            encoding="utf-8",
        )
        config = load_config(config_path)

        for region in DEMO_REGIONS:
            seed_region(boto3.Session(region_name=region), region, today)
        earlier = today - timedelta(days=HISTORY_DAYS)
        run_scan(
            config, store, build_providers(config), build_price_books(config, store), now=earlier
        )
        for region in DEMO_REGIONS:
            seed_fresh_volume(boto3.Session(region_name=region), region)
        report = run_scan(
            config, store, build_providers(config), build_price_books(config, store), now=today
        )
        if cleaners_factory is not None:
            cleaners = cleaners_factory(config)
            ids = {f.id for f in report.findings}
            dry_run_findings(store, cleaners, [f for f in store.findings() if f.id in ids], today)
            messages = summary_messages(
                [f for f in store.findings() if f.id in ids], actionable=set(cleaners), now=today
            )
            slack_json = workdir / "slack-summary.json"
            slack_json.write_text(json.dumps([m.blocks for m in messages], indent=2), "utf-8")
            chosen = _demo_approvals(store)
            decide(
                store,
                chosen,
                Decision.APPROVE,
                actor=DEMO_APPROVER,
                approvers=(),
                actionable=set(cleaners),
                source={"via": "demo"},
                now=today,
            )
            cleanup = CleanupRun(config, store, cleaners, execute=execute, now=today).run(chosen)
        seed_cost_explorer(today.date() - timedelta(weeks=8), today.date(), config.digest.metric)
        digest = build_digest(config, store, [AwsCosts(config.digest.metric)], {}, now=today)
        chart = render_chart(digest, workdir / f"costbot-{digest.week}.png")
    ids = {f.id for f in report.findings}
    findings = [f for f in store.findings(status=None) if f.id in ids]
    return DemoResult(
        report, findings, store_path, config_path, cleanup, messages, slack_json, digest, chart
    )


def _demo_approvals(store: Store) -> list[str]:
    """The demo's approver approves, on each cloud, its first unattached volume and unused IP."""
    chosen: list[str] = []
    for provider in ("aws", "gcp", "azure"):
        volumes = [
            f
            for f in store.findings(kind=Kind.IDLE_VOLUME)
            if f.provider == provider and f.details.get("idle_reason") == "unattached"
        ]
        addresses = [f for f in store.findings(kind=Kind.UNATTACHED_IP) if f.provider == provider]
        chosen += [f.id for f in (volumes[:1] + addresses[:1])]
    return chosen


# -- seeding -----------------------------------------------------------------------------------


def _tags(**tags: str) -> list[dict[str, Any]]:
    return _tag_list({k.replace("__", ":"): v for k, v in tags.items()})


def _tag_list(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def seed_region(session: Any, region: str, now: datetime) -> None:
    """A small estate: busy, idle, spiky, stopped and burstable instances, volumes and EIPs."""
    ec2 = session.client("ec2")
    cloudwatch = session.client("cloudwatch")
    zone = f"{region}a"
    rng = random.Random(region)
    fleet = [  # (name, type, avg %, peak %, extra tags)
        ("web-1", "m5.2xlarge", 55, 90, {}),
        ("web-2", "m5.2xlarge", 48, 85, {}),
        ("batch-worker", "m5.xlarge", 3, 12, {}),
        ("analytics", "r5.4xlarge", 4, 30, {}),
        ("reporting", "c5.2xlarge", 5, 85, {}),
        ("queue-asg", "m5.2xlarge", 2, 9, {"aws__autoscaling__groupName": "queue-workers"}),
        ("bastion", "t3.medium", 1, 5, {}),
        ("ml-sandbox", "m5.4xlarge", 1, 4, {"costbot__skip": "owner on leave"}),
        ("new-service", "m5.xlarge", None, None, {}),
    ]
    ids: dict[str, str] = {}
    for name, itype, avg, peak, extra in fleet:
        instance_id = _launch(ec2, itype, zone, Name=name, **extra)
        ids[name] = instance_id
        backdate_launch(region, instance_id, now - timedelta(days=90))
        if avg is not None and peak is not None:
            put_cpu_hours(cloudwatch, instance_id, now, 14, avg, peak, rng)
    legacy = _launch(ec2, "m5.large", zone, Name="legacy-app")
    ec2.stop_instances(InstanceIds=[legacy])
    backdate_stop(region, legacy, now - timedelta(days=45))
    data = ec2.create_volume(
        AvailabilityZone=zone,
        Size=500,
        VolumeType="gp2",
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(Name="legacy-app-data")}],
    )
    ec2.attach_volume(VolumeId=data["VolumeId"], InstanceId=legacy, Device="/dev/sdf")
    web_data = ec2.create_volume(AvailabilityZone=zone, Size=200, VolumeType="gp3")
    ec2.attach_volume(VolumeId=web_data["VolumeId"], InstanceId=ids["web-1"], Device="/dev/sdf")
    volumes: tuple[tuple[int, str, dict[str, Any], dict[str, str]], ...] = (
        (500, "gp2", {}, {"Name": "old-db-backup"}),
        (100, "gp3", {"Iops": 6000, "Throughput": 250}, {"Name": "perf-test-scratch"}),
        (1000, "st1", {}, {"Name": "logs-archive"}),
        (200, "io1", {"Iops": 5000}, {}),
        (50, "gp3", {}, {"Name": "golden-image-src", "costbot:skip": "yes"}),
        (20, "gp3", {}, {"kubernetes.io/created-for/pvc/name": "data-postgres-0"}),
    )
    for size, vtype, extra, tags in volumes:
        specs = [{"ResourceType": "volume", "Tags": _tag_list(tags)}] if tags else []
        ec2.create_volume(
            AvailabilityZone=zone, Size=size, VolumeType=vtype, TagSpecifications=specs, **extra
        )
    for tags in ({"Name": "old-vpn-endpoint"}, {}, {"costbot:skip": "DNS points here"}):
        address = ec2.allocate_address(Domain="vpc")
        if tags:
            ec2.create_tags(Resources=[address["AllocationId"]], Tags=_tag_list(tags))
    in_use = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=in_use["AllocationId"], InstanceId=ids["web-1"])
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [zone]}])
    eni = ec2.create_network_interface(SubnetId=subnet["Subnets"][0]["SubnetId"])
    nat_ip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(
        AllocationId=nat_ip["AllocationId"],
        NetworkInterfaceId=eni["NetworkInterface"]["NetworkInterfaceId"],
    )


def seed_fresh_volume(session: Any, region: str) -> None:
    """A volume detached only today: seen unattached, but not for long enough yet."""
    session.client("ec2").create_volume(
        AvailabilityZone=f"{region}a",
        Size=80,
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags(Name="just-detached")}],
    )


def _launch(ec2: Any, instance_type: str, zone: str, **tags: str) -> str:
    response = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        Placement={"AvailabilityZone": zone},
        TagSpecifications=[{"ResourceType": "instance", "Tags": _tags(**tags)}],
    )
    return str(response["Instances"][0]["InstanceId"])


def _backend_instance(region: str, instance_id: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
    from moto.ec2.models import ec2_backends

    return ec2_backends[DEFAULT_ACCOUNT_ID][region].get_instance(instance_id)


def backdate_launch(region: str, instance_id: str, launched: datetime) -> None:
    """Emulator seeding: moto stamps launches with the current time; the demo's fleet is older."""
    _backend_instance(region, instance_id).launch_time = launched


def backdate_stop(region: str, instance_id: str, when: datetime) -> None:
    """Emulator seeding: EC2 reports the stop time in StateTransitionReason."""
    stamp = when.strftime("%Y-%m-%d %H:%M:%S")
    _backend_instance(region, instance_id)._reason = f"User initiated ({stamp} GMT)"


def put_cpu_hours(
    cloudwatch: Any,
    instance_id: str,
    now: datetime,
    days: int,
    avg: float,
    peak: float,
    rng: random.Random,
) -> None:
    """Hourly pre-aggregated CPUUtilization statistics whose mean is ~avg and max is peak."""
    hours = days * 24
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    spike_hour = rng.randrange(hours)
    data = []
    for h in range(hours):
        mean = max(0.1, avg * rng.uniform(0.8, 1.2))
        top = peak if h == spike_hour else min(peak, mean * rng.uniform(1.1, 1.6))
        data.append(
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": start + timedelta(hours=h, minutes=30),
                "StatisticValues": {
                    "SampleCount": 12,
                    "Sum": mean * 12,
                    "Minimum": mean / 2,
                    "Maximum": max(top, mean),
                },
                "Unit": "Percent",
            }
        )
    for i in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=data[i : i + 1000])
