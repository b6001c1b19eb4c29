"""The scan benchmark's estate: how many volumes, addresses and instances each region gets
(RegionPlan), and seeding them into moto_server with CPU metrics at a chosen granularity."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

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
