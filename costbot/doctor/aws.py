"""Doctor checks for AWS: STS GetCallerIdentity for the credentials, EC2 DryRun for every EC2
permission (DryRunOperation = granted, UnauthorizedOperation = missing; placeholder ids, so
nothing is touched) and a one-query GetMetricData for CloudWatch, in each account's first region."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from costbot.doctor import Check, Verdict
from costbot.errors import ProviderError
from costbot.providers.aws import AwsProvider

VOLUME, ADDRESS, INSTANCE, SNAPSHOT = (
    "vol-0000000000000000f",
    "eipalloc-0000000000000000f",
    "i-0000000000000000f",
    "snap-0000000000000000f",
)
READ = (
    "ec2:DescribeVolumes",
    "ec2:DescribeAddresses",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceTypes",
    "cloudwatch:GetMetricData",
)
DENIED = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})
Probe = Callable[[Any], Any]
EC2_PROBES: dict[str, Probe] = {
    "ec2:DescribeVolumes": lambda ec2: ec2.describe_volumes(DryRun=True, MaxResults=5),
    "ec2:DescribeAddresses": lambda ec2: ec2.describe_addresses(DryRun=True),
    "ec2:DescribeInstances": lambda ec2: ec2.describe_instances(DryRun=True, MaxResults=5),
    "ec2:DescribeInstanceTypes": lambda ec2: ec2.describe_instance_types(DryRun=True),
    "ec2:DescribeSnapshots": lambda ec2: ec2.describe_snapshots(DryRun=True, OwnerIds=["self"]),
    "ec2:CreateSnapshot": lambda ec2: ec2.create_snapshot(DryRun=True, VolumeId=VOLUME),
    "ec2:CreateTags": lambda ec2: ec2.create_tags(
        DryRun=True, Resources=[SNAPSHOT], Tags=[{"Key": "costbot:doctor", "Value": "1"}]
    ),
    "ec2:DeleteVolume": lambda ec2: ec2.delete_volume(DryRun=True, VolumeId=VOLUME),
    "ec2:ReleaseAddress": lambda ec2: ec2.release_address(DryRun=True, AllocationId=ADDRESS),
    "ec2:StopInstances": lambda ec2: ec2.stop_instances(DryRun=True, InstanceIds=[INSTANCE]),
    "ec2:StartInstances": lambda ec2: ec2.start_instances(DryRun=True, InstanceIds=[INSTANCE]),
    "ec2:ModifyInstanceAttribute": lambda ec2: ec2.modify_instance_attribute(
        DryRun=True, InstanceId=INSTANCE, InstanceType={"Value": "t3.micro"}
    ),
}


def check_aws(adapter: AwsProvider, writes: Sequence[str]) -> list[Check]:
    """Checks for every account the AWS config reaches, in its first region."""
    units, failures = adapter.units()
    checks = [Check("aws", f.account, "credentials", "-", Verdict.ERROR, f.error) for f in failures]
    first_region: dict[str, str] = {}
    for unit in units:
        first_region.setdefault(unit.account, unit.region)
    wanted = [*READ, *dict.fromkeys(w for w in writes if w not in READ)]
    for account, region in first_region.items():
        try:
            identity = adapter.client(account, "sts", region).get_caller_identity()
        except (ClientError, BotoCoreError, ProviderError) as exc:
            checks.append(Check("aws", account, "credentials", "-", Verdict.ERROR, str(exc)))
            continue
        checks.append(Check("aws", account, "credentials", "-", Verdict.OK, identity["Arn"]))
        ec2 = adapter.client(account, "ec2", region)
        for permission in wanted:
            purpose = "scan" if permission in READ else "cleanup"
            verdict, detail = _probe(adapter, account, region, ec2, permission)
            checks.append(Check("aws", account, purpose, permission, verdict, detail))
    return checks


def _probe(
    adapter: AwsProvider, account: str, region: str, ec2: Any, permission: str
) -> tuple[Verdict, str]:
    if permission == "cloudwatch:GetMetricData":
        return _cloudwatch(adapter.client(account, "cloudwatch", region))
    probe = EC2_PROBES.get(permission)
    if probe is None:
        return Verdict.UNCHECKED, "no dry run for this call"
    try:
        probe(ec2)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "DryRunOperation":
            return Verdict.OK, f"{region}: EC2 dry run passed"
        if code in DENIED:
            return Verdict.MISSING, f"{region}: {code}"
        if code.endswith((".NotFound", ".Malformed")):
            return Verdict.UNCHECKED, f"{region}: EC2 checked the placeholder id first ({code})"
        return Verdict.ERROR, f"{region}: {code}: {exc.response['Error'].get('Message', '')}"
    except BotoCoreError as exc:
        return Verdict.ERROR, f"{region}: {exc}"
    if permission.startswith("ec2:Describe"):  # read-only: an answer proves the permission
        return Verdict.OK, f"{region}: answered (dry run not honoured by this endpoint)"
    return Verdict.ERROR, f"{region}: not refused as a dry run; not trusted"


def _cloudwatch(cloudwatch: Any) -> tuple[Verdict, str]:
    from datetime import UTC, datetime, timedelta

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    query = {
        "Id": "doctor",
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/EC2",
                "MetricName": "CPUUtilization",
                "Dimensions": [{"Name": "InstanceId", "Value": INSTANCE}],
            },
            "Period": 3600,
            "Stat": "Average",
        },
    }
    try:
        cloudwatch.get_metric_data(
            MetricDataQueries=[query], StartTime=end - timedelta(hours=1), EndTime=end
        )
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        verdict = Verdict.MISSING if code in DENIED else Verdict.ERROR
        return verdict, code
    except BotoCoreError as exc:
        return Verdict.ERROR, str(exc)
    return Verdict.OK, "one-query call answered"
