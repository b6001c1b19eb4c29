"""Crash injection with real processes: `costbot clean --execute` SIGKILLed mid-DeleteVolume.

A real `moto_server` process plays AWS. Between it and the `costbot` CLI (run as subprocesses)
sits a small forwarding proxy in this test process that relays every request verbatim, except
that it can be armed to hold the first real (not DryRun) `DeleteVolume`:

(a) before forwarding it, so moto never deletes the volume (the snapshot already exists), or
(b) after moto deleted the volume, before the answer reaches costbot.

While the request is held the costbot process is SIGKILLed, so its intent row has no result
(and its cleanup lease stays behind; the test expires it, as LEASE_TTL eventually would).
A second `costbot clean --execute` must then recover without repeating anything blindly: the
finding ends `cleaned`, the volume is gone, exactly one costbot snapshot exists for the finding
(the one from the killed run is reused, not duplicated), the actions table has no open intent
and exactly the expected results, and every intent event in `costbot history` has its result.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from costbot.cleanup import LEASE

REGION = "us-east-1"
FAKE_KEY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
VOLUME_TAGS = {"Name": "scratch-data", "team": "ml"}
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)
CONFIG = """\
providers:
  aws:
    regions: [{region}]
rules:
  idle_volume:
    min_unattached_days: 0
pricing:
  source: bundled
cleanup:
  execute: true
store:
  path: {store}
"""


# -- moto_server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto_server process on a free port of 127.0.0.1; terminated when the module ends."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    port = _free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            _moto_command(port), env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server not ready at {url} after 20 s") from None
                time.sleep(0.05)
        yield url
    finally:
        _stop(process)


@pytest.fixture
def moto(moto_url: str) -> str:
    """The module's moto_server, with its state wiped for this test."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200
    return moto_url


# -- the holding proxy -------------------------------------------------------------------------


class HoldMode(Enum):
    """Where the proxy holds the first real DeleteVolume."""

    BEFORE_FORWARD = "before-forward"
    """moto never sees the call: the volume survives the crash."""
    BEFORE_REPLY = "before-reply"
    """moto deletes the volume; costbot never learns it did."""


def is_real_delete_volume(body: bytes) -> bool:
    """An EC2 query-protocol DeleteVolume form body that is not a DryRun."""
    form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    dry_run = form.get("DryRun", ["false"])[0].lower() == "true"
    return form.get("Action") == ["DeleteVolume"] and not dry_run


class HoldingProxy:
    """A verbatim HTTP relay to moto_server that can hold one DeleteVolume request."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.held = threading.Event()
        self.released = threading.Event()
        self.actions: list[str] = []
        self._mode: HoldMode | None = None
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def arm(self, mode: HoldMode) -> None:
        """Hold the next real DeleteVolume as `mode` says."""
        with self._lock:
            self._mode = mode

    def disarm(self) -> None:
        """Relay everything from now on."""
        with self._lock:
            self._mode = None

    def release(self) -> None:
        """Let the held request's handler go: it drops the request (or the answer)."""
        self.released.set()

    def close(self) -> None:
        """Release anything held and stop serving."""
        self.release()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def claim(self, body: bytes) -> HoldMode | None:
        """The hold mode for this request (at most one request is ever held)."""
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        with self._lock:
            self.actions.append(form.get("Action", ["?"])[0])
            if self._mode is None or not is_real_delete_volume(body):
                return None
            mode, self._mode = self._mode, None
            return mode

    def hold(self) -> None:
        """Signal the test, then wait until it released the request (bounded)."""
        self.held.set()
        self.released.wait(timeout=60)

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request to moto_server as it came; return moto's complete answer."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            answer = conn.getresponse()
            return answer.status, answer.reason, answer.getheaders(), answer.read()
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                mode = proxy.claim(body)
                if mode is HoldMode.BEFORE_FORWARD:
                    proxy.hold()
                    self.close_connection = True
                    return
                status, reason, headers, answer = proxy.forward(
                    self.command, self.path, list(self.headers.items()), body
                )
                if mode is HoldMode.BEFORE_REPLY:
                    proxy.hold()
                    self.close_connection = True
                    return
                self.send_response_only(status, reason)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = relay

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: no line per request on stderr."""

        return Relay


@pytest.fixture
def proxy(moto: str) -> Iterator[HoldingProxy]:
    """A disarmed holding proxy in front of moto_server; stopped after the test."""
    relay = HoldingProxy(moto)
    try:
        yield relay
    finally:
        relay.close()


# -- costbot as a subprocess -------------------------------------------------------------------


@dataclass(frozen=True)
class Costbot:
    """How to run the CLI against one config, through the proxy."""

    config: Path
    store: Path
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        """The command line of `costbot --config CFG ARGS...`."""
        return [sys.executable, "-m", "costbot", "--config", str(self.config), *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one command to completion."""
        return subprocess.run(
            self.argv(*args),
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        """Run one command that must exit 0; its stdout."""
        done = self.run(*args)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
        return done.stdout


@pytest.fixture
def costbot(tmp_path: Path, proxy: HoldingProxy) -> Costbot:
    """A config with execution enabled and a store in tmp_path; AWS reached via the proxy."""
    store = tmp_path / "costbot.db"
    config = tmp_path / "costbot.yaml"
    config.write_text(CONFIG.format(region=REGION, store=store))
    env = {
        **os.environ,
        **FAKE_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": proxy.url,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "COSTBOT_CONFIG"):
        env.pop(name, None)
    return Costbot(config, store, env)


def ec2_client(moto: str) -> Any:
    """boto3 EC2 talking to moto_server directly (not through the proxy)."""
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=moto,
        aws_access_key_id=FAKE_KEY["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_KEY["AWS_SECRET_ACCESS_KEY"],
    )


def volume_exists(ec2: Any, volume_id: str) -> bool:
    """Whether moto still has the volume."""
    try:
        return bool(ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"])
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "InvalidVolume.NotFound"
        return False


def costbot_snapshots(ec2: Any, finding_id: str) -> list[dict[str, Any]]:
    """Snapshots owned by self and tagged costbot:finding-id=<finding_id>."""
    snapshots: list[dict[str, Any]] = ec2.describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:costbot:finding-id", "Values": [finding_id]}]
    )["Snapshots"]
    return snapshots


def action_rows(store: Path) -> list[dict[str, Any]]:
    """The actions table, oldest first."""
    with closing(sqlite3.connect(store)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM actions ORDER BY id")]


def finding_status(store: Path, finding_id: str) -> str:
    """The finding's status column."""
    with closing(sqlite3.connect(store)) as conn:
        row = conn.execute("SELECT status FROM findings WHERE id=?", (finding_id,)).fetchone()
    assert row is not None
    return str(row[0])


def seed_volume(ec2: Any) -> str:
    """One unattached, tagged gp3 volume: the only waste in the estate."""
    volume = ec2.create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=20,
        VolumeType="gp3",
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [{"Key": k, "Value": v} for k, v in VOLUME_TAGS.items()],
            }
        ],
    )
    volume_id: str = volume["VolumeId"]
    return volume_id


def scan_and_approve(costbot: Costbot, volume_id: str) -> str:
    """`costbot scan` then `costbot approve ID --by alice`; returns the finding id."""
    found = json.loads(costbot.ok("scan", "--format", "json"))
    ids = [f["id"] for f in found if f["resource_id"] == volume_id and f["kind"] == "idle_volume"]
    assert len(ids) == 1, found
    costbot.ok("approve", ids[0], "--by", "alice")
    return str(ids[0])


def crash_during_delete(costbot: Costbot, proxy: HoldingProxy, mode: HoldMode) -> None:
    """`clean --execute` until the proxy holds its DeleteVolume, then SIGKILL it."""
    proxy.arm(mode)
    with subprocess.Popen(
        costbot.argv("clean", "--execute"),
        env=costbot.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not proxy.held.wait(0.05):
                if process.poll() is not None or time.monotonic() > deadline:
                    out, err = process.communicate(timeout=10)
                    pytest.fail(
                        f"clean never reached DeleteVolume (exit {process.returncode}, "
                        f"proxy saw {proxy.actions}):\n{out.decode()}\n{err.decode()}"
                    )
        finally:
            process.kill()
            process.communicate(timeout=10)
        assert process.returncode == -9
    proxy.disarm()
    proxy.release()
    expire_killed_lease(costbot.store, process.pid)


def expire_killed_lease(store: Path, pid: int) -> None:
    """The killed run still holds the cleanup lease; let it run out as LEASE_TTL would."""
    with closing(sqlite3.connect(store)) as conn, conn:
        holders = [r[0] for r in conn.execute("SELECT holder FROM leases WHERE name=?", (LEASE,))]
        assert len(holders) == 1 and f":{pid}:" in holders[0], holders
        conn.execute(
            "UPDATE leases SET expires_at=? WHERE name=?", ("2000-01-01T00:00:00+00:00", LEASE)
        )


def assert_intents_have_results(costbot: Costbot, finding_id: str) -> list[dict[str, Any]]:
    """`costbot history --format json`: every intent's action_id has exactly one result."""
    events: list[dict[str, Any]] = json.loads(costbot.ok("history", finding_id, "--format", "json"))
    intents = Counter(e["data"]["action_id"] for e in events if e["type"] == "intent")
    results = Counter(e["data"]["action_id"] for e in events if e["type"] == "result")
    assert intents, events
    assert intents == results, events
    assert set(intents.values()) == {1}, events
    return events


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_kill_before_delete_volume_is_forwarded(
    moto: str, proxy: HoldingProxy, costbot: Costbot
) -> None:
    """Killed before moto saw DeleteVolume: recovery marks the intent interrupted, the rails run
    again, and the snapshot from the killed run is reused rather than taken twice."""
    ec2 = ec2_client(moto)
    volume_id = seed_volume(ec2)
    finding_id = scan_and_approve(costbot, volume_id)

    crash_during_delete(costbot, proxy, HoldMode.BEFORE_FORWARD)

    rows = action_rows(costbot.store)
    assert [r["result"] for r in rows] == [None], "the intent must be written before the call"
    assert volume_exists(ec2, volume_id)
    assert len(costbot_snapshots(ec2, finding_id)) == 1, "snapshot precedes DeleteVolume"
    killed_run = rows[0]["run_id"]

    again = costbot.run("clean", "--execute", "--format", "json")
    assert again.returncode == 0, again.stderr
    lines = {line["finding_id"]: line for line in json.loads(again.stdout)}
    assert lines[finding_id]["stage"] == "cleaned", lines

    assert finding_status(costbot.store, finding_id) == "cleaned"
    assert not volume_exists(ec2, volume_id)
    snapshots = costbot_snapshots(ec2, finding_id)
    assert len(snapshots) == 1, snapshots
    assert len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 1
    tags = {t["Key"]: t["Value"] for t in snapshots[0].get("Tags", [])}
    assert tags["costbot:source-volume"] == volume_id
    assert VOLUME_TAGS.items() <= tags.items()

    rows = action_rows(costbot.store)
    assert [r["result"] for r in rows] == ["interrupted", "done"], rows
    assert all(r["result_at"] for r in rows)
    assert rows[0]["run_id"] == killed_run != rows[1]["run_id"]
    assert json.loads(rows[1]["data"])["snapshot_id"] == snapshots[0]["SnapshotId"]
    assert tags["costbot:action-id"] == str(rows[0]["id"]), "taken by the killed run, reused"

    events = assert_intents_have_results(costbot, finding_id)
    assert [e["type"] for e in events].count("intent") == 2


@pytest.mark.timeout(120)
def test_kill_after_delete_volume_before_the_answer(
    moto: str, proxy: HoldingProxy, costbot: Costbot
) -> None:
    """Killed after moto deleted the volume but before costbot heard: recovery sees the volume
    gone with its costbot snapshot, records the open intent as done, and calls nothing else."""
    ec2 = ec2_client(moto)
    volume_id = seed_volume(ec2)
    finding_id = scan_and_approve(costbot, volume_id)

    crash_during_delete(costbot, proxy, HoldMode.BEFORE_REPLY)

    assert [r["result"] for r in action_rows(costbot.store)] == [None]
    assert not volume_exists(ec2, volume_id), "moto answered the held DeleteVolume"

    proxy.actions.clear()
    again = costbot.run("clean", "--execute", "--format", "json")
    assert again.returncode == 0, again.stderr
    lines = {line["finding_id"]: line for line in json.loads(again.stdout)}
    assert lines[finding_id]["stage"] == "cleaned", lines
    for mutating in ("CreateSnapshot", "DeleteVolume"):
        assert mutating not in proxy.actions, proxy.actions

    assert finding_status(costbot.store, finding_id) == "cleaned"
    assert not volume_exists(ec2, volume_id)
    snapshots = costbot_snapshots(ec2, finding_id)
    assert len(snapshots) == 1, snapshots
    assert len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 1

    rows = action_rows(costbot.store)
    assert [r["result"] for r in rows] == ["done"], rows
    assert rows[0]["result_at"]
    assert "before the interruption" in rows[0]["note"]
    assert json.loads(rows[0]["data"])["snapshot_id"] == snapshots[0]["SnapshotId"]

    events = assert_intents_have_results(costbot, finding_id)
    assert [e["type"] for e in events].count("intent") == 1
