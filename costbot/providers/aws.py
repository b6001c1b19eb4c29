"""Read-only AWS inventory: EBS volumes, Elastic IPs, EC2 instances with CPU statistics from
CloudWatch GetMetricData (≤ 500 queries per call), and instance sizes for right-sizing.

boto3's standard credential chain and AWS_ENDPOINT_URL work unchanged. Every SDK error is
re-raised as a ProviderError naming the account, region and operation.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from costbot.config import AwsConfig, OversizedInstanceRule
from costbot.errors import ProviderError
from costbot.model import (
    Address,
    CpuStats,
    Instance,
    InstanceSize,
    Inventory,
    Provider,
    Unit,
    UnitFailure,
    Volume,
)
from costbot.providers.aws_sessions import AwsSessions, aws_errors
from costbot.providers.cpu import cpu_stats, with_cpu, worth_rating
from costbot.ratelimit import RateLimiter

METRIC_QUERIES_PER_CALL = 500
STOP_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")
ASG_TAG = "aws:autoscaling:groupName"
STATE_NAMES = {
    "running": "running",
    "stopped": "stopped",
    "terminated": "terminated",
    "shutting-down": "terminated",
}


class AwsProvider:
    """Lists AWS units (account x region) and collects their inventories."""

    provider = Provider.AWS

    def __init__(
        self,
        config: AwsConfig,
        rule: OversizedInstanceRule,
        *,
        session_factory: Callable[..., boto3.Session] = boto3.Session,
        max_pool_connections: int = 10,
        sessions: AwsSessions | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._config = config
        self._rule = rule
        self.sessions = sessions or AwsSessions(
            config,
            session_factory=session_factory,
            max_pool_connections=max_pool_connections,
            rate_limiter=rate_limiter,
        )

    # -- units ---------------------------------------------------------------------------------

    def units(self) -> tuple[list[Unit], list[UnitFailure]]:
        """Every account x region to scan, and the accounts that could not be reached."""
        units: list[Unit] = []
        failures: list[UnitFailure] = []
        explicit = [] if self._config.regions == "all" else list(self._config.regions)
        try:
            targets = self.sessions.accounts()
        except ProviderError as exc:
            return [], [UnitFailure("organization", tuple(explicit or ["*"]), str(exc))]
        for account in targets:
            label = account.id if account else "default"
            try:
                account_id = self.sessions.open(account)
                regions = explicit or self._enabled_regions(account_id)
            except ProviderError as exc:
                failures.append(UnitFailure(label, tuple(explicit or ["*"]), str(exc)))
                continue
            units.extend(Unit(Provider.AWS, account_id, region) for region in regions)
        return units, failures

    def _enabled_regions(self, account_id: str) -> list[str]:
        with aws_errors(None, "ec2:DescribeRegions", account_id):
            ec2 = self.client(account_id, "ec2", "us-east-1")
            regions = ec2.describe_regions(AllRegions=False)["Regions"]
        return sorted(r["RegionName"] for r in regions)

    def client(self, account_id: str, service: str, region: str) -> Any:
        """A boto3 client for one account and region."""
        return self.sessions.client(account_id, service, region)

    # -- inventory -----------------------------------------------------------------------------

    def collect(self, unit: Unit, now: datetime) -> Inventory:
        """Everything the waste rules need from one account/region."""
        ec2 = self.client(unit.account, "ec2", unit.region)
        volumes = tuple(self._volumes(unit, ec2))
        addresses = tuple(self._addresses(unit, ec2))
        instances = list(self._instances(unit, ec2))
        to_rate = worth_rating(instances, now, self._rule.lookback_days)
        sizes = self._sizes(unit, ec2, {i.instance_type.split(".")[0] for i in to_rate})
        if to_rate:
            cloudwatch = self.client(unit.account, "cloudwatch", unit.region)
            stats = self._cpu(unit, cloudwatch, [i.resource_id for i in to_rate], now)
            instances = [with_cpu(i, stats.get(i.resource_id)) for i in instances]
        return Inventory(unit, volumes, addresses, tuple(instances), sizes)

    @property
    def _lookback(self) -> timedelta:
        return timedelta(days=self._rule.lookback_days)

    def _volumes(self, unit: Unit, ec2: Any) -> Iterator[Volume]:
        with aws_errors(unit, "ec2:DescribeVolumes"):
            pages = ec2.get_paginator("describe_volumes").paginate(
                PaginationConfig={"PageSize": 500}
            )
            for page in pages:
                for v in page["Volumes"]:
                    if v["State"] not in ("available", "in-use"):
                        continue
                    tags = _tags(v)
                    attached = tuple(
                        a["InstanceId"]
                        for a in v.get("Attachments", [])
                        if a.get("State") in ("attaching", "attached", "busy")
                    )
                    if v["State"] == "in-use" and not attached:
                        attached = ("(in use)",)
                    yield Volume(
                        unit=unit,
                        resource_id=v["VolumeId"],
                        size_gb=int(v["Size"]),
                        volume_type=v.get("VolumeType", "standard"),
                        attached_to=attached,
                        created_at=v.get("CreateTime"),
                        zone=v.get("AvailabilityZone", ""),
                        name=tags.get("Name", ""),
                        iops=v.get("Iops"),
                        throughput_mbps=v.get("Throughput"),
                        tags=tags,
                    )

    def _addresses(self, unit: Unit, ec2: Any) -> Iterator[Address]:
        with aws_errors(unit, "ec2:DescribeAddresses"):
            addresses = ec2.describe_addresses()["Addresses"]
        for a in addresses:
            tags = _tags(a)
            yield Address(
                unit=unit,
                resource_id=a.get("AllocationId") or a["PublicIp"],
                ip=a["PublicIp"],
                associated="AssociationId" in a,
                name=tags.get("Name", ""),
                tags=tags,
                details={
                    "domain": a.get("Domain", ""),
                    "network_interface_id": a.get("NetworkInterfaceId"),
                    "instance_id": a.get("InstanceId"),
                    "network_border_group": a.get("NetworkBorderGroup"),
                },
            )

    def _instances(self, unit: Unit, ec2: Any) -> Iterator[Instance]:
        with aws_errors(unit, "ec2:DescribeInstances"):
            pages = ec2.get_paginator("describe_instances").paginate(
                PaginationConfig={"PageSize": 1000}
            )
            for page in pages:
                for reservation in page["Reservations"]:
                    for i in reservation["Instances"]:
                        yield _instance(unit, i)

    def _sizes(
        self, unit: Unit, ec2: Any, families: Iterable[str]
    ) -> dict[str, tuple[InstanceSize, ...]]:
        found: dict[str, list[InstanceSize]] = defaultdict(list)
        wanted = sorted(families)
        for chunk in _chunks(wanted, 50):
            with aws_errors(unit, "ec2:DescribeInstanceTypes"):
                pages = ec2.get_paginator("describe_instance_types").paginate(
                    Filters=[{"Name": "instance-type", "Values": [f"{f}.*" for f in chunk]}]
                )
                for page in pages:
                    for t in page["InstanceTypes"]:
                        if t.get("BareMetal"):
                            continue
                        name = t["InstanceType"]
                        found[name.split(".")[0]].append(
                            InstanceSize(name, int(t["VCpuInfo"]["DefaultVCpus"]))
                        )
        return {f: tuple(sorted(s, key=lambda x: (x.vcpus, x.name))) for f, s in found.items()}

    def _cpu(
        self, unit: Unit, cloudwatch: Any, instance_ids: Sequence[str], now: datetime
    ) -> dict[str, CpuStats]:
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - self._lookback
        whole_window = self._rule.peak_percentile >= 100
        period = int(self._lookback.total_seconds()) if whole_window else 3600
        expected = 1 if whole_window else self._rule.lookback_days * 24
        stats: dict[str, CpuStats] = {}
        for chunk in _chunks(list(instance_ids), METRIC_QUERIES_PER_CALL // 2):
            values: dict[str, list[float]] = defaultdict(list)
            queries = [
                _cpu_query(f"{stat[0].lower()}{n}", iid, stat, period)
                for n, iid in enumerate(chunk)
                for stat in ("Average", "Maximum")
            ]
            with aws_errors(unit, "cloudwatch:GetMetricData"):
                pages = cloudwatch.get_paginator("get_metric_data").paginate(
                    MetricDataQueries=queries, StartTime=start, EndTime=end
                )
                for page in pages:
                    for result in page["MetricDataResults"]:
                        values[result["Id"]].extend(float(v) for v in result["Values"])
            for n, iid in enumerate(chunk):
                found = cpu_stats(
                    values.get(f"a{n}", []),
                    values.get(f"m{n}", []),
                    self._rule.peak_percentile,
                    expected,
                )
                if found is not None:
                    stats[iid] = found
        return stats


def _cpu_query(query_id: str, instance_id: str, stat: str, period: int) -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/EC2",
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _instance(unit: Unit, raw: dict[str, Any]) -> Instance:
    tags = _tags(raw)
    state = STATE_NAMES.get(raw["State"]["Name"], "other")
    stopped_since = None
    if state == "stopped":
        match = STOP_TIME.search(raw.get("StateTransitionReason", ""))
        if match:
            stopped_since = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
    return Instance(
        unit=unit,
        resource_id=raw["InstanceId"],
        instance_type=raw["InstanceType"],
        state=state,
        name=tags.get("Name", ""),
        launched_at=raw.get("LaunchTime"),
        stopped_since=stopped_since,
        tags=tags,
        managed_group=tags.get(ASG_TAG),
    )


def _tags(raw: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in raw.get("Tags", []) or []}


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
