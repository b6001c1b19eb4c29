"""Helpers for tests that run real processes: a `moto_server` on 127.0.0.1, `python -m costbot`
as a child process, HTTP polling with deadlines, and the JSON log lines `costbot run` prints."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[1]
"""The checkout under test: children run `python -m costbot` from here."""
FAKE_KEY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class MotoServer:
    """A running moto_server process and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, service: str, region: str = "us-east-1", **credentials: str) -> Any:
        """A boto3 client talking to this server (fake keys unless given)."""
        return boto3.client(
            service, region_name=region, endpoint_url=self.url, **(credentials or FAKE_KEY)
        )

    def reset(self) -> None:
        """Wipe every backend (POST /moto-api/reset)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


def wait_http(url: str, deadline_s: float, process: subprocess.Popen[bytes] | None = None) -> int:
    """Poll GET `url` until it answers (any status); returns the status. Bounded by a deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited ({process.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {deadline_s} s")


def start_moto(workdir: Path) -> MotoServer:
    """moto_server on a free port (no default AMIs), once GET /moto-api/ answers."""
    script = Path(sys.executable).with_name("moto_server")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    last: Exception | None = None
    for _attempt in range(3):
        port = free_port()
        log = workdir / f"moto-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [*base, "-H", "127.0.0.1", "-p", str(port)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        server = MotoServer(process, f"http://127.0.0.1:{port}", log)
        try:
            wait_http(f"{server.url}/moto-api/", 30, process)
            return server
        except RuntimeError as exc:
            last = exc
            stop(process)
    raise RuntimeError(f"moto_server did not start: {last}")


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate a child we started, killing it if it does not exit within 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def costbot_command(config: Path, *args: str) -> list[str]:
    """`python -m costbot --config CONFIG ARGS...`."""
    return [sys.executable, "-m", "costbot", "--config", str(config), *args]


def child_env(aws_endpoint: str | None = None, **extra: str) -> dict[str, str]:
    """The test's (already offline) environment, pointed at a moto_server when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.pop("AWS_PROFILE", None)
    if aws_endpoint:
        env["AWS_ENDPOINT_URL"] = aws_endpoint
    env["PYTHONUNBUFFERED"] = "1"
    return {**env, **extra}


def run_costbot(
    config: Path, *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run one costbot command to completion and capture its output."""
    return subprocess.run(
        costbot_command(config, *args),
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """Every non-empty stdout line parsed as a JSON object (fails on any other line)."""
    records = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def job_finished(records: list[dict[str, Any]], job: str) -> dict[str, Any]:
    """The one `job finished` log record of `job`."""
    found = [r for r in records if r.get("message") == "job finished" and r.get("job") == job]
    assert len(found) == 1, records
    return found[0]
