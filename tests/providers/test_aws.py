"""AWS inventory and the three waste rules, driven through run_scan against moto's in-process AWS.

Every expectation is computed from what the test seeded: sizes x the bundled per-GB rate read
straight from costbot/data/aws_prices.json, vCPU counts of the m5 family (public AWS facts),
and plain date arithmetic. Failures and page sizes are injected with botocore event hooks on
the real clients, never by patching costbot.
"""

from __future__ import annotations

import functools
import json
import math
import random
import textwrap
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse

import costbot
from costbot.config import Config
from costbot.demo import backdate_launch, backdate_stop, put_cpu_hours
from costbot.errors import ConfigError
from costbot.model import Finding, Kind, Provider
from costbot.pricing import AwsPriceBook
from costbot.providers import build_providers
from costbot.providers.aws import AwsProvider
from costbot.scan import ScanReport, run_scan
from costbot.store import Store
from tests.conftest import make_config

REGION = "us-east-1"
ZONE = "us-east-1a"
DEFAULT_ACCOUNT = "123456789012"
"""The account moto answers for plain (not assumed) credentials."""
HOURS_PER_MONTH = 730
PRICES: dict[str, Any] = json.loads(
    (Path(costbot.__file__).parent / "data" / "aws_prices.json").read_text("utf-8")
)
M5_VCPUS = {"m5.large": 2, "m5.xlarge": 4, "m5.2xlarge": 8, "m5.4xlarge": 16}
"""Published vCPU counts of the m5 sizes the oversized tests can land on."""

pytestmark = pytest.mark.usefixtures("aws")


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def config(extra: str = "", providers: str = f"aws:\n  regions: [{REGION}]") -> Config:
    """A config scanning `providers` (YAML under the providers key) with `extra` sections."""
    base = "providers:\n" + textwrap.indent(textwrap.dedent(providers).strip(), "  ") + "\n"
    return make_config(base + textwrap.dedent(extra))


IDLE_NOW = """
rules:
  idle_volume:
    min_unattached_days: 0
  unattached_ip:
    min_unattached_days: 0
"""
"""Rules that report unattached volumes and IPs on the first scan."""


_LOADER = botocore.loaders.create_loader()


def session_factory(**hooks: Callable[..., Any]) -> Callable[..., boto3.Session]:
    """A boto3.Session factory for AwsProvider: real sessions sharing one botocore data loader
    (so the EC2 service model is parsed once per test run, not once per session), with the
    given botocore event handlers registered on every session it makes."""

    def make(**kwargs: Any) -> boto3.Session:
        core = botocore.session.get_session()
        core.register_component("data_loader", _LOADER)
        session = boto3.Session(botocore_session=core, **kwargs)
        for event, handler in hooks.items():
            session.events.register(event, handler)
        return session

    return make


def provider(cfg: Config, factory: Callable[..., boto3.Session] | None = None) -> AwsProvider:
    assert cfg.providers.aws is not None
    return AwsProvider(
        cfg.providers.aws,
        cfg.rules.oversized_instance,
        session_factory=factory or session_factory(),
    )


def scan(
    cfg: Config,
    store: Store,
    now: datetime,
    factory: Callable[..., boto3.Session] | None = None,
) -> ScanReport:
    prices = {Provider.AWS: AwsPriceBook(live=False)}
    return run_scan(cfg, store, [provider(cfg, factory)], prices, now=now)


@functools.cache
def aws_client(service: str, region: str = REGION) -> Any:
    """A seeding client (cached: moto intercepts every client, so one serves every test)."""
    return session_factory()().client(service, region_name=region)


def ec2_client(region: str = REGION) -> Any:
    return aws_client("ec2", region)


def tag_specs(resource_type: str, tags: dict[str, str] | None) -> list[dict[str, Any]]:
    if not tags:
        return []
    return [
        {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    ]


def create_volume(size: int = 100, tags: dict[str, str] | None = None) -> str:
    """A gp2 volume in ZONE, unattached."""
    response = ec2_client().create_volume(
        AvailabilityZone=ZONE,
        Size=size,
        VolumeType="gp2",
        TagSpecifications=tag_specs("volume", tags),
    )
    return str(response["VolumeId"])


def launch(instance_type: str = "m5.2xlarge", tags: dict[str, str] | None = None) -> str:
    response = ec2_client().run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType=instance_type,
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=tag_specs("instance", tags),
    )
    return str(response["Instances"][0]["InstanceId"])


def attach(volume_id: str, instance_id: str) -> None:
    ec2_client().attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")


def stopped_instance(now: datetime, days: float) -> str:
    instance_id = launch("m5.large")
    ec2_client().stop_instances(InstanceIds=[instance_id])
    backdate_stop(REGION, instance_id, now - timedelta(days=days))
    return instance_id


def rated_instance(
    now: datetime,
    avg: float | None,
    peak: float | None,
    instance_type: str = "m5.2xlarge",
    *,
    age_days: float = 90,
    metric_days: int = 14,
    tags: dict[str, str] | None = None,
) -> str:
    """A running instance launched age_days ago with hourly CPU statistics (none if avg is None)."""
    instance_id = launch(instance_type, tags)
    backdate_launch(REGION, instance_id, now - timedelta(days=age_days))
    if avg is not None and peak is not None:
        put_cpu_hours(
            aws_client("cloudwatch"),
            instance_id,
            now,
            metric_days,
            avg,
            peak,
            random.Random(instance_id),
        )
    return instance_id


def found(report: ScanReport, kind: Kind) -> dict[str, Finding]:
    return {f.resource_id: f for f in report.findings if f.kind is kind}


def skipped(report: ScanReport, kind: Kind, *words: str) -> int:
    """How many resources of `kind` the scan skipped with a reason containing every word."""
    return sum(
        n
        for unit in report.units
        for key, n in unit.skipped.items()
        if key.startswith(f"{kind}:") and all(w in key for w in words)
    )


def assert_ok(report: ScanReport) -> None:
    assert report.units, "the scan produced no units"
    assert not report.failed, [u.error for u in report.failed]


def gp2_rate(region: str = REGION) -> float:
    return float(PRICES["ebs"][region]["gp2"])


def m5_monthly(instance_type: str) -> float:
    return (
        float(PRICES["ec2_large_hour"][REGION]["m5"])
        * M5_VCPUS[instance_type]
        / 2
        * HOURS_PER_MONTH
    )


def expected_m5_target(current: str, avg: float, peak: float) -> str:
    """The smallest m5 size keeping peak x old/new vCPUs <= 80 % and avg x old/new <= 40 %."""
    old = M5_VCPUS[current]
    fits = [
        name
        for name, vcpus in M5_VCPUS.items()
        if vcpus < old and peak * old / vcpus <= 80 and avg * old / vcpus <= 40
    ]
    return min(fits, key=M5_VCPUS.__getitem__)


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


def error_response(url: str, status: int, body: str) -> AWSResponse:
    return AWSResponse(url, status, {}, _Body(body.encode()))


# -- idle volumes ------------------------------------------------------------------------------


def test_unattached_volume_seen_for_min_days_is_a_finding(store: Store, now: datetime) -> None:
    volume = create_volume(size=120)
    cfg = config()  # default min_unattached_days: 7
    earlier = now - timedelta(days=8)

    # the production wiring: build_providers() with plain boto3 sessions
    prices = {Provider.AWS: AwsPriceBook(live=False)}
    first = run_scan(cfg, store, build_providers(cfg), prices, now=earlier)
    second = run_scan(cfg, store, build_providers(cfg), prices, now=now)

    assert_ok(first)
    assert volume not in found(first, Kind.IDLE_VOLUME)
    finding = found(second, Kind.IDLE_VOLUME)[volume]
    assert finding.monthly_cost_usd == pytest.approx(120 * gp2_rate())
    assert finding.monthly_savings_usd == pytest.approx(120 * gp2_rate())
    assert finding.price_source == "bundled"
    assert finding.details["idle_reason"] == "unattached"
    assert finding.details["idle_days"] == pytest.approx(8)
    assert store.get(finding.id).first_seen_unattached == earlier


def test_unattached_volume_seen_for_less_than_min_days_is_not_a_finding(
    store: Store, now: datetime
) -> None:
    volume = create_volume()
    cfg = config()

    scan(cfg, store, now - timedelta(days=3))
    report = scan(cfg, store, now)

    assert_ok(report)
    assert volume not in found(report, Kind.IDLE_VOLUME)


def test_zero_min_unattached_days_reports_on_first_scan(store: Store, now: datetime) -> None:
    volume = create_volume(size=30)

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert found(report, Kind.IDLE_VOLUME)[volume].monthly_cost_usd == pytest.approx(
        30 * gp2_rate()
    )


def test_volume_attached_to_running_instance_is_not_a_finding(store: Store, now: datetime) -> None:
    volume = create_volume()
    attach(volume, launch("m5.large"))

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert found(report, Kind.IDLE_VOLUME) == {}


def test_volume_attached_only_to_instance_stopped_30_days_is_a_finding(
    store: Store, now: datetime
) -> None:
    instance = stopped_instance(now, days=30)
    volume = create_volume(size=200)
    attach(volume, instance)

    report = scan(config(), store, now)

    assert_ok(report)
    finding = found(report, Kind.IDLE_VOLUME)[volume]
    assert finding.details["idle_reason"] == "attached_to_stopped_instance"
    assert finding.details["stopped_instances"] == [instance]
    assert finding.details["idle_days"] == pytest.approx(30)
    assert finding.monthly_cost_usd == pytest.approx(200 * gp2_rate())


def test_volume_attached_to_instance_stopped_5_days_is_not_a_finding(
    store: Store, now: datetime
) -> None:
    instance = stopped_instance(now, days=5)
    volume = create_volume()
    attach(volume, instance)

    report = scan(config(), store, now)

    assert_ok(report)
    assert volume not in found(report, Kind.IDLE_VOLUME)


def test_skip_tagged_volume_is_not_a_finding(store: Store, now: datetime) -> None:
    kept = create_volume(tags={"costbot:skip": "golden image source"})
    idle = create_volume()

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert set(found(report, Kind.IDLE_VOLUME)) == {idle}
    assert kept not in found(report, Kind.IDLE_VOLUME)
    assert skipped(report, Kind.IDLE_VOLUME, "costbot:skip") == 1


def test_kubernetes_volume_is_not_a_finding_by_default(store: Store, now: datetime) -> None:
    pv = create_volume(tags={"kubernetes.io/created-for/pvc/name": "data-postgres-0"})

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert pv not in found(report, Kind.IDLE_VOLUME)
    assert skipped(report, Kind.IDLE_VOLUME, "Kubernetes") == 1


def test_kubernetes_volume_is_a_finding_when_included(store: Store, now: datetime) -> None:
    pv = create_volume(tags={"kubernetes.io/created-for/pvc/name": "data-postgres-0"})
    cfg = config(IDLE_NOW.replace("idle_volume:", "idle_volume:\n    include_kubernetes: true"))

    report = scan(cfg, store, now)

    assert_ok(report)
    assert pv in found(report, Kind.IDLE_VOLUME)


def test_keep_until_in_the_future_is_not_a_finding(store: Store, now: datetime) -> None:
    until = (now + timedelta(days=10)).date().isoformat()
    kept = create_volume(tags={"costbot:keep-until": until})

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert kept not in found(report, Kind.IDLE_VOLUME)
    assert skipped(report, Kind.IDLE_VOLUME, until) == 1


def test_keep_until_in_the_past_is_a_finding(store: Store, now: datetime) -> None:
    expired = create_volume(
        tags={"costbot:keep-until": (now - timedelta(days=1)).date().isoformat()}
    )

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert expired in found(report, Kind.IDLE_VOLUME)


def test_config_excluded_volume_is_not_a_finding(store: Store, now: datetime) -> None:
    excluded = create_volume()
    other = create_volume()
    cfg = config(
        IDLE_NOW
        + f"""
exclusions:
  resources:
    - id: {excluded}
      reason: restore drill next week
"""
    )

    report = scan(cfg, store, now)

    assert_ok(report)
    assert set(found(report, Kind.IDLE_VOLUME)) == {other}
    assert skipped(report, Kind.IDLE_VOLUME, "restore drill next week") == 1


def test_config_exclusion_past_its_date_no_longer_excludes(store: Store, now: datetime) -> None:
    volume = create_volume()
    cfg = config(
        IDLE_NOW
        + f"""
exclusions:
  resources:
    - id: {volume}
      reason: was needed last month
      until: {(now - timedelta(days=1)).date().isoformat()}
"""
    )

    report = scan(cfg, store, now)

    assert volume in found(report, Kind.IDLE_VOLUME)


# -- unattached public IPs ---------------------------------------------------------------------


def test_unassociated_eip_is_a_finding_costing_the_ipv4_rate(store: Store, now: datetime) -> None:
    address = ec2_client().allocate_address(Domain="vpc")

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    finding = found(report, Kind.UNATTACHED_IP)[address["AllocationId"]]
    assert finding.monthly_cost_usd == pytest.approx(0.005 * 730)
    assert finding.monthly_cost_usd == pytest.approx(PRICES["public_ipv4_hour"] * HOURS_PER_MONTH)
    assert finding.monthly_savings_usd == pytest.approx(0.005 * 730)
    assert finding.details["ip"] == address["PublicIp"]


def test_unassociated_eip_waits_for_the_default_one_day(store: Store, now: datetime) -> None:
    address = ec2_client().allocate_address(Domain="vpc")["AllocationId"]

    first = scan(config(), store, now - timedelta(days=1))
    second = scan(config(), store, now)

    assert address not in found(first, Kind.UNATTACHED_IP)
    assert address in found(second, Kind.UNATTACHED_IP)


def test_eip_associated_to_a_network_interface_only_is_not_a_finding(
    store: Store, now: datetime
) -> None:
    ec2 = ec2_client()
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [ZONE]}])
    eni = ec2.create_network_interface(SubnetId=subnet["Subnets"][0]["SubnetId"])
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(
        AllocationId=address, NetworkInterfaceId=eni["NetworkInterface"]["NetworkInterfaceId"]
    )
    described = ec2.describe_addresses(AllocationIds=[address])["Addresses"][0]
    assert not described.get("InstanceId")  # the NAT-gateway trap: associated, no instance

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert address not in found(report, Kind.UNATTACHED_IP)


def test_eip_of_a_nat_gateway_is_not_a_finding(store: Store, now: datetime) -> None:
    ec2 = ec2_client()
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [ZONE]}])
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_nat_gateway(SubnetId=subnet["Subnets"][0]["SubnetId"], AllocationId=address)

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert address not in found(report, Kind.UNATTACHED_IP)


def test_skip_tagged_eip_is_not_a_finding(store: Store, now: datetime) -> None:
    ec2 = ec2_client()
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_tags(Resources=[address], Tags=[{"Key": "costbot:skip", "Value": "DNS points here"}])

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert found(report, Kind.UNATTACHED_IP) == {}
    assert skipped(report, Kind.UNATTACHED_IP, "costbot:skip") == 1


def test_eip_associated_to_an_instance_is_not_a_finding(store: Store, now: datetime) -> None:
    ec2 = ec2_client()
    address = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(AllocationId=address, InstanceId=launch("m5.large"))

    report = scan(config(IDLE_NOW), store, now)

    assert_ok(report)
    assert found(report, Kind.UNATTACHED_IP) == {}


# -- oversized instances -----------------------------------------------------------------------


def test_idle_m5_2xlarge_is_oversized_with_smallest_fitting_size(
    store: Store, now: datetime
) -> None:
    instance = rated_instance(now, avg=3, peak=12)
    # put_cpu_hours keeps every hourly mean within +-20 % of avg and the maximum exactly at peak.
    target = expected_m5_target("m5.2xlarge", avg=3 * 1.2, peak=12)
    assert target == expected_m5_target("m5.2xlarge", avg=3 * 0.8, peak=12)

    report = scan(config(), store, now)

    assert_ok(report)
    finding = found(report, Kind.OVERSIZED_INSTANCE)[instance]
    assert finding.details["recommended_type"] == target
    assert finding.details["recommended_vcpus"] == M5_VCPUS[target]
    assert finding.details["cpu_peak_percent"] == pytest.approx(12)
    assert 3 * 0.8 <= finding.details["cpu_average_percent"] <= 3 * 1.2
    assert finding.monthly_cost_usd == pytest.approx(m5_monthly("m5.2xlarge"))
    assert finding.monthly_savings_usd == pytest.approx(
        m5_monthly("m5.2xlarge") - m5_monthly(target)
    )
    assert finding.details["managed_group"] is None


def test_peak_30_percent_on_m5_2xlarge_recommends_the_size_keeping_peak_under_80(
    store: Store, now: datetime
) -> None:
    instance = rated_instance(now, avg=3, peak=30)
    target = expected_m5_target("m5.2xlarge", avg=3 * 1.2, peak=30)

    report = scan(config(), store, now)

    finding = found(report, Kind.OVERSIZED_INSTANCE)[instance]
    assert finding.details["recommended_type"] == target
    assert finding.details["projected_peak_percent"] == pytest.approx(
        30 * M5_VCPUS["m5.2xlarge"] / M5_VCPUS[target]
    )


def test_spiky_instance_is_not_oversized(store: Store, now: datetime) -> None:
    rated_instance(now, avg=3, peak=85)

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


def test_busy_instance_is_not_oversized(store: Store, now: datetime) -> None:
    rated_instance(now, avg=55, peak=90)

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


def test_instance_without_metrics_is_unknown_not_oversized(store: Store, now: datetime) -> None:
    rated_instance(now, avg=None, peak=None)

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE) == 1
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "unknown") == 1


def test_stopped_instance_is_not_oversized(store: Store, now: datetime) -> None:
    instance = rated_instance(now, avg=3, peak=12)
    ec2_client().stop_instances(InstanceIds=[instance])

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


def test_terminated_instance_is_not_oversized(store: Store, now: datetime) -> None:
    instance = rated_instance(now, avg=3, peak=12)
    ec2_client().terminate_instances(InstanceIds=[instance])

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}


def test_burstable_instance_is_not_oversized(store: Store, now: datetime) -> None:
    rated_instance(now, avg=1, peak=5, instance_type="t3.xlarge")

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "burstable") == 1


def test_instance_in_an_auto_scaling_group_is_a_finding_naming_the_group(
    store: Store, now: datetime
) -> None:
    ec2_client().create_launch_template(
        LaunchTemplateName="queue-workers",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "m5.2xlarge"},
    )
    aws_client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="queue-workers",
        LaunchTemplate={"LaunchTemplateName": "queue-workers", "Version": "$Latest"},
        MinSize=1,
        MaxSize=1,
        AvailabilityZones=[ZONE],
    )
    reservations = ec2_client().describe_instances()["Reservations"]
    (instance,) = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    backdate_launch(REGION, instance, now - timedelta(days=90))
    put_cpu_hours(aws_client("cloudwatch"), instance, now, 14, 2, 9, random.Random(1))

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE)[instance].details["managed_group"] == (
        "queue-workers"
    )


def test_instance_launched_2_days_ago_is_not_judged(store: Store, now: datetime) -> None:
    rated_instance(now, avg=3, peak=12, age_days=2, metric_days=2)

    report = scan(config(), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "look-back") == 1


def test_skip_tagged_instance_is_not_oversized(store: Store, now: datetime) -> None:
    rated_instance(now, avg=1, peak=4, tags={"costbot:skip": "owner on leave"})

    report = scan(config(), store, now)

    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "costbot:skip") == 1


P995 = """
rules:
  oversized_instance:
    peak_percentile: 99.5
"""


def test_p99_5_reads_hourly_points_and_ignores_a_single_spike_hour(
    store: Store, now: datetime
) -> None:
    # One hour at 85 % out of 336: the true maximum rules it out, the 99.5th percentile does not.
    instance = rated_instance(now, avg=3, peak=85)

    at_max = scan(config(), store, now)
    at_p995 = scan(config(P995), store, now)

    assert instance not in found(at_max, Kind.OVERSIZED_INSTANCE)
    finding = found(at_p995, Kind.OVERSIZED_INSTANCE)[instance]
    assert finding.details["cpu_points"] == 14 * 24
    # every hour but the spike peaks at no more than 1.6 x a mean of at most 1.2 x avg
    assert finding.details["cpu_peak_percent"] <= 3 * 1.2 * 1.6
    assert "p99.5" in finding.reason


def test_p99_5_with_too_few_hourly_points_is_unknown(store: Store, now: datetime) -> None:
    # 3 days of points in a 14-day window is ~21 % coverage, below the 80 % minimum.
    rated_instance(now, avg=3, peak=12, metric_days=3)

    report = scan(config(P995), store, now)

    assert_ok(report)
    assert found(report, Kind.OVERSIZED_INSTANCE) == {}
    assert skipped(report, Kind.OVERSIZED_INSTANCE, "unknown") == 1


# -- inventory mechanics: batching, paging, accounts -------------------------------------------


@pytest.mark.parametrize("count", [1, 300])
def test_cpu_of_many_instances_costs_ceil_2n_over_500_get_metric_data_calls(
    now: datetime, count: int
) -> None:
    ec2 = ec2_client()
    cloudwatch = aws_client("cloudwatch")
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(
            ImageId="ami-12345678", MinCount=count, MaxCount=count, InstanceType="m5.2xlarge"
        )["Instances"]
    ]
    seeded: dict[str, float] = {}
    data = []
    for n, instance_id in enumerate(ids):
        backdate_launch(REGION, instance_id, now - timedelta(days=90))
        seeded[instance_id] = value = float(n % 97) + 0.5
        data.append(
            {
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": now - timedelta(days=1),
                "StatisticValues": {
                    "SampleCount": 1,
                    "Sum": value,
                    "Minimum": value,
                    "Maximum": value,
                },
                "Unit": "Percent",
            }
        )
    for start in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AWS/EC2", MetricData=data[start : start + 1000])
    calls: list[str] = []
    aws = provider(
        config(),
        session_factory(
            **{"before-call.cloudwatch.GetMetricData": lambda **_: calls.append("GetMetricData")}
        ),
    )

    (unit,), failures = aws.units()
    inventory = aws.collect(unit, now)

    assert failures == []
    assert len(calls) == math.ceil(2 * count / 500)
    stats = {i.resource_id: i.cpu for i in inventory.instances}
    assert set(stats) == set(ids)
    assert {iid: cpu.average if cpu else None for iid, cpu in stats.items()} == seeded
    assert {iid: cpu.peak if cpu else None for iid, cpu in stats.items()} == seeded


def test_describe_instances_pages_are_all_read(now: datetime) -> None:
    # moto pages describe_instances by reservation, so twelve one-instance reservations with the
    # page size lowered to EC2's minimum of 5 (through a botocore hook) make three pages.
    ids = {launch("m5.large") for _ in range(12)}
    calls: list[int] = []

    def small_pages(params: dict[str, Any], **_: Any) -> None:
        params["MaxResults"] = 5

    aws = provider(
        config(),
        session_factory(
            **{
                "before-parameter-build.ec2.DescribeInstances": small_pages,
                "before-call.ec2.DescribeInstances": lambda **_: calls.append(1),
            }
        ),
    )

    (unit,), _ = aws.units()
    inventory = aws.collect(unit, now)

    assert len(calls) == math.ceil(12 / 5)
    assert {i.resource_id for i in inventory.instances} == ids


def test_stop_time_and_auto_scaling_group_come_from_describe_instances(now: datetime) -> None:
    stopped = stopped_instance(now, days=45)
    grouped = launch("m5.large", {"aws:autoscaling:groupName": "web"})
    aws = provider(config())
    (unit,), _ = aws.units()

    instances = {i.resource_id: i for i in aws.collect(unit, now).instances}

    assert instances[stopped].state == "stopped"
    assert instances[stopped].stopped_since == now - timedelta(days=45)
    assert instances[grouped].state == "running"
    assert instances[grouped].managed_group == "web"
    assert unit.account == DEFAULT_ACCOUNT


ROLE_111 = "arn:aws:iam::111111111111:role/costbot"
ROLE_222 = "arn:aws:iam::222222222222:role/costbot"


def assumed_session(role_arn: str) -> boto3.Session:
    creds = aws_client("sts").assume_role(RoleArn=role_arn, RoleSessionName="seeding")[
        "Credentials"
    ]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=REGION,
    )


def test_assumed_role_account_is_scanned_as_that_account(store: Store, now: datetime) -> None:
    theirs = (
        assumed_session(ROLE_111)
        .client("ec2")
        .create_volume(AvailabilityZone=ZONE, Size=10, VolumeType="gp2")["VolumeId"]
    )
    ours = create_volume()  # in moto's default account, which the config does not list
    cfg = config(
        IDLE_NOW,
        providers=f"""
        aws:
          regions: [{REGION}, eu-west-1]
          accounts:
            - id: "111111111111"
              role_arn: {ROLE_111}
        """,
    )

    report = scan(cfg, store, now)

    assert_ok(report)
    assert {(u.unit.account, u.unit.region) for u in report.units} == {
        ("111111111111", REGION),
        ("111111111111", "eu-west-1"),
    }
    assert set(found(report, Kind.IDLE_VOLUME)) == {theirs}
    assert ours not in found(report, Kind.IDLE_VOLUME)
    assert store.get(found(report, Kind.IDLE_VOLUME)[theirs].id).account == "111111111111"


def test_account_whose_role_cannot_be_assumed_fails_alone(store: Store, now: datetime) -> None:
    # moto lets any role be assumed, so the refusal for account 222222222222 is injected as a
    # real STS AccessDenied response through a botocore before-send hook.
    volume = (
        assumed_session(ROLE_111)
        .client("ec2")
        .create_volume(AvailabilityZone=ZONE, Size=10, VolumeType="gp2")["VolumeId"]
    )

    def deny_222(request: Any, **_: Any) -> AWSResponse | None:
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if "222222222222" not in body:
            return None
        return error_response(
            request.url,
            403,
            "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
            "<Message>not authorized to perform sts:AssumeRole</Message></Error>"
            "<RequestId>r1</RequestId></ErrorResponse>",
        )

    cfg = config(
        IDLE_NOW,
        providers=f"""
        aws:
          regions: [{REGION}]
          accounts:
            - id: "111111111111"
              role_arn: {ROLE_111}
            - id: "222222222222"
              role_arn: {ROLE_222}
        """,
    )

    report = scan(cfg, store, now, session_factory(**{"before-send.sts.AssumeRole": deny_222}))

    (failed,) = report.failed
    assert (failed.unit.account, failed.unit.region) == ("222222222222", REGION)
    assert failed.error is not None
    assert "sts:AssumeRole" in failed.error
    assert "AccessDenied" in failed.error
    assert set(found(report, Kind.IDLE_VOLUME)) == {volume}
    latest = {(s["account"], s["region"]): s for s in store.latest_scans("aws")}
    assert latest[("222222222222", REGION)]["ok"] == 0
    assert latest[("111111111111", REGION)]["ok"] == 1


def test_role_arn_of_another_account_than_the_configured_id_is_refused(
    store: Store, now: datetime
) -> None:
    assumed_session(ROLE_222).client("ec2").create_volume(
        AvailabilityZone=ZONE, Size=10, VolumeType="gp2"
    )
    providers = f"""
        aws:
          regions: [{REGION}]
          accounts:
            - id: "111111111111"
              role_arn: {ROLE_222}
        """
    try:
        cfg = config(IDLE_NOW, providers=providers)
    except ConfigError:
        return  # refused when the config is read: fine
    report = scan(cfg, store, now)

    # refused when the account is opened: the unit fails and nothing is recorded under 111...
    assert [u.unit.account for u in report.failed] == ["111111111111"]
    assert store.findings() == []
