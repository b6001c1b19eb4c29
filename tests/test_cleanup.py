"""The cleanup engine's safety rails (shared/docs/domain.md §6), end to end through real parts:
resources seeded in moto's in-process AWS, a real scan into a real store, approvals through
costbot.approvals.decide, cleaners from build_cleaners and CleanupRun on top.

Every "never executes" test checks the resource still exists in moto afterwards and that no
intent (event or action row) was written. Expectations come from what each test seeded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
import yaml
from botocore.exceptions import ClientError
from moto.core import enable_iam_authentication

from cleaners import build_cleaners
from cleaners.aws import snapshot_tags
from costbot.approvals import Decision, decide
from costbot.cleanup import ACTOR, Cleaners, CleanupReport, CleanupRun, Stage, in_window
from costbot.config import Config
from costbot.demo import backdate_launch, put_cpu_hours
from costbot.errors import CleanupError, ConfigError
from costbot.model import Finding, Kind, Provider, Status, Unit, finding_id
from costbot.pricing import AwsPriceBook
from costbot.providers.aws import AwsProvider
from costbot.scan import ScanReport, run_scan
from costbot.store import Store
from tests.conftest import make_config
from tests.ec2_seed import create_volume, launch, tag_list

ACCOUNT = "123456789012"
"""The account moto answers for plain credentials."""
OTHER_ACCOUNT = "210987654321"
REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
ZONE = "us-east-1a"
T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
"""A Monday: the scan and the approval happen now."""
RUN_AT = T + timedelta(hours=1)
COSTBOT_TAG = "costbot:finding-id"

pytestmark = pytest.mark.usefixtures("aws")


# -- helpers -----------------------------------------------------------------------------------

LOADER = botocore.loaders.create_loader()
"""One botocore data loader for every session the tests hand to costbot: parsing EC2's service
model again for each new session would dominate the runtime."""


def session(**kwargs: Any) -> boto3.Session:
    """A real boto3 session (for costbot's session_factory) sharing the parsed service models."""
    core = botocore.session.get_session()
    core.register_component("data_loader", LOADER)
    made = boto3.Session(botocore_session=core, **kwargs)
    LOADER.search_paths[:] = list(dict.fromkeys(LOADER.search_paths))
    return made


def cleaners_for(cfg: Config, **kwargs: Any) -> Cleaners:
    return build_cleaners(cfg, session_factory=kwargs.pop("session_factory", session), **kwargs)


def config(cleanup: Mapping[str, Any] | None = None, *, snapshot: bool = True) -> Config:
    """Both idle clocks at 0 days so the first scan reports; execution on; alice approves."""
    data = {
        "providers": {"aws": {"regions": [REGION]}},
        "rules": {
            "idle_volume": {"min_unattached_days": 0},
            "unattached_ip": {"min_unattached_days": 0},
        },
        "cleanup": {
            "execute": True,
            "cli_approvers": ["alice"],
            "snapshot_before_delete": snapshot,
            **(cleanup or {}),
        },
    }
    return make_config(yaml.safe_dump(data))


def fid(kind: Kind, resource_id: str, region: str = REGION) -> str:
    return finding_id(Unit(Provider.AWS, ACCOUNT, region), kind, resource_id)


def tags_of(raw: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


@dataclass
class World:
    """moto's EC2 plus a store, with the steps every test repeats."""

    store: Store
    ec2: Any
    config: Config
    cleaners: Cleaners

    def volume(
        self,
        size: int = 10,
        vtype: str = "gp3",
        tags: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> str:
        return create_volume(self.ec2, ZONE, size, vtype, tags, **extra)

    def instance(
        self, instance_type: str = "m5.large", tags: Mapping[str, str] | None = None
    ) -> str:
        return launch(self.ec2, ZONE, instance_type, tags)

    def scan(self, now: datetime = T) -> ScanReport:
        aws = self.config.providers.aws
        assert aws is not None
        provider = AwsProvider(aws, self.config.rules.oversized_instance, session_factory=session)
        report = run_scan(
            self.config,
            self.store,
            [provider],
            {Provider.AWS: AwsPriceBook(live=False)},
            now=now,
        )
        assert not report.failed, report.failed
        return report

    def approve(
        self,
        ids: Sequence[str],
        *,
        actor: str = "alice",
        approvers: Iterable[str] = ("alice",),
        now: datetime = T,
    ) -> None:
        decide(
            self.store,
            list(ids),
            Decision.APPROVE,
            actor=actor,
            approvers=tuple(approvers),
            actionable=set(self.cleaners),
            source={"via": "test"},
            now=now,
        )

    def run(
        self,
        engine_config: Config | None = None,
        *,
        execute: bool = True,
        now: datetime = RUN_AT,
        ids: Sequence[str] | None = None,
        cleaners: Cleaners | None = None,
    ) -> CleanupReport:
        return CleanupRun(
            engine_config or self.config,
            self.store,
            self.cleaners if cleaners is None else cleaners,
            execute=execute,
            now=now,
        ).run(ids)

    # -- observations ------------------------------------------------------------------------

    def volume_exists(self, volume_id: str) -> bool:
        try:
            found = self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidVolume.NotFound"
            return False
        return bool(found)

    def address_exists(self, allocation_id: str) -> bool:
        try:
            found = self.ec2.describe_addresses(AllocationIds=[allocation_id])["Addresses"]
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidAllocationID.NotFound"
            return False
        return bool(found)

    def snapshots(self, finding: str | None = None) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{COSTBOT_TAG}", "Values": [finding]}] if finding else []
        return list(self.ec2.describe_snapshots(OwnerIds=["self"], Filters=filters)["Snapshots"])

    def instance_state(self, instance_id: str) -> tuple[str, str]:
        [reservation] = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        [raw] = reservation["Instances"]
        return raw["InstanceType"], raw["State"]["Name"]

    def intents(self, finding: str) -> list[Any]:
        return [e for e in self.store.events(finding) if e.type == "intent"]

    def assert_untouched(self, finding: str, volume_id: str) -> None:
        """The rail held: the volume is still there, and no intent was ever written."""
        assert self.volume_exists(volume_id)
        assert self.intents(finding) == []
        assert self.store.actions(finding) == []
        assert self.snapshots(finding) == []


@pytest.fixture
def world(store: Store) -> World:
    cfg = config()
    return World(store, session().client("ec2", region_name=REGION), cfg, cleaners_for(cfg))


@pytest.fixture
def approved(world: World) -> tuple[str, str]:
    """One unattached volume, scanned and approved by alice at T: (volume id, finding id)."""
    vol = world.volume(tags={"Name": "scratch"})
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, vol)
    world.approve([finding])
    assert world.store.get(finding).status is Status.APPROVED
    return vol, finding


def only_line(report: CleanupReport, finding: str) -> Any:
    [line] = [line for line in report.lines if line.finding_id == finding]
    return line


# -- rail 1: approved, not expired, by a configured approver -----------------------------------


def test_an_open_finding_is_never_executed(world: World) -> None:
    vol = world.volume()
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, vol)

    everything = world.run()
    named = world.run(ids=[finding])

    assert everything.lines == ()
    line = only_line(named, finding)
    assert line.stage is Stage.SKIPPED
    assert world.store.get(finding).status is Status.OPEN
    world.assert_untouched(finding, vol)


def test_an_expired_approval_goes_back_to_open(world: World, approved: tuple[str, str]) -> None:
    vol, finding = approved

    report = world.run(now=T + timedelta(hours=73))

    line = only_line(report, finding)
    assert line.stage is Stage.EXPIRED
    stored = world.store.get(finding)
    assert stored.status is Status.OPEN
    assert stored.approved_by is None and stored.approved_at is None
    last = world.store.events(finding)[-1]
    assert (last.from_status, last.to_status, last.actor) == ("approved", "open", ACTOR)
    assert "expired" in last.note
    world.assert_untouched(finding, vol)


def test_an_approval_by_someone_not_configured_is_refused(world: World) -> None:
    vol = world.volume()
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, vol)
    world.approve([finding], actor="mallory", approvers=())  # an unguarded channel let it in

    report = world.run()  # config: cleanup.cli_approvers: [alice]

    line = only_line(report, finding)
    assert line.stage is Stage.REFUSED
    assert "mallory" in line.text
    stored = world.store.get(finding)
    assert stored.status is Status.OPEN
    assert stored.approved_by is None
    world.assert_untouched(finding, vol)


# -- rail 2: execution needs cleanup.execute AND --execute -------------------------------------


def test_execute_flag_without_config_execute_only_dry_runs(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved

    report = world.run(config({"execute": False}), execute=True)

    line = only_line(report, finding)
    assert line.stage is Stage.WOULD_CLEAN
    assert "cleanup.execute is false" in line.text
    assert report.execute is False
    stored = world.store.get(finding)
    assert stored.status is Status.APPROVED
    assert stored.dry_run_ok is True
    assert [e.type for e in world.store.events(finding)][-1] == "dry_run"
    world.assert_untouched(finding, vol)


def test_config_execute_without_execute_flag_only_dry_runs(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved

    report = world.run(execute=False)

    line = only_line(report, finding)
    assert line.stage is Stage.WOULD_CLEAN
    assert "no --execute" in line.text
    assert vol in line.text
    assert world.store.get(finding).status is Status.APPROVED
    world.assert_untouched(finding, vol)


# -- rail 3 and 4: fresh re-check, then the provider's own dry run -----------------------------


@pytest.mark.parametrize(
    ("allowed", "missing"),
    [
        (["ec2:DeleteVolume"], "ec2:CreateSnapshot"),
        (["ec2:CreateSnapshot"], "ec2:DeleteVolume"),
    ],
)
def test_a_dry_run_denied_by_iam_acts_on_nothing(
    world: World, approved: tuple[str, str], allowed: list[str], missing: str
) -> None:
    vol, finding = approved
    iam = session().client("iam", region_name=REGION)
    iam.create_user(UserName="cleaner")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sts:GetCallerIdentity", "ec2:Describe*", *allowed],
                "Resource": "*",
            }
        ],
    }
    iam.put_user_policy(UserName="cleaner", PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="cleaner")["AccessKey"]

    def limited_session(**kwargs: Any) -> boto3.Session:
        return session(
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            **kwargs,
        )

    limited = cleaners_for(world.config, session_factory=limited_session)
    with enable_iam_authentication():
        report = world.run(cleaners=limited)

    line = only_line(report, finding)
    assert line.stage is Stage.FAILED
    assert f"missing permission {missing}" in line.text
    stored = world.store.get(finding)
    assert stored.status is Status.FAILED
    assert stored.dry_run_ok is False
    world.assert_untouched(finding, vol)


def test_a_volume_attached_after_approval_is_resolved_and_kept(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    holder = world.instance()
    world.ec2.attach_volume(VolumeId=vol, InstanceId=holder, Device="/dev/sdf")

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.RESOLVED
    assert holder in line.text
    assert world.store.get(finding).status is Status.RESOLVED
    [volume] = world.ec2.describe_volumes(VolumeIds=[vol])["Volumes"]
    assert [a["InstanceId"] for a in volume["Attachments"]] == [holder]
    world.assert_untouched(finding, vol)


def test_a_volume_gone_after_approval_is_resolved(world: World, approved: tuple[str, str]) -> None:
    vol, finding = approved
    world.ec2.delete_volume(VolumeId=vol)

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.RESOLVED
    assert "no longer exists" in line.text
    assert world.store.get(finding).status is Status.RESOLVED
    assert world.intents(finding) == []
    assert world.store.actions(finding) == []
    assert world.snapshots() == []


@pytest.mark.parametrize(
    "opt_out", [{"costbot:skip": "owner asked"}, {"costbot:keep-until": "2999-01-01"}]
)
def test_an_opt_out_tag_added_after_approval_keeps_the_volume(
    world: World, approved: tuple[str, str], opt_out: dict[str, str]
) -> None:
    vol, finding = approved
    world.ec2.create_tags(Resources=[vol], Tags=tag_list(opt_out))

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.RESOLVED
    assert next(iter(opt_out)) in line.text
    assert world.store.get(finding).status is Status.RESOLVED
    world.assert_untouched(finding, vol)


def test_an_allow_list_entry_added_after_approval_keeps_the_volume(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    text = yaml.safe_dump(
        {
            "providers": {"aws": {"regions": [REGION]}},
            "exclusions": {"resources": [{"id": vol, "reason": "legal hold"}]},
            "cleanup": {"execute": True, "cli_approvers": ["alice"]},
        }
    )
    guarded = make_config(text)

    report = world.run(guarded, cleaners=cleaners_for(guarded))

    line = only_line(report, finding)
    assert line.stage is Stage.RESOLVED
    assert "legal hold" in line.text
    world.assert_untouched(finding, vol)


# -- rail 5: blast radius ----------------------------------------------------------------------


def three_approved(world: World) -> dict[str, str]:
    """Three unattached volumes, scanned and approved: finding id -> volume id."""
    vols = [world.volume(size=size) for size in (10, 20, 30)]
    world.scan()
    ids = {fid(Kind.IDLE_VOLUME, v): v for v in vols}
    world.approve(list(ids))
    return ids


def test_max_per_run_one_cleans_exactly_one(world: World) -> None:
    ids = three_approved(world)

    report = world.run(config({"max_per_run": 1}))

    stages = sorted(str(only_line(report, f).stage) for f in ids)
    assert stages == ["cleaned", "held", "held"]
    cleaned = [f for f in ids if only_line(report, f).stage is Stage.CLEANED]
    held = [f for f in ids if f not in cleaned]
    assert [f for f in ids if not world.volume_exists(ids[f])] == cleaned
    for finding in held:
        assert "max_per_run (1) reached" in only_line(report, finding).text
        assert world.store.get(finding).status is Status.APPROVED
        world.assert_untouched(finding, ids[finding])
    assert sum(len(world.intents(f)) for f in ids) == 1


def test_max_per_run_zero_cleans_nothing(world: World) -> None:
    ids = three_approved(world)

    report = world.run(config({"max_per_run": 0}))

    assert report.count(Stage.HELD) == 3
    for finding, vol in ids.items():
        assert world.store.get(finding).status is Status.APPROVED
        world.assert_untouched(finding, vol)


@pytest.mark.parametrize("region", [REGION, OTHER_REGION])
def test_a_failed_latest_scan_in_the_account_holds_everything(
    world: World, approved: tuple[str, str], region: str
) -> None:
    vol, finding = approved
    world.store.record_scan(
        Unit(Provider.AWS, ACCOUNT, region),
        run_id="later",
        started_at=T + timedelta(minutes=30),
        finished_at=T + timedelta(minutes=30),
        findings=(),
        resource_counts={},
        error="ec2:DescribeVolumes: RequestLimitExceeded",
    )

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.HELD
    assert "failed" in line.text and region in line.text
    assert world.store.get(finding).status is Status.APPROVED
    world.assert_untouched(finding, vol)


def test_a_failed_scan_of_another_account_does_not_hold(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    world.store.record_scan(
        Unit(Provider.AWS, OTHER_ACCOUNT, REGION),
        run_id="later",
        started_at=T,
        finished_at=T,
        findings=(),
        resource_counts={},
        error="sts:AssumeRole: AccessDenied",
    )

    report = world.run()

    assert only_line(report, finding).stage is Stage.CLEANED
    assert not world.volume_exists(vol)


def test_a_scan_that_saw_far_fewer_resources_holds(world: World) -> None:
    target = world.volume()
    bystanders = [world.volume(tags={"costbot:skip": "x"}) for _ in range(4)]
    world.scan()  # 5 volumes seen
    finding = fid(Kind.IDLE_VOLUME, target)
    world.approve([finding])
    for vol in bystanders:
        world.ec2.delete_volume(VolumeId=vol)
    world.scan(now=T + timedelta(minutes=30))  # 1 volume seen: 1 < 0.5 x 5

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.HELD
    assert "saw 1 resources against 5" in line.text
    assert world.store.get(finding).status is Status.APPROVED
    world.assert_untouched(finding, target)


# -- happy paths -------------------------------------------------------------------------------


def test_snapshot_then_delete_keeps_a_restorable_snapshot(world: World) -> None:
    own_tags = {"Name": "perf-scratch", "team": "data"}
    vol = world.volume(size=20, vtype="gp3", tags=own_tags, Iops=4000, Throughput=250)
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, vol)
    world.approve([finding])

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED
    assert not world.volume_exists(vol)
    [snapshot] = world.snapshots()
    assert snapshot["State"] == "completed"
    assert snapshot["VolumeId"] == vol
    assert snapshot["VolumeSize"] == 20
    assert tags_of(snapshot) == {
        **own_tags,
        "costbot:source-volume": vol,
        "costbot:finding-id": finding,
        "costbot:volume-size": "20",
        "costbot:volume-type": "gp3",
        "costbot:volume-az": ZONE,
        "costbot:volume-iops": "4000",
        "costbot:volume-throughput": "250",
        "costbot:action-id": str(world.store.actions(finding)[0].id),
    }
    [action] = world.store.actions(finding)
    assert action.action == "snapshot_and_delete_volume"
    assert action.result == "done"
    assert action.params["volume_id"] == vol
    assert action.data["snapshot_id"] == snapshot["SnapshotId"]
    assert line.data["snapshot_id"] == snapshot["SnapshotId"]
    stored = world.store.get(finding)
    assert stored.status is Status.CLEANED
    assert snapshot["SnapshotId"] in (stored.outcome or "")
    trail = [(e.type, e.from_status, e.to_status, e.actor) for e in world.store.events(finding)]
    assert trail == [
        ("status", None, "open", "costbot:scan"),
        ("status", "open", "approved", "alice"),
        ("dry_run", None, None, ACTOR),
        ("intent", None, None, ACTOR),
        ("result", "approved", "cleaned", ACTOR),
    ]
    assert world.store.open_actions() == []


def test_an_elastic_ip_is_released_and_its_address_recorded(world: World) -> None:
    allocated = world.ec2.allocate_address(Domain="vpc")
    allocation, ip = allocated["AllocationId"], allocated["PublicIp"]
    world.scan()
    finding = fid(Kind.UNATTACHED_IP, allocation)
    world.approve([finding])

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED
    assert not world.address_exists(allocation)
    [action] = world.store.actions(finding)
    assert (action.action, action.result, action.data["ip"]) == ("release_address", "done", ip)
    assert action.params["ip"] == ip
    result = world.store.events(finding)[-1]
    assert (result.type, result.to_status, result.data["ip"]) == ("result", "cleaned", ip)


def test_delete_without_snapshot_takes_no_snapshot(store: Store) -> None:
    cfg = config(snapshot=False)
    world = World(store, session().client("ec2", region_name=REGION), cfg, cleaners_for(cfg))
    vol = world.volume(size=15)
    world.scan()
    finding = fid(Kind.IDLE_VOLUME, vol)
    world.approve([finding])

    report = world.run()

    assert only_line(report, finding).stage is Stage.CLEANED
    assert not world.volume_exists(vol)
    assert world.snapshots() == []
    [action] = world.store.actions(finding)
    assert (action.action, action.result) == ("delete_volume", "done")
    assert "snapshot_id" not in action.data


# -- resize ------------------------------------------------------------------------------------

EVERY_DAY = "Mon-Sun 00:00-23:59 UTC"


def resize_world(store: Store, window: str | None) -> World:
    extra: dict[str, Any] = {"allow_resize": True}
    if window is not None:
        extra["maintenance_window"] = window
    cfg = config(extra)
    return World(store, session().client("ec2", region_name=REGION), cfg, cleaners_for(cfg))


def oversized(world: World, tags: Mapping[str, str] | None = None) -> tuple[str, str]:
    """An m5.2xlarge averaging ~3 % CPU with a 12 % peak for 14 days, scanned and approved.

    The smallest m5 whose projected peak stays <= 80 % is m5.large (12 % x 8/2 vCPUs = 48 %);
    nothing smaller exists in the family.
    """
    iid = world.instance("m5.2xlarge", tags)
    backdate_launch(REGION, iid, T - timedelta(days=90))
    cloudwatch = session().client("cloudwatch", region_name=REGION)
    put_cpu_hours(cloudwatch, iid, T, 14, 3, 12, random.Random(7))
    world.scan()
    finding = fid(Kind.OVERSIZED_INSTANCE, iid)
    assert world.store.get(finding).details["recommended_type"] == "m5.large"
    world.approve([finding])
    return iid, finding


def test_resize_in_the_window_changes_the_type_and_restarts(store: Store) -> None:
    world = resize_world(store, EVERY_DAY)
    iid, finding = oversized(world)

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED, line.text
    assert world.instance_state(iid) == ("m5.large", "running")
    [action] = world.store.actions(finding)
    assert (action.action, action.result) == ("resize_instance", "done")
    assert (action.data["from_type"], action.data["to_type"]) == ("m5.2xlarge", "m5.large")
    assert world.store.get(finding).status is Status.CLEANED


def test_resize_is_refused_for_an_auto_scaling_group_member(store: Store) -> None:
    world = resize_world(store, EVERY_DAY)
    iid, finding = oversized(world, {"aws:autoscaling:groupName": "workers"})

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.FAILED
    assert "Auto Scaling group workers" in line.text
    assert world.instance_state(iid) == ("m5.2xlarge", "running")
    assert world.intents(finding) == []
    assert world.store.actions(finding) == []


@pytest.mark.parametrize("window", ["Sat 02:00-06:00 UTC", None])
def test_resize_outside_the_window_is_held(store: Store, window: str | None) -> None:
    world = resize_world(store, window)
    iid, finding = oversized(world)

    report = world.run()  # a Monday, 11:00 UTC

    line = only_line(report, finding)
    assert line.stage is Stage.HELD
    assert "outside the maintenance window" in line.text
    assert world.instance_state(iid) == ("m5.2xlarge", "running")
    assert world.store.get(finding).status is Status.APPROVED
    assert world.intents(finding) == []
    assert world.store.actions(finding) == []


# -- rail 6: write-ahead audit and crash recovery ---------------------------------------------


def crashed_intent(world: World, finding: str) -> tuple[int, dict[str, Any]]:
    """What a run that died right after writing its intent leaves behind."""
    cleaner = world.cleaners[(Provider.AWS, Kind.IDLE_VOLUME)]
    check = cleaner.dry_run(world.store.get(finding))
    assert check.ok, check.verdict
    action_id = world.store.begin_action(
        finding,
        action=cleaner.action,
        run_id="crashed-run",
        params=check.params,
        actor=ACTOR,
        now=T + timedelta(minutes=30),
    )
    return action_id, {**check.params, "action_id": action_id}


def test_an_interrupted_intent_is_rechecked_and_cleaned_once(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    crashed_intent(world, finding)
    assert world.volume_exists(vol)

    report = world.run()

    assert only_line(report, finding).stage is Stage.CLEANED
    assert [(a.run_id, a.result) for a in world.store.actions(finding)] == [
        ("crashed-run", "interrupted"),
        (report.run_id, "done"),
    ]
    assert world.store.open_actions() == []
    assert world.store.get(finding).status is Status.CLEANED
    assert not world.volume_exists(vol)
    assert len(world.snapshots(finding)) == 1


def test_a_snapshot_taken_before_the_crash_is_reused(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    _, params = crashed_intent(world, finding)
    taken = world.ec2.create_snapshot(
        VolumeId=vol,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": tag_list(snapshot_tags(finding, params, params["action_id"])),
            }
        ],
    )["SnapshotId"]

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED
    assert line.data["snapshot_id"] == taken
    assert [s["SnapshotId"] for s in world.snapshots(finding)] == [taken]
    assert not world.volume_exists(vol)


def test_a_delete_done_before_the_crash_is_recorded_not_repeated(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    action_id, params = crashed_intent(world, finding)
    cleaner = world.cleaners[(Provider.AWS, Kind.IDLE_VOLUME)]
    cleaner.execute(world.store.get(finding), params)  # ...and the process died here
    [snapshot] = world.snapshots(finding)
    assert not world.volume_exists(vol)

    report = world.run()

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED
    assert line.text.startswith("recovered:")
    [action] = world.store.actions(finding)
    assert (action.id, action.result) == (action_id, "done")
    assert action.data["snapshot_id"] == snapshot["SnapshotId"]
    assert world.store.get(finding).status is Status.CLEANED
    assert len(world.intents(finding)) == 1
    assert [s["SnapshotId"] for s in world.snapshots(finding)] == [snapshot["SnapshotId"]]
    assert world.store.open_actions() == []


def test_a_scan_between_crash_and_recovery_leaves_the_finding_to_the_cleanup(
    world: World, approved: tuple[str, str]
) -> None:
    _, finding = approved
    _, params = crashed_intent(world, finding)
    world.cleaners[(Provider.AWS, Kind.IDLE_VOLUME)].execute(world.store.get(finding), params)
    world.scan(now=T + timedelta(minutes=45))  # the volume is gone, but an action is in flight
    assert world.store.get(finding).status is Status.APPROVED

    report = world.run()

    assert world.store.open_actions() == []
    [action] = world.store.actions(finding)
    assert action.result == "done"
    assert only_line(report, finding).stage is Stage.CLEANED
    assert world.store.get(finding).status is Status.CLEANED


def test_a_snapshot_from_an_earlier_approval_is_not_reused(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    _, params = crashed_intent(world, finding)
    stale = world.ec2.create_snapshot(
        VolumeId=vol,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": tag_list(snapshot_tags(finding, params, params["action_id"])),
            }
        ],
    )["SnapshotId"]
    # Before the next cleanup run the volume is put back to use: the run resolves the finding.
    holder = world.instance()
    world.ec2.attach_volume(VolumeId=vol, InstanceId=holder, Device="/dev/sdf")
    assert only_line(world.run(), finding).stage is Stage.RESOLVED
    # Weeks later it is detached again, found again (same finding id) and approved again.
    world.ec2.detach_volume(VolumeId=vol, InstanceId=holder)
    world.scan(now=T + timedelta(days=30))
    assert world.store.get(finding).status is Status.OPEN
    world.approve([finding], now=T + timedelta(days=30))

    report = world.run(now=T + timedelta(days=30, hours=1))

    line = only_line(report, finding)
    assert line.stage is Stage.CLEANED
    assert line.data["snapshot_id"] != stale
    assert len(world.snapshots(finding)) == 2


# -- the maintenance window grammar ------------------------------------------------------------

MON, TUE, FRI, SAT, SUN = 16, 17, 20, 21, 22
"""Days of November 2026."""


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (at(SAT, 2), True),
        (at(SAT, 5, 59), True),
        (at(SAT, 6), False),
        (at(SAT, 1, 59), False),
        (at(SUN, 3), False),
        (at(FRI, 3), False),
    ],
)
def test_in_window_one_day(moment: datetime, inside: bool) -> None:
    assert in_window("Sat 02:00-06:00 UTC", moment) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (at(SAT, 1), True),  # Friday's window runs past midnight
        (at(MON, 1), False),  # Sunday has no window
        (at(MON, 23), True),
        (at(TUE, 1, 30), True),  # Monday's window
        (at(FRI, 22), True),
        (at(SAT, 2), False),
        (at(SAT, 22, 30), False),
        (at(TUE, 12), False),
    ],
)
def test_in_window_across_midnight(moment: datetime, inside: bool) -> None:
    assert in_window("Mon-Fri 22:00-02:00 UTC", moment) is inside


def test_in_window_day_lists_and_wrapping_ranges() -> None:
    assert in_window("Sat,Sun 00:00-23:59 UTC", at(SUN, 12))
    assert not in_window("Sat,Sun 00:00-23:59 UTC", at(MON, 12))
    assert in_window("Fri-Mon 10:00-11:00 UTC", at(MON, 10, 30))
    assert not in_window("Fri-Mon 10:00-11:00 UTC", at(TUE, 10, 30))
    assert not in_window(None, at(SAT, 3))


def test_in_window_converts_to_utc() -> None:
    berlin_sat_03 = datetime(2026, 11, SAT, 3, 0, tzinfo=timezone(timedelta(hours=2)))  # 01:00Z
    assert not in_window("Sat 02:00-06:00 UTC", berlin_sat_03)


def test_a_window_the_config_accepts_is_one_the_engine_can_read() -> None:
    try:
        cfg = config({"maintenance_window": "Sat 22:00-24:00 UTC"})
    except ConfigError:
        return  # refused up front, naming the key: fine
    assert in_window(cfg.cleanup.maintenance_window, at(SAT, 23))


def test_a_second_cleanup_run_is_refused_while_another_holds_the_lease(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    taken = world.store.acquire_lease(
        "cleanup", "other-replica", timedelta(minutes=30), datetime.now(UTC)
    )
    assert taken is None
    with pytest.raises(CleanupError, match=r"another cleanup run is in progress.*other-replica"):
        world.run()
    assert world.volume_exists(vol)
    assert world.store.actions(finding) == []


def test_an_expired_lease_of_a_crashed_holder_does_not_block(
    world: World, approved: tuple[str, str]
) -> None:
    _, finding = approved
    world.store.acquire_lease("cleanup", "crashed", timedelta(minutes=1), T - timedelta(days=1))
    report = world.run()
    assert only_line(report, finding).stage is Stage.CLEANED


def test_a_dry_run_between_crash_and_execution_does_not_cause_a_second_snapshot(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    _, params = crashed_intent(world, finding)
    taken = world.ec2.create_snapshot(
        VolumeId=vol,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": tag_list(snapshot_tags(finding, params, params["action_id"])),
            }
        ],
    )["SnapshotId"]

    dry = world.run(execute=False)  # closes the interrupted intent without acting
    assert only_line(dry, finding).stage is Stage.WOULD_CLEAN
    report = world.run()

    assert only_line(report, finding).data["snapshot_id"] == taken
    assert [s["SnapshotId"] for s in world.snapshots(finding)] == [taken]
    assert not world.volume_exists(vol)


def test_an_approval_is_void_when_the_recommendation_changed_since(
    world: World, approved: tuple[str, str]
) -> None:
    vol, finding = approved
    stored = world.store.get(finding)
    changed = Finding(
        unit=Unit(Provider.AWS, stored.account, stored.region),
        kind=stored.kind,
        resource_id=stored.resource_id,
        reason=stored.reason,
        monthly_cost_usd=stored.monthly_cost_usd,
        monthly_savings_usd=stored.monthly_savings_usd,
        price_source=stored.price_source,
        price_date=stored.price_date,
        recommendation="something else entirely",
    )
    world.store.record_scan(
        changed.unit,
        run_id="r2",
        started_at=T + timedelta(minutes=40),
        finished_at=T + timedelta(minutes=40),
        findings=[changed],
        resource_counts={"volumes": 1},
    )
    report = world.run()
    line = only_line(report, finding)
    assert line.stage is Stage.REFUSED and "recommendation changed" in line.text
    assert world.store.get(finding).status is Status.OPEN
    assert world.volume_exists(vol)
