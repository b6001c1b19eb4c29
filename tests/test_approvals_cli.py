"""The decision and cleanup commands (approve, reject, snooze, clean, history, restore) through
click's CliRunner, inside moto's in-process AWS, with a real config file and store in tmp_path.

Every refused decision must exit 1 and change nothing: same status, same audit trail.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
import yaml
from botocore.exceptions import ClientError
from click.testing import CliRunner, Result

from costbot.cli import cli
from costbot.demo import backdate_launch, put_cpu_hours
from costbot.model import Kind, Provider, Status, Unit, finding_id
from costbot.store import Store

ACCOUNT = "123456789012"
REGION = "us-east-1"
ZONE = "us-east-1a"

pytestmark = pytest.mark.usefixtures("aws")


LOADER = botocore.loaders.create_loader()
"""Shared parsed service models for the test's own clients (the CLI builds its own sessions)."""


def client(service: str) -> Any:
    core = botocore.session.get_session()
    core.register_component("data_loader", LOADER)
    made = boto3.Session(botocore_session=core).client(service, region_name=REGION)
    LOADER.search_paths[:] = list(dict.fromkeys(LOADER.search_paths))
    return made


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tags_of(raw: Mapping[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


def fid(kind: Kind, resource_id: str) -> str:
    return finding_id(Unit(Provider.AWS, ACCOUNT, REGION), kind, resource_id)


@dataclass
class Costbot:
    """The `costbot` command with a config file in tmp_path, and moto's EC2 beside it."""

    tmp_path: Path
    ec2: Any

    @property
    def store(self) -> Store:
        return Store(self.tmp_path / "costbot.db")

    def write_config(self, name: str = "costbot.yaml", **cleanup: Any) -> Path:
        data = {
            "providers": {"aws": {"regions": [REGION]}},
            "rules": {
                "idle_volume": {"min_unattached_days": 0},
                "unattached_ip": {"min_unattached_days": 0},
            },
            "pricing": {"source": "bundled"},
            "store": {"path": str(self.tmp_path / "costbot.db")},
            "cleanup": {"execute": True, "cli_approvers": ["alice"], **cleanup},
        }
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    def __call__(self, *args: str, config: Path | None = None) -> Result:
        path = config or self.tmp_path / "costbot.yaml"
        return CliRunner().invoke(cli, ["--config", str(path), *args])

    def volume(self, size: int = 10, tags: Mapping[str, str] | None = None, **extra: Any) -> str:
        specs = [{"ResourceType": "volume", "Tags": tag_list(tags)}] if tags else []
        made = self.ec2.create_volume(
            AvailabilityZone=ZONE, Size=size, TagSpecifications=specs, **extra
        )
        return str(made["VolumeId"])

    def scan(self) -> set[str]:
        result = self("scan", "--format", "json")
        assert result.exit_code == 0, result.output
        return {f["id"] for f in json.loads(result.stdout)}

    def volume_exists(self, volume_id: str) -> bool:
        try:
            return bool(self.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"])
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "InvalidVolume.NotFound"
            return False

    def trail(self, finding: str) -> list[tuple[str, str | None, str | None, str]]:
        return [(e.type, e.from_status, e.to_status, e.actor) for e in self.store.events(finding)]


@pytest.fixture
def costbot(tmp_path: Path) -> Costbot:
    bot = Costbot(tmp_path, client("ec2"))
    bot.write_config()
    return bot


@pytest.fixture
def scanned(costbot: Costbot) -> tuple[str, str]:
    """One unattached volume, scanned: (volume id, finding id)."""
    vol = costbot.volume(tags={"Name": "scratch"})
    finding = fid(Kind.IDLE_VOLUME, vol)
    assert costbot.scan() == {finding}
    return vol, finding


# -- approve -----------------------------------------------------------------------------------


def test_approve_by_someone_not_listed_exits_1_and_changes_nothing(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    _, finding = scanned
    before = costbot.trail(finding)

    result = costbot("approve", finding, "--by", "mallory")

    assert result.exit_code == 1
    assert "mallory is not a configured approver" in result.output
    assert costbot.store.get(finding).status is Status.OPEN
    assert costbot.trail(finding) == before


def test_approve_of_an_unknown_id_exits_1(costbot: Costbot, scanned: tuple[str, str]) -> None:
    _, finding = scanned

    result = costbot("approve", "aws:123456789012:us-east-1:idle_volume:vol-nope", "--by", "alice")

    assert result.exit_code == 1
    assert "no finding with id" in result.output
    assert costbot.store.get(finding).status is Status.OPEN


def test_approve_of_an_advisory_finding_exits_1_and_approves_none(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    _, volume_finding = scanned
    made = costbot.ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType="m5.2xlarge",
        Placement={"AvailabilityZone": ZONE},
    )
    iid = made["Instances"][0]["InstanceId"]
    now = datetime.now(UTC)
    backdate_launch(REGION, iid, now - timedelta(days=90))
    cloudwatch = client("cloudwatch")
    put_cpu_hours(cloudwatch, iid, now, 14, 3, 12, random.Random(5))
    oversized = fid(Kind.OVERSIZED_INSTANCE, iid)
    assert oversized in costbot.scan()
    before = {f: costbot.trail(f) for f in (volume_finding, oversized)}

    result = costbot("approve", volume_finding, oversized, "--by", "alice")  # allow_resize: false

    assert result.exit_code == 1
    assert "advisory" in result.output
    for finding, trail in before.items():
        assert costbot.store.get(finding).status is Status.OPEN
        assert costbot.trail(finding) == trail


def test_approving_twice_says_it_is_already_approved(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    _, finding = scanned

    first = costbot("approve", finding, "--by", "alice")
    second = costbot("approve", finding, "--by", "alice")

    assert first.exit_code == 0, first.output
    assert f"approved: {finding} (by alice)" in first.output
    assert second.exit_code == 1
    assert "already approved by alice" in second.output
    stored = costbot.store.get(finding)
    assert (stored.status, stored.approved_by) == (Status.APPROVED, "alice")
    assert stored.approval_source == {"via": "cli", "recommendation": stored.recommendation}
    assert [t for t in costbot.trail(finding) if t[0] == "status"] == [
        ("status", None, "open", "costbot:scan"),
        ("status", "open", "approved", "alice"),
    ]


# -- reject and snooze -------------------------------------------------------------------------


def test_reject_and_snooze_move_the_status(costbot: Costbot) -> None:
    rejected, snoozed = (fid(Kind.IDLE_VOLUME, costbot.volume()) for _ in range(2))
    assert costbot.scan() == {rejected, snoozed}

    reject = costbot("reject", rejected, "--by", "alice")
    snooze = costbot("snooze", snoozed, "--days", "7", "--by", "alice")

    assert reject.exit_code == 0, reject.output
    assert snooze.exit_code == 0, snooze.output
    assert f"rejected: {rejected} (by alice)" in reject.output
    assert f"snoozed: {snoozed} (by alice) until" in snooze.output
    assert costbot.store.get(rejected).status is Status.REJECTED
    stored = costbot.store.get(snoozed)
    assert stored.status is Status.SNOOZED
    assert stored.snoozed_until is not None
    assert stored.snoozed_until - stored.status_changed_at == timedelta(days=7)
    assert costbot.trail(rejected)[-1] == ("status", "open", "rejected", "alice")
    assert costbot.trail(snoozed)[-1] == ("status", "open", "snoozed", "alice")


def test_snooze_needs_a_positive_number_of_days(costbot: Costbot, scanned: tuple[str, str]) -> None:
    _, finding = scanned

    result = costbot("snooze", finding, "--days", "0", "--by", "alice")

    assert result.exit_code == 2
    assert costbot.store.get(finding).status is Status.OPEN


# -- clean -------------------------------------------------------------------------------------


def test_clean_without_execute_prints_the_verdict_and_acts_on_nothing(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    vol, finding = scanned
    assert costbot("approve", finding, "--by", "alice").exit_code == 0

    table = costbot("clean")
    as_json = costbot("clean", "--format", "json")

    assert table.exit_code == 0, table.output
    assert vol in table.output
    assert "would_clean" in table.output
    assert as_json.exit_code == 0, as_json.output
    [line] = json.loads(as_json.stdout)
    assert line["finding_id"] == finding
    assert line["resource_id"] == vol
    assert line["stage"] == "would_clean"
    assert f"would snapshot {vol}" in line["text"]
    assert "no --execute" in line["text"]
    assert costbot.volume_exists(vol)
    assert costbot.store.get(finding).status is Status.APPROVED
    assert costbot.store.actions(finding) == []


def test_clean_execute_needs_cleanup_execute_in_the_config_too(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    vol, finding = scanned
    assert costbot("approve", finding, "--by", "alice").exit_code == 0
    cautious = costbot.write_config("cautious.yaml", execute=False)

    table = costbot("clean", "--execute", config=cautious)
    as_json = costbot("clean", "--execute", "--format", "json", config=cautious)

    assert table.exit_code == 0, table.output
    assert "--execute given but cleanup.execute is false" in table.output
    [line] = json.loads(as_json.stdout)
    assert line["stage"] == "would_clean"
    assert "cleanup.execute is false" in line["text"]
    assert costbot.volume_exists(vol)
    assert costbot.store.actions(finding) == []


def test_clean_execute_deletes_and_history_shows_every_step(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    vol, finding = scanned
    assert costbot("approve", finding, "--by", "alice").exit_code == 0

    cleaned = costbot("clean", "--execute", "--format", "json")
    history = costbot("history", finding, "--format", "json")

    assert cleaned.exit_code == 0, cleaned.output
    [line] = json.loads(cleaned.stdout)
    assert (line["finding_id"], line["stage"]) == (finding, "cleaned")
    assert not costbot.volume_exists(vol)
    assert costbot.store.get(finding).status is Status.CLEANED
    assert history.exit_code == 0, history.output
    events = json.loads(history.stdout)
    assert isinstance(events, list)
    for event in events:
        assert {"time", "actor", "from", "to", "note"} <= set(event)
        assert datetime.fromisoformat(event["time"]).tzinfo is not None
    assert [(e["type"], e["from"], e["to"], e["actor"]) for e in events] == [
        ("status", None, "open", "costbot:scan"),
        ("status", "open", "approved", "alice"),
        ("dry_run", None, None, "costbot:cleanup"),
        ("intent", None, None, "costbot:cleanup"),
        ("result", "approved", "cleaned", "costbot:cleanup"),
    ]
    assert events[-1]["data"]["snapshot_id"].startswith("snap-")


def test_history_of_an_unknown_id_exits_1(costbot: Costbot) -> None:
    result = costbot("history", "aws:123456789012:us-east-1:idle_volume:vol-nope")

    assert result.exit_code == 1
    assert "no finding with id" in result.output


# -- restore -----------------------------------------------------------------------------------


def test_restore_by_finding_id_and_by_snapshot_id(costbot: Costbot) -> None:
    own = {"Name": "db-old", "team": "data"}
    vol = costbot.volume(40, own, VolumeType="gp3", Iops=6000, Throughput=400)
    finding = fid(Kind.IDLE_VOLUME, vol)
    assert costbot.scan() == {finding}
    assert costbot("approve", finding, "--by", "alice").exit_code == 0
    assert costbot("clean", "--execute").exit_code == 0
    assert not costbot.volume_exists(vol)
    [snapshot] = costbot.ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    snapshot_id = snapshot["SnapshotId"]

    results = [costbot("restore", finding), costbot("restore", snapshot_id, "--by", "bob")]

    new_volumes = []
    for result in results:
        assert result.exit_code == 0, result.output
        assert f"restored {vol} as vol-" in result.output
        assert f"(40 GiB gp3 in {ZONE}) from {snapshot_id}" in result.output
        new_volumes.append(result.output.split(" as ")[1].split(" ")[0])
    assert len(set(new_volumes)) == 2
    for restored in costbot.ec2.describe_volumes(VolumeIds=new_volumes)["Volumes"]:
        assert (restored["Size"], restored["VolumeType"]) == (40, "gp3")
        assert restored["AvailabilityZone"] == ZONE
        assert (restored["Iops"], restored["Throughput"]) == (6000, 400)
        assert tags_of(restored) == {**own, "costbot:restored-from": snapshot_id}
    notes = [e for e in costbot.store.events(finding) if e.type == "note"]
    assert [(n.actor, n.data["volume_id"]) for n in notes] == list(
        zip(["cli", "bob"], new_volumes, strict=True)
    )


def test_restore_without_a_costbot_snapshot_exits_1(
    costbot: Costbot, scanned: tuple[str, str]
) -> None:
    _, finding = scanned

    by_finding = costbot("restore", finding)
    by_snapshot = costbot("restore", "snap-0123456789abcdef0")

    assert by_finding.exit_code == 1
    assert by_snapshot.exit_code == 1
    assert "no costbot snapshot found" in by_finding.output
    assert "no costbot snapshot found" in by_snapshot.output
