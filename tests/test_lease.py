"""The cleanup lease: only one process acts at a time.

1. Store.acquire_lease / release_lease semantics with explicit clocks: held, renewed by the
   same holder, taken over once expired, released only by its holder, and exactly one winner
   when many connections race for it.
2. Two real `python -m costbot run cleanup --execute` processes started together against a
   real moto_server, after a CLI scan and a CLI approval: the volume is deleted exactly once.
3. In-process (moto's mock_aws, real cleaners): a run refuses while someone else holds the
   lease, and a run whose lease was taken over mid-way must stop acting.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from cleaners import build_cleaners
from costbot.approvals import Decision, decide
from costbot.cleanup import LEASE, LEASE_TTL, CleanupRun, Stage
from costbot.jobs import Jobs
from costbot.model import Kind, Provider, Status
from costbot.pricing import AwsPriceBook
from costbot.providers.aws import AwsProvider
from costbot.scan import run_scan
from costbot.store import Store, utcnow
from tests.conftest import make_config
from tests.subprocs import (
    REPO,
    MotoServer,
    child_env,
    costbot_command,
    job_finished,
    json_lines,
    run_costbot,
    start_moto,
    stop,
)

pytestmark = pytest.mark.timeout(90)

T = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
TTL = timedelta(minutes=10)
FINDING_TAG = "costbot:finding-id"


# -- Store.acquire_lease / release_lease -------------------------------------------------------


def test_a_held_lease_refuses_others_and_names_the_holder(store: Store) -> None:
    assert store.acquire_lease("cleanup", "host-a", TTL, T) is None
    refused = store.acquire_lease("cleanup", "host-b", TTL, T + timedelta(minutes=9))
    assert refused == f"host-a until {(T + TTL).isoformat()}"
    # other lease names are independent
    assert store.acquire_lease("notify", "host-b", TTL, T) is None


def test_the_holder_renews_and_pushes_the_expiry(store: Store) -> None:
    assert store.acquire_lease("cleanup", "host-a", TTL, T) is None
    assert store.acquire_lease("cleanup", "host-a", TTL, T + timedelta(minutes=5)) is None
    # without the renewal host-b would have had it at T+10m
    later = T + timedelta(minutes=12)
    assert store.acquire_lease("cleanup", "host-b", TTL, later) == (
        f"host-a until {(T + timedelta(minutes=15)).isoformat()}"
    )
    assert (
        store.acquire_lease("cleanup", "host-b", TTL, T + timedelta(minutes=15, seconds=1)) is None
    )


def test_an_expired_lease_is_taken_over(store: Store) -> None:
    assert store.acquire_lease("cleanup", "crashed", TTL, T) is None
    takeover = T + TTL + timedelta(seconds=1)
    assert store.acquire_lease("cleanup", "host-b", TTL, takeover) is None
    # the old holder comes back: it no longer holds it
    assert store.acquire_lease("cleanup", "crashed", TTL, takeover) == (
        f"host-b until {(takeover + TTL).isoformat()}"
    )


def test_only_the_holder_releases(store: Store) -> None:
    assert store.acquire_lease("cleanup", "host-a", TTL, T) is None
    store.release_lease("cleanup", "host-b")
    assert store.acquire_lease("cleanup", "host-b", TTL, T) is not None
    store.release_lease("cleanup", "host-a")
    assert store.acquire_lease("cleanup", "host-b", TTL, T) is None


def test_exactly_one_of_many_racing_connections_wins(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    Store(path)
    contenders = 12
    go = threading.Barrier(contenders)
    answers: dict[str, str | None] = {}
    lock = threading.Lock()

    def race(holder: str) -> None:
        store = Store(path)  # its own connections, like another process
        go.wait(timeout=10)
        answer = store.acquire_lease("cleanup", holder, TTL, T)
        with lock:
            answers[holder] = answer

    threads = [threading.Thread(target=race, args=(f"h{n}",)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == contenders
    winners = [h for h, answer in answers.items() if answer is None]
    assert len(winners) == 1
    assert {answer for answer in answers.values() if answer} == {
        f"{winners[0]} until {(T + TTL).isoformat()}"
    }


def test_the_lease_outlives_the_longest_single_action(store: Store) -> None:
    config = make_config("cleanup:\n  snapshot_timeout_minutes: 240\n")
    run = CleanupRun(config, store, {}, execute=False)
    assert timedelta(minutes=config.cleanup.snapshot_timeout_minutes) < run.lease_ttl


# -- a run and the holder it finds -------------------------------------------------------------


def cleanup_jobs(tmp_path: Path) -> Jobs:
    """Jobs on a config with nothing to clean: only the lease logic matters."""
    path = tmp_path / "holders.db"
    return Jobs(make_config(f"store:\n  path: {path}\n"), Store(path), build_cleaners, execute=True)


def finished_pid() -> int:
    """The pid of a child process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@pytest.mark.parametrize(
    ("holder", "taken_over"),
    [
        (lambda: f"{socket.gethostname()}:{finished_pid()}:deadrun", True),
        (lambda: f"{socket.gethostname()}:{os.getpid()}:liverun", False),
        (lambda: f"elsewhere.example:{finished_pid()}:run", False),
        (lambda: "not-a-holder-id", False),
    ],
    ids=["dead-here", "alive-here", "other-host", "unparsable"],
)
def test_only_a_dead_local_holder_is_taken_over_before_its_ttl(
    tmp_path: Path, holder: Callable[[], str], taken_over: bool
) -> None:
    jobs = cleanup_jobs(tmp_path)
    who = holder()
    assert jobs.store.acquire_lease(LEASE, who, LEASE_TTL, utcnow()) is None

    result = jobs.run("cleanup")

    assert result.ok is taken_over, result.summary
    if taken_over:
        # the run released its lease when done: anyone may take it now
        assert jobs.store.acquire_lease(LEASE, "next", LEASE_TTL, utcnow()) is None
    else:
        assert f"another cleanup run is in progress ({who} until" in result.summary["error"]
        assert jobs.store.acquire_lease(LEASE, "next", LEASE_TTL, utcnow()) is not None


# -- two real processes race for one approved volume -------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    stop(server.process)


def volume_exists(ec2: Any, volume_id: str) -> bool:
    try:
        return bool(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"])
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "InvalidVolume.NotFound"
        return False


def test_two_cleanup_processes_delete_the_volume_exactly_once(
    moto: MotoServer, tmp_path: Path
) -> None:
    moto.reset()
    ec2 = moto.client("ec2")
    volume_id = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8, VolumeType="gp3")[
        "VolumeId"
    ]
    config = tmp_path / "costbot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "providers": {"aws": {"regions": ["us-east-1"]}},
                "rules": {"idle_volume": {"min_unattached_days": 0}},
                "pricing": {"source": "bundled"},
                "store": {"path": str(tmp_path / "lease.db")},
                "cleanup": {"execute": True, "cli_approvers": ["alice"]},
            }
        )
    )
    env = child_env(moto.url)
    scanned = run_costbot(config, "run", "scan", env=env)
    assert scanned.returncode == 0, scanned.stderr
    store = Store(tmp_path / "lease.db")
    [finding] = store.findings()
    assert finding.resource_id == volume_id
    approved = run_costbot(config, "approve", finding.id, "--by", "alice", env=env)
    assert approved.returncode == 0, approved.stderr

    racers = [
        subprocess.Popen(
            costbot_command(config, "run", "cleanup", "--execute"),
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    try:
        for racer in racers:
            out, err = racer.communicate(timeout=60)
            outputs.append((racer.returncode, job_finished(json_lines(out), "cleanup"), err))
    finally:
        for racer in racers:
            stop(racer)

    # never two deletes: one snapshot, one action with a result, one intent
    assert not volume_exists(ec2, volume_id)
    snapshots = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{FINDING_TAG}", "Values": [finding.id]}]
    )["Snapshots"]
    assert len(snapshots) == 1
    [action] = store.actions(finding.id)
    assert (action.action, action.result) == ("snapshot_and_delete_volume", "done")
    assert [e.type for e in store.events(finding.id)].count("intent") == 1
    assert store.get(finding.id).status is Status.CLEANED

    cleaned = [o for o in outputs if o[1].get("cleaned")]
    others = [o for o in outputs if not o[1].get("cleaned")]
    assert len(cleaned) == 1 and len(others) == 1, outputs
    code, summary, _ = cleaned[0]
    assert (code, summary["cleaned"], summary["execute"]) == (0, 1, True)
    code, summary, _ = others[0]
    if code == 1:  # it lost the race for the lease
        assert "another cleanup run is in progress" in summary["error"]
    else:  # it came second, after the lease was released: nothing left to do
        assert (code, summary) == (0, {**summary, "ok": True, "execute": True})
        assert not {"cleaned", "failed", "would_clean"} & set(summary)


# -- in-process: a run and the lease -----------------------------------------------------------


@pytest.fixture
def two_approved(aws: None, store: Store) -> tuple[Any, list[str], list[str]]:
    """Two unattached volumes in moto's in-process AWS, scanned and approved by alice."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    volumes = [
        ec2.create_volume(AvailabilityZone="us-east-1a", Size=size, VolumeType="gp3")["VolumeId"]
        for size in (5, 6)
    ]
    config = lease_config()
    aws_config = config.providers.aws
    assert aws_config is not None
    provider = AwsProvider(aws_config, config.rules.oversized_instance)
    report = run_scan(config, store, [provider], {Provider.AWS: AwsPriceBook(live=False)})
    assert not report.failed
    ids = [f.id for f in store.findings()]
    assert len(ids) == 2
    decide(
        store,
        ids,
        Decision.APPROVE,
        actor="alice",
        approvers=["alice"],
        actionable={(Provider.AWS, Kind.IDLE_VOLUME)},
        source={"via": "test"},
    )
    return ec2, volumes, ids


def lease_config() -> Any:
    return make_config(
        """
        providers:
          aws:
            regions: [us-east-1]
        rules:
          idle_volume:
            min_unattached_days: 0
        cleanup:
          execute: true
          cli_approvers: [alice]
        """
    )


def test_a_cleanup_job_refuses_while_another_holder_has_the_lease(
    store: Store, two_approved: tuple[Any, list[str], list[str]]
) -> None:
    ec2, volumes, ids = two_approved
    config = lease_config()
    jobs = Jobs(config, store, build_cleaners, execute=True)
    assert store.acquire_lease(LEASE, "other-host:1:run", LEASE_TTL, utcnow()) is None

    refused = jobs.run("cleanup")

    assert (refused.ok, refused.exit_code) == (False, 1)
    assert "another cleanup run is in progress (other-host:1:run until" in refused.summary["error"]
    assert all(volume_exists(ec2, v) for v in volumes)
    assert all(store.actions(i) == [] for i in ids)

    # the other holder goes away: the next run acts and gives the lease back afterwards
    store.release_lease(LEASE, "other-host:1:run")
    done = jobs.run("cleanup")
    assert (done.ok, done.summary) == (True, {"execute": True, "cleaned": 2})
    assert not any(volume_exists(ec2, v) for v in volumes)
    assert store.acquire_lease(LEASE, "next", LEASE_TTL, utcnow()) is None


def test_a_run_whose_lease_was_taken_over_stops_acting(
    store: Store, two_approved: tuple[Any, list[str], list[str]]
) -> None:
    """While the first volume's snapshot is being taken, the lease runs out and another
    holder takes it (its clock is past the TTL). The run must not act on the second one."""
    ec2, volumes, _ids = two_approved
    intruded: list[str | None] = []

    def intrude(params: dict[str, Any], **_: Any) -> None:
        if params.get("DryRun") or intruded:
            return
        later = utcnow() + timedelta(days=1)  # past any lease the run could hold
        intruded.append(store.acquire_lease(LEASE, "intruder", LEASE_TTL, later))

    def session(**credentials: Any) -> boto3.Session:
        made = boto3.Session(**credentials)
        made.events.register("before-parameter-build.ec2.CreateSnapshot", intrude)
        return made

    cleaners = build_cleaners(lease_config(), session_factory=session)
    report = CleanupRun(lease_config(), store, cleaners, execute=True).run()

    assert intruded == [None]  # the takeover really happened, mid-run
    stages = [line.stage for line in report.lines]
    assert stages.count(Stage.CLEANED) == 1
    assert sum(volume_exists(ec2, v) for v in volumes) == 1
