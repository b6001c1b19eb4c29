"""Each AWS cleaner on its own, against moto's in-process AWS: the fresh re-check and EC2 dry run
(which must change nothing), execute (re-checks again, then acts), recover (after a crash), the
restore-ready snapshot tags and RestoreVolume. Findings come from a real scan into a real store;
the cleaners come from build_cleaners(config)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
import yaml
from botocore.exceptions import ClientError

from cleaners import build_cleaners
from cleaners.aws import (
    MAX_TAGS,
    DeleteVolume,
    ReleaseAddress,
    SnapshotAndDeleteVolume,
    snapshot_tags,
)
from cleaners.aws_resize import ResizeInstance
from cleaners.aws_restore import RestoreVolume
from costbot.actions import Readiness, Result
from costbot.config import Config
from costbot.demo import backdate_launch, put_cpu_hours
from costbot.model import Kind, Provider, Unit, finding_id
from costbot.pricing import AwsPriceBook
from costbot.providers.aws import AwsProvider
from costbot.providers.aws_sessions import AwsSessions
from costbot.scan import run_scan
from costbot.store import Store, StoredFinding
from tests.conftest import make_config
from tests.ec2_seed import create_volume, launch, tag_list

ACCOUNT = "123456789012"
REGION = "us-east-1"
ZONE = "us-east-1a"
T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
COSTBOT_TAG = "costbot:finding-id"

pytestmark = pytest.mark.usefixtures("aws")

LOADER = botocore.loaders.create_loader()
"""One botocore data loader for every session the tests create (parsing EC2's service model
once per session would dominate the runtime)."""


def session(**kwargs: Any) -> boto3.Session:
    """A real boto3 session sharing the parsed service models."""
    core = botocore.session.get_session()
    core.register_component("data_loader", LOADER)
    made = boto3.Session(botocore_session=core, **kwargs)
    LOADER.search_paths[:] = list(dict.fromkeys(LOADER.search_paths))
    return made


def config(cleanup: Mapping[str, Any] | None = None, **sections: Any) -> Config:
    data = {
        "providers": {"aws": {"regions": [REGION]}},
        "rules": {
            "idle_volume": {"min_unattached_days": 0},
            "unattached_ip": {"min_unattached_days": 0},
        },
        "cleanup": dict(cleanup or {}),
        **sections,
    }
    return make_config(yaml.safe_dump(data))


def tags_of(raw: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


@dataclass
class Cloud:
    """moto's EC2, a store, and a scan that turns what was seeded into stored findings."""

    ec2: Any
    store: Store

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

    def finding(self, kind: Kind, resource_id: str, cfg: Config | None = None) -> StoredFinding:
        """Scan (at T) and return the stored finding for this resource."""
        cfg = cfg or config()
        aws = cfg.providers.aws
        assert aws is not None
        provider = AwsProvider(aws, cfg.rules.oversized_instance, session_factory=session)
        report = run_scan(
            cfg, self.store, [provider], {Provider.AWS: AwsPriceBook(live=False)}, now=T
        )
        assert not report.failed
        return self.store.get(finding_id(Unit(Provider.AWS, ACCOUNT, REGION), kind, resource_id))

    def volume_exists(self, volume_id: str) -> bool:
        try:
            return bool(self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidVolume.NotFound"
            return False

    def snapshots(self) -> list[dict[str, Any]]:
        return list(self.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])

    def instance_state(self, instance_id: str) -> tuple[str, str]:
        [reservation] = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        [raw] = reservation["Instances"]
        return raw["InstanceType"], raw["State"]["Name"]


@pytest.fixture
def cloud(store: Store) -> Cloud:
    return Cloud(session().client("ec2", region_name=REGION), store)


def clients() -> Any:
    """The per-account client source the cleaners and `costbot restore` use."""
    aws = config().providers.aws
    assert aws is not None
    return AwsSessions(aws, session_factory=session).client


def cleaner(kind: Kind, cfg: Config | None = None, **kwargs: Any) -> Any:
    return build_cleaners(cfg or config(), session_factory=session, **kwargs)[(Provider.AWS, kind)]


# -- build_cleaners ----------------------------------------------------------------------------


def test_build_cleaners_follows_the_config() -> None:
    default = build_cleaners(config())
    assert {k: type(v) for k, v in default.items()} == {
        (Provider.AWS, Kind.IDLE_VOLUME): SnapshotAndDeleteVolume,
        (Provider.AWS, Kind.UNATTACHED_IP): ReleaseAddress,
    }
    bare = build_cleaners(config({"snapshot_before_delete": False}))
    assert type(bare[(Provider.AWS, Kind.IDLE_VOLUME)]) is DeleteVolume
    resizing = build_cleaners(config({"allow_resize": True}))
    resize = resizing[(Provider.AWS, Kind.OVERSIZED_INSTANCE)]
    assert type(resize) is ResizeInstance
    assert resize.needs_window is True
    assert not default[(Provider.AWS, Kind.IDLE_VOLUME)].needs_window
    assert build_cleaners(make_config("")) == {}


# -- SnapshotAndDeleteVolume -------------------------------------------------------------------


def test_volume_dry_run_is_ready_and_changes_nothing(cloud: Cloud) -> None:
    vol = cloud.volume(30, "gp3", {"Name": "scratch"}, Iops=5000, Throughput=300)
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)

    check = cleaner(Kind.IDLE_VOLUME).dry_run(finding)

    assert check.readiness is Readiness.READY and check.ok
    assert dict(check.params) == {
        "volume_id": vol,
        "size_gb": 30,
        "volume_type": "gp3",
        "zone": ZONE,
        "iops": 5000,
        "throughput": 300,
        "encrypted": False,
        "tags": {"Name": "scratch"},
    }
    assert f"snapshot {vol} (30 GiB gp3) then delete it" in check.verdict
    assert f"${finding.monthly_savings_usd:,.2f}/month" in check.verdict
    assert check.verdict.endswith("(EC2 dry run passed)")
    assert cloud.volume_exists(vol)
    assert cloud.snapshots() == []


def test_volume_dry_run_of_a_deleted_volume_is_gone(cloud: Cloud) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    cloud.ec2.delete_volume(VolumeId=vol)

    check = cleaner(Kind.IDLE_VOLUME).dry_run(finding)

    assert check.readiness is Readiness.GONE
    assert not check.ok


def test_volume_dry_run_of_an_attached_volume_is_changed(cloud: Cloud) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    holder = cloud.instance()
    cloud.ec2.attach_volume(VolumeId=vol, InstanceId=holder, Device="/dev/sdf")

    check = cleaner(Kind.IDLE_VOLUME).dry_run(finding)

    assert check.readiness is Readiness.CHANGED
    assert holder in check.verdict


@pytest.mark.parametrize(
    ("tags", "readiness", "words"),
    [
        ({"costbot:skip": ""}, Readiness.EXCLUDED, "tagged costbot:skip"),
        ({"costbot:keep-until": "2026-11-30"}, Readiness.EXCLUDED, "keep-until=2026-11-30"),
        ({"costbot:keep-until": "next spring"}, Readiness.EXCLUDED, "not a date"),
        ({"costbot:keep-until": "2026-11-15"}, Readiness.READY, "then delete it"),
    ],
)
def test_volume_dry_run_applies_opt_out_tags_again(
    cloud: Cloud, tags: dict[str, str], readiness: Readiness, words: str
) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    cloud.ec2.create_tags(Resources=[vol], Tags=tag_list(tags))

    check = cleaner(Kind.IDLE_VOLUME, today=lambda: T).dry_run(finding)  # today: 2026-11-16

    assert check.readiness is readiness
    assert words in check.verdict


def test_volume_dry_run_applies_the_config_allow_list_again(cloud: Cloud) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    guarded = config(exclusions={"resources": [{"id": vol, "reason": "legal hold"}]})

    check = cleaner(Kind.IDLE_VOLUME, guarded).dry_run(finding)

    assert check.readiness is Readiness.EXCLUDED
    assert "legal hold" in check.verdict


def test_volume_execute_snapshots_then_deletes(cloud: Cloud) -> None:
    vol = cloud.volume(8, "gp2", {"Name": "old", "owner": "ops"})
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    action = cleaner(Kind.IDLE_VOLUME, snapshot_poll_s=1)
    params = action.dry_run(finding).params

    outcome = action.execute(finding, params)

    assert outcome.result is Result.DONE
    assert not cloud.volume_exists(vol)
    [snapshot] = cloud.snapshots()
    assert outcome.data["snapshot_id"] == snapshot["SnapshotId"]
    assert snapshot["State"] == "completed"
    assert snapshot["VolumeId"] == vol
    tags = tags_of(snapshot)
    assert {k: tags[k] for k in ("Name", "owner")} == {"Name": "old", "owner": "ops"}
    assert tags["costbot:source-volume"] == vol
    assert tags["costbot:finding-id"] == finding.id
    assert (tags["costbot:volume-size"], tags["costbot:volume-type"]) == ("8", "gp2")
    assert tags["costbot:volume-az"] == ZONE
    assert "costbot:volume-throughput" not in tags  # gp2 has no throughput setting
    assert outcome.data["volume"]["volume_id"] == vol


def test_volume_execute_of_a_deleted_volume_is_already_gone(cloud: Cloud) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    action = cleaner(Kind.IDLE_VOLUME)
    params = action.dry_run(finding).params
    cloud.ec2.delete_volume(VolumeId=vol)  # someone else was quicker

    outcome = action.execute(finding, params)

    assert outcome.result is Result.ALREADY_GONE
    assert vol in outcome.note
    assert cloud.snapshots() == []


def test_volume_execute_rechecks_and_keeps_a_reattached_volume(cloud: Cloud) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    action = cleaner(Kind.IDLE_VOLUME)
    params = action.dry_run(finding).params
    holder = cloud.instance()
    cloud.ec2.attach_volume(VolumeId=vol, InstanceId=holder, Device="/dev/sdf")

    outcome = action.execute(finding, params)

    assert outcome.result is Result.CHANGED
    assert cloud.volume_exists(vol)
    assert cloud.snapshots() == []


def test_volume_recover_reports_done_only_once_the_volume_is_gone(cloud: Cloud) -> None:
    vol = cloud.volume()
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    action = cleaner(Kind.IDLE_VOLUME)
    params = {**action.dry_run(finding).params, "action_id": 7}

    assert action.recover(finding, params) is None
    action.execute(finding, params)
    recovered = action.recover(finding, params)

    assert recovered is not None
    assert recovered.result is Result.DONE
    [snapshot] = cloud.snapshots()
    assert recovered.data == {"snapshot_id": snapshot["SnapshotId"]}


def test_delete_volume_takes_no_snapshot(cloud: Cloud) -> None:
    vol = cloud.volume(12, "st1")
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    action = cleaner(Kind.IDLE_VOLUME, config({"snapshot_before_delete": False}))

    check = action.dry_run(finding)
    outcome = action.execute(finding, check.params)

    assert action.action == "delete_volume"
    assert f"delete {vol} (12 GiB st1) without a snapshot" in check.verdict
    assert outcome.result is Result.DONE
    assert "snapshot_id" not in outcome.data
    assert not cloud.volume_exists(vol)
    assert cloud.snapshots() == []


# -- snapshot_tags -----------------------------------------------------------------------------

PARAMS = {
    "volume_id": "vol-1",
    "size_gb": 100,
    "volume_type": "io2",
    "zone": ZONE,
    "iops": 8000,
    "throughput": None,
}


def test_snapshot_tags_keep_the_originals_and_add_what_restore_needs() -> None:
    own = {"Name": "db", "aws:cloudformation:stack-name": "s", "costbot:keep-until": "2020-01-01"}

    tags = snapshot_tags("F1", {**PARAMS, "tags": own})

    assert tags == {
        "Name": "db",
        "costbot:source-volume": "vol-1",
        "costbot:finding-id": "F1",
        "costbot:volume-size": "100",
        "costbot:volume-type": "io2",
        "costbot:volume-az": ZONE,
        "costbot:volume-iops": "8000",
    }


def test_snapshot_tags_stay_within_the_ec2_limit() -> None:
    own = {f"k{n:02}": str(n) for n in range(MAX_TAGS)}

    tags = snapshot_tags("F1", {**PARAMS, "tags": own})

    assert len(tags) == MAX_TAGS == 50
    assert tags["costbot:finding-id"] == "F1"
    assert tags["costbot:source-volume"] == "vol-1"
    assert sum(1 for k in tags if k.startswith("costbot:")) == 6


# -- ReleaseAddress ----------------------------------------------------------------------------


def test_address_dry_run_execute_recover(cloud: Cloud) -> None:
    allocated = cloud.ec2.allocate_address(Domain="vpc")
    allocation, ip = allocated["AllocationId"], allocated["PublicIp"]
    finding = cloud.finding(Kind.UNATTACHED_IP, allocation)
    action = cleaner(Kind.UNATTACHED_IP)

    check = action.dry_run(finding)
    assert check.readiness is Readiness.READY
    assert dict(check.params) == {"ip": ip, "allocation_id": allocation}
    assert [a["AllocationId"] for a in cloud.ec2.describe_addresses()["Addresses"]] == [allocation]
    assert action.recover(finding, check.params) is None

    outcome = action.execute(finding, check.params)
    assert (outcome.result, dict(outcome.data)) == (Result.DONE, {"ip": ip})
    assert cloud.ec2.describe_addresses()["Addresses"] == []

    again = action.execute(finding, check.params)
    assert (again.result, dict(again.data)) == (Result.ALREADY_GONE, {"ip": ip})
    recovered = action.recover(finding, check.params)
    assert recovered is not None and recovered.result is Result.DONE
    assert ip in recovered.note


def test_address_associated_after_the_scan_is_changed_and_kept(cloud: Cloud) -> None:
    allocation = cloud.ec2.allocate_address(Domain="vpc")["AllocationId"]
    finding = cloud.finding(Kind.UNATTACHED_IP, allocation)
    holder = cloud.instance()
    cloud.ec2.associate_address(AllocationId=allocation, InstanceId=holder)
    action = cleaner(Kind.UNATTACHED_IP)

    check = action.dry_run(finding)
    outcome = action.execute(finding, {})

    assert check.readiness is Readiness.CHANGED
    assert holder in check.verdict
    assert outcome.result is Result.CHANGED
    [address] = cloud.ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert address["InstanceId"] == holder


def test_address_with_a_skip_tag_is_excluded(cloud: Cloud) -> None:
    allocation = cloud.ec2.allocate_address(Domain="vpc")["AllocationId"]
    finding = cloud.finding(Kind.UNATTACHED_IP, allocation)
    cloud.ec2.create_tags(Resources=[allocation], Tags=tag_list({"costbot:skip": "dns"}))

    check = cleaner(Kind.UNATTACHED_IP).dry_run(finding)

    assert check.readiness is Readiness.EXCLUDED
    assert len(cloud.ec2.describe_addresses()["Addresses"]) == 1


# -- ResizeInstance ----------------------------------------------------------------------------

RESIZE = config({"allow_resize": True})


def oversized(cloud: Cloud, tags: Mapping[str, str] | None = None) -> tuple[str, StoredFinding]:
    """An m5.2xlarge at ~3 % average and 12 % peak CPU for 14 days: m5.large fits
    (12 % x 8/2 vCPUs = 48 % <= 80 %), and m5 has nothing smaller."""
    iid = cloud.instance("m5.2xlarge", tags)
    backdate_launch(REGION, iid, T - timedelta(days=60))
    cloudwatch = session().client("cloudwatch", region_name=REGION)
    put_cpu_hours(cloudwatch, iid, T, 14, 3, 12, random.Random(3))
    finding = cloud.finding(Kind.OVERSIZED_INSTANCE, iid, RESIZE)
    assert finding.details["recommended_type"] == "m5.large"
    return iid, finding


def test_resize_dry_run_is_ready_and_changes_nothing(cloud: Cloud) -> None:
    iid, finding = oversized(cloud)

    check = cleaner(Kind.OVERSIZED_INSTANCE, RESIZE).dry_run(finding)

    assert check.readiness is Readiness.READY
    assert dict(check.params) == {
        "from_type": "m5.2xlarge",
        "to_type": "m5.large",
        "was_running": True,
    }
    assert f"would stop {iid}" in check.verdict
    assert "m5.2xlarge" in check.verdict and "m5.large" in check.verdict
    assert "start it again" in check.verdict
    assert cloud.instance_state(iid) == ("m5.2xlarge", "running")


def test_resize_of_a_stopped_instance_leaves_it_stopped(cloud: Cloud) -> None:
    iid, finding = oversized(cloud)
    cloud.ec2.stop_instances(InstanceIds=[iid])
    action = cleaner(Kind.OVERSIZED_INSTANCE, RESIZE)

    check = action.dry_run(finding)
    outcome = action.execute(finding, check.params)

    assert check.params["was_running"] is False
    assert outcome.result is Result.DONE
    assert dict(outcome.data) == {"from_type": "m5.2xlarge", "to_type": "m5.large"}
    assert cloud.instance_state(iid) == ("m5.large", "stopped")


def test_resize_refuses_auto_scaling_members(cloud: Cloud) -> None:
    iid, finding = oversized(cloud, {"aws:autoscaling:groupName": "workers"})
    action = cleaner(Kind.OVERSIZED_INSTANCE, RESIZE)

    check = action.dry_run(finding)
    outcome = action.execute(finding, {})

    assert check.readiness is Readiness.REFUSED
    assert "workers" in check.verdict
    assert outcome.result is Result.CHANGED
    assert cloud.instance_state(iid) == ("m5.2xlarge", "running")


def test_resize_of_an_instance_resized_by_hand_is_changed(cloud: Cloud) -> None:
    iid, finding = oversized(cloud)
    cloud.ec2.stop_instances(InstanceIds=[iid])
    cloud.ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "m5.xlarge"})

    check = cleaner(Kind.OVERSIZED_INSTANCE, RESIZE).dry_run(finding)

    assert check.readiness is Readiness.CHANGED
    assert "m5.xlarge" in check.verdict
    assert cloud.instance_state(iid) == ("m5.xlarge", "stopped")


def test_resize_of_a_terminated_instance_is_gone(cloud: Cloud) -> None:
    iid, finding = oversized(cloud)
    cloud.ec2.terminate_instances(InstanceIds=[iid])
    action = cleaner(Kind.OVERSIZED_INSTANCE, RESIZE)

    assert action.dry_run(finding).readiness is Readiness.GONE
    assert action.execute(finding, {}).result is Result.ALREADY_GONE


def test_resize_recover_restarts_an_instance_left_stopped(cloud: Cloud) -> None:
    iid, finding = oversized(cloud)
    action = cleaner(Kind.OVERSIZED_INSTANCE, RESIZE)
    params = dict(action.dry_run(finding).params)
    cloud.ec2.stop_instances(InstanceIds=[iid])  # the crash came between stop and modify

    not_done = action.recover(finding, params)

    assert not_done is None
    assert cloud.instance_state(iid) == ("m5.2xlarge", "running")

    cloud.ec2.stop_instances(InstanceIds=[iid])  # ...and between modify and start
    cloud.ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": "m5.large"})
    done = action.recover(finding, params)

    assert done is not None and done.result is Result.DONE
    assert cloud.instance_state(iid) == ("m5.large", "running")


# -- RestoreVolume -----------------------------------------------------------------------------


def test_restore_recreates_the_volume_from_its_snapshot(cloud: Cloud) -> None:
    vol = cloud.volume(40, "gp3", {"Name": "db-old", "team": "data"}, Iops=6000, Throughput=400)
    finding = cloud.finding(Kind.IDLE_VOLUME, vol)
    action = cleaner(Kind.IDLE_VOLUME)
    snapshot_id = action.execute(finding, action.dry_run(finding).params).data["snapshot_id"]
    other = cloud.ec2.create_snapshot(VolumeId=cloud.volume())["SnapshotId"]  # not costbot's
    restorer = RestoreVolume(clients())

    by_finding = restorer.find(ACCOUNT, REGION, finding_id=finding.id)
    by_id = restorer.find(ACCOUNT, REGION, snapshot_id=snapshot_id)
    assert by_finding is not None and by_id is not None
    assert by_finding["SnapshotId"] == by_id["SnapshotId"] == snapshot_id
    assert restorer.find(ACCOUNT, REGION, snapshot_id=other) is None
    assert restorer.find(ACCOUNT, REGION, snapshot_id="snap-0123456789abcdef0") is None
    assert restorer.find(ACCOUNT, REGION, finding_id="aws:nothing") is None

    restored = restorer.restore(ACCOUNT, REGION, by_id)

    assert (restored.source_volume, restored.finding_id) == (vol, finding.id)
    assert (restored.size_gb, restored.volume_type, restored.zone) == (40, "gp3", ZONE)
    [volume] = cloud.ec2.describe_volumes(VolumeIds=[restored.volume_id])["Volumes"]
    assert (volume["Size"], volume["VolumeType"], volume["AvailabilityZone"]) == (40, "gp3", ZONE)
    assert (volume["Iops"], volume["Throughput"]) == (6000, 400)
    assert volume["SnapshotId"] == snapshot_id
    assert tags_of(volume) == {
        "Name": "db-old",
        "team": "data",
        "costbot:restored-from": snapshot_id,
    }
