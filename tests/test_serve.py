"""`costbot serve` and `costbot run JOB` as real child processes.

serve: a config in tmp_path (no providers, jobs far in the future or off, probes on a free
port of 127.0.0.1) and a store seeded beforehand through Store's own API; the test polls
/healthz, checks /readyz, parses /metrics and compares every series with what it seeded, then
sends SIGTERM and expects exit code 0.

run: against a real moto_server (AWS_ENDPOINT_URL in the child's environment): exit codes
0 / 1 / 2 and the JSON log lines on stdout. The all-units-fail case points STS at a tiny
local server that refuses every call with 403 AccessDenied.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from costbot.approvals import Decision, decide
from costbot.jobs import JOB_NAMES
from costbot.model import Finding, Kind, Provider, Status, Unit
from costbot.store import Store
from tests.subprocs import (
    REPO,
    MotoServer,
    child_env,
    costbot_command,
    free_port,
    job_finished,
    json_lines,
    run_costbot,
    start_moto,
    stop,
    wait_http,
)

pytestmark = pytest.mark.timeout(90)

ACCOUNT = "111111111111"
T = datetime(2026, 11, 16, 10, 0, 0, 250000, tzinfo=UTC)
HOME = Unit(Provider.AWS, ACCOUNT, "us-east-1")
AWAY = Unit(Provider.AWS, ACCOUNT, "eu-west-1")
FAR_FUTURE = "0 0 29 2 *"
"""Only on 29 February: never during a test run."""


# -- Prometheus text parsing -------------------------------------------------------------------

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Series = dict[frozenset[tuple[str, str]], float]


def parse_metrics(text: str) -> tuple[dict[str, Series], dict[str, str]]:
    """Samples by metric name and label set, and the TYPE of every family."""
    samples: dict[str, Series] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not an exposition line: {line!r}"
        labels = frozenset(LABEL.findall(match["labels"] or ""))
        samples.setdefault(match["name"], {})[labels] = float(match["value"])
    return samples, types


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


# -- seeding the store -------------------------------------------------------------------------


def finding(unit: Unit, kind: Kind, resource_id: str, savings: float) -> Finding:
    return Finding(
        unit=unit,
        kind=kind,
        resource_id=resource_id,
        reason="seeded",
        monthly_cost_usd=savings,
        monthly_savings_usd=savings,
        price_source="bundled",
        price_date="2026-11-01",
        recommendation="delete it",
    )


OPEN_VOLUME = finding(HOME, Kind.IDLE_VOLUME, "vol-open", 8.0)
OPEN_IP = finding(HOME, Kind.UNATTACHED_IP, "eipalloc-open", 3.6)
CLEANED_VOLUME = finding(HOME, Kind.IDLE_VOLUME, "vol-cleaned", 16.0)

HOME_STARTED, HOME_FINISHED = T, T + timedelta(seconds=2.5)
AWAY_OK_FINISHED = T - timedelta(hours=3) + timedelta(seconds=1)
AWAY_FAILED_AT = T + timedelta(minutes=1)


def seed(store: Store) -> None:
    """HOME: one ok scan with 3 findings, one of them approved and cleaned. AWAY: an ok scan
    3 hours earlier, then a failed one (so its last success is the older one)."""
    store.record_scan(
        HOME,
        run_id="run-1",
        started_at=HOME_STARTED,
        finished_at=HOME_FINISHED,
        findings=[OPEN_VOLUME, OPEN_IP, CLEANED_VOLUME],
        resource_counts={"volumes": 2, "addresses": 1},
    )
    store.record_scan(
        AWAY,
        run_id="run-0",
        started_at=T - timedelta(hours=3),
        finished_at=AWAY_OK_FINISHED,
        findings=[],
        resource_counts={},
    )
    store.record_scan(
        AWAY,
        run_id="run-1",
        started_at=AWAY_FAILED_AT,
        finished_at=AWAY_FAILED_AT,
        findings=[],
        resource_counts={},
        error="ec2:DescribeVolumes: RequestExpired: seeded failure",
    )
    store.transition(CLEANED_VOLUME.id, Status.APPROVED, actor="alice", now=T)
    action = store.begin_action(
        CLEANED_VOLUME.id,
        action="snapshot_and_delete_volume",
        run_id="clean-1",
        params={},
        actor="costbot:cleanup",
        now=T,
    )
    store.finish_action(
        action,
        result="done",
        note="deleted vol-cleaned",
        data={},
        to=Status.CLEANED,
        actor="costbot:cleanup",
        now=T,
    )


# -- the serve process -------------------------------------------------------------------------


class Served:
    """A running `costbot serve` child."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, store: Store, log: Path):
        self.process, self.url, self.store, self.log = process, url, store, log

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as answer:
                return int(answer.status), answer.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    store = Store(tmp_path / "serve.db")
    seed(store)
    port = free_port()
    config = tmp_path / "costbot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"path": str(store.path)},
                "pricing": {"source": "bundled"},
                "schedule": dict.fromkeys(JOB_NAMES) | {"scan": FAR_FUTURE},
                "serve": {"listen": f"127.0.0.1:{port}"},
            }
        )
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            costbot_command(config, "serve"),
            cwd=REPO,
            env=child_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        assert wait_http(f"{url}/healthz", 30, process) == 200, log.read_text()
        yield Served(process, url, store, log)
    finally:
        stop(process)


def test_probes_answer_and_sigterm_exits_zero(served: Served) -> None:
    assert served.get("/healthz") == (200, "ok\n")
    assert served.get("/readyz") == (200, "ready\n")
    assert served.get("/nowhere")[0] == 404
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=10) == 0
    assert f"costbot serving on {served.url}" in served.log.read_text()


def test_metrics_expose_the_seeded_store(served: Served) -> None:
    status, text = served.get("/metrics")
    assert status == 200
    samples, types = parse_metrics(text)

    aws = {"provider": "aws"}
    home = labels(**aws, account=ACCOUNT, region="us-east-1")
    away = labels(**aws, account=ACCOUNT, region="eu-west-1")
    assert samples["costbot_findings_open"] == {
        labels(**aws, kind="idle_volume"): 1,
        labels(**aws, kind="unattached_ip"): 1,
    }
    assert samples["costbot_monthly_savings_open_usd"] == {
        labels(**aws, kind="idle_volume"): 8.0,
        labels(**aws, kind="unattached_ip"): 3.6,
    }
    assert samples["costbot_monthly_savings_realised_usd"] == {
        labels(**aws, kind="idle_volume"): 16.0
    }
    assert set(samples["costbot_last_successful_scan_timestamp_seconds"]) == {home, away}
    assert samples["costbot_scan_duration_seconds"] == {home: 2.5, away: 0.0}
    assert samples["costbot_scan_up"] == {home: 1, away: 0}
    assert samples["costbot_scan_errors_total"] == {labels(**aws, region="eu-west-1"): 1}
    assert samples["costbot_cleanup_actions_total"] == {
        labels(action="snapshot_and_delete_volume", result="done"): 1
    }
    assert samples["costbot_findings"] == {
        labels(**aws, kind="idle_volume", status="open"): 1,
        labels(**aws, kind="idle_volume", status="cleaned"): 1,
        labels(**aws, kind="unattached_ip", status="open"): 1,
    }
    assert types["costbot_scan_errors_total"] == "counter"
    assert types["costbot_cleanup_actions_total"] == "counter"
    assert types["costbot_findings_open"] == "gauge"
    # no job has run in this process yet
    assert "costbot_job_runs_total" not in samples
    assert types["costbot_job_runs_total"] == "counter"

    # every scrape reads the store: a new failure shows up on the next one
    served.store.record_scan(
        HOME,
        run_id="run-2",
        started_at=T + timedelta(hours=1),
        finished_at=T + timedelta(hours=1),
        findings=[],
        resource_counts={},
        error="seeded second failure",
    )
    again, _ = parse_metrics(served.get("/metrics")[1])
    assert again["costbot_scan_errors_total"] == {
        labels(**aws, region="eu-west-1"): 1,
        labels(**aws, region="us-east-1"): 1,
    }
    assert again["costbot_scan_up"] == {home: 0, away: 0}
    # a failed scan never moves the last success
    assert set(again["costbot_last_successful_scan_timestamp_seconds"]) == {home, away}


def test_last_successful_scan_timestamps_are_exact(served: Served) -> None:
    samples, _ = parse_metrics(served.get("/metrics")[1])
    home = labels(provider="aws", account=ACCOUNT, region="us-east-1")
    away = labels(provider="aws", account=ACCOUNT, region="eu-west-1")
    assert samples["costbot_last_successful_scan_timestamp_seconds"] == {
        home: pytest.approx(HOME_FINISHED.timestamp(), abs=0.001),
        away: pytest.approx(AWAY_OK_FINISHED.timestamp(), abs=0.001),
    }


# -- costbot run JOB against moto_server -------------------------------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    yield server
    stop(server.process)


def write_config(path: Path, store: Path, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "providers": {"aws": {"regions": ["us-east-1"]}},
        "rules": {"idle_volume": {"min_unattached_days": 0}},
        "pricing": {"source": "bundled"},
        "store": {"path": str(store)},
        "cleanup": {"cli_approvers": ["alice"]},
    }
    data.update(sections)
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_scan_then_cleanup_exit_zero_with_json_logs(moto: MotoServer, tmp_path: Path) -> None:
    moto.reset()
    ec2 = moto.client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, VolumeType="gp3")
    config = write_config(tmp_path / "c.yaml", tmp_path / "run.db")
    env = child_env(moto.url)

    scan = run_costbot(config, "run", "scan", env=env)
    assert scan.returncode == 0, scan.stderr
    records = json_lines(scan.stdout)
    summary = job_finished(records, "scan")
    assert summary["ok"] is True
    assert (summary["units"], summary["failed_units"], summary["findings"]) == (1, 0, 1)
    assert summary["level"] == "info"

    store = Store(tmp_path / "run.db")
    [stored] = store.findings()
    assert stored.resource_id == volume["VolumeId"]
    decide(
        store,
        [stored.id],
        Decision.APPROVE,
        actor="alice",
        approvers=["alice"],
        actionable={(Provider.AWS, Kind.IDLE_VOLUME)},
        source={"via": "test"},
    )

    cleanup = run_costbot(config, "run", "cleanup", env=env)
    assert cleanup.returncode == 0, cleanup.stderr
    records = json_lines(cleanup.stdout)
    summary = job_finished(records, "cleanup")
    assert (summary["ok"], summary["execute"], summary["would_clean"]) == (True, False, 1)
    outcomes = [r for r in records if r.get("message") == "cleanup outcome"]
    assert [(r["job"], r["finding_id"], r["stage"]) for r in outcomes] == [
        ("cleanup", stored.id, "would_clean")
    ]
    # a dry run: the volume is still there and the finding still approved
    assert ec2.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"]
    assert store.get(stored.id).status is Status.APPROVED


def test_run_with_a_config_typo_exits_two(moto: MotoServer, tmp_path: Path) -> None:
    config = tmp_path / "typo.yaml"
    config.write_text("providers:\n  aws:\n    regoins: [us-east-1]\n")
    done = run_costbot(config, "run", "scan", env=child_env(moto.url))
    assert done.returncode == 2
    assert "did you mean 'regions'" in done.stderr
    assert "Traceback" not in done.stderr


class RefuseSts(BaseHTTPRequestHandler):
    """An STS endpoint that refuses every call (403 AccessDenied, not retried by botocore)."""

    calls = 0
    BODY = (
        b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error>'
        b"<Type>Sender</Type><Code>AccessDenied</Code>"
        b"<Message>refused by the test</Message></Error><RequestId>r</RequestId>"
        b"</ErrorResponse>"
    )

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).calls += 1
        self.send_response(403)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_sts() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RefuseSts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_run_scan_where_every_unit_fails_exits_one(
    moto: MotoServer, tmp_path: Path, refusing_sts: str
) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        tmp_path / "fail.db",
        providers={"aws": {"regions": ["us-east-1", "eu-west-1"]}},
    )
    RefuseSts.calls = 0
    env = child_env(moto.url, AWS_ENDPOINT_URL_STS=refusing_sts)
    done = run_costbot(config, "run", "scan", env=env)
    assert done.returncode == 1, done.stderr
    records = json_lines(done.stdout)
    summary = job_finished(records, "scan")
    assert summary["ok"] is False
    assert (summary["units"], summary["failed_units"], summary["findings"]) == (2, 2, 0)
    assert summary["level"] == "error"
    failed = [r for r in records if r.get("message") == "scan unit failed" and "job" in r]
    assert {r["region"] for r in failed} == {"us-east-1", "eu-west-1"}
    assert all("AccessDenied" in r["error"] for r in failed)
    assert RefuseSts.calls >= 1
    scans = Store(tmp_path / "fail.db").latest_scans()
    assert sorted((s["region"], s["ok"]) for s in scans) == [("eu-west-1", 0), ("us-east-1", 0)]
