"""End to end: the `costbot` CLI, run as a subprocess, against a real `moto_server` process.

Nothing is mocked in-process: boto3 in the CLI talks HTTP to moto through AWS_ENDPOINT_URL,
exactly as it would to AWS. The suite checks that `scan --format json` reports exactly the
seeded waste with the JSON contract fields, that `findings` reads the same store (CSV and a
kind filter), that config mistakes exit 2 with one line and no traceback, that `check-config`
masks nothing it should not, and that failing units exit 1 while the others still report
(an account whose role cannot be assumed, and credentials moto does not know). The last two
use a second server with moto's IAM enforcement switched on after seeding.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from costbot.config import load_config

pytestmark = pytest.mark.timeout(90)

REGIONS = ("us-east-1", "eu-west-1")
CONTRACT_FIELDS = {
    "id",
    "provider",
    "account",
    "region",
    "kind",
    "resource_id",
    "status",
    "monthly_cost_usd",
    "monthly_savings_usd",
    "recommendation",
    "details",
}
FAKE_KEY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
READER_ROLE = "arn:aws:iam::{account}:role/costbot-reader"
DENIED_ACCOUNT = "210987654321"

Waste = set[tuple[str, str, str]]
"""(kind, region, resource_id) of every finding a scan must report."""


# -- the moto_server process -------------------------------------------------------------------


@dataclass(frozen=True)
class MotoServer:
    """A running moto_server and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "moto.server"]
    return [*base, "-H", "127.0.0.1", "-p", str(port)]


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited early: {log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"moto_server not ready at {url} after 20 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MotoServer]]:
    """Starts moto_server processes on demand; every one is stopped when the module ends."""
    started: list[MotoServer] = []
    yield started
    for server in started:
        _stop(server.process)


def start_moto(started: list[MotoServer], workdir: Path) -> MotoServer:
    """A fresh moto_server on a free port of 127.0.0.1 (retried if the port was taken)."""
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
    for attempt in range(3):
        port = _free_port()
        log = workdir / f"moto-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                _moto_command(port), env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        server = MotoServer(process, f"http://127.0.0.1:{port}", log)
        started.append(server)
        try:
            _wait_ready(process, server.url, log)
            return server
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def moto_api(server: MotoServer, path: str, body: bytes) -> None:
    """POST to moto's control API (e.g. /moto-api/reset-auth)."""
    request = urllib.request.Request(
        f"{server.url}{path}", data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


# -- seeding through boto3 ---------------------------------------------------------------------


def client(server: MotoServer, service: str, region: str, key: dict[str, str] = FAKE_KEY) -> Any:
    """A boto3 client that talks to the server with the given access key."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region,
        endpoint_url=server.url,
        aws_access_key_id=key["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=key["AWS_SECRET_ACCESS_KEY"],
    )


@contextmanager
def seeding_env(workdir: Path) -> Iterator[None]:
    """Module fixtures run outside the per-test offline env: keep boto3 off local AWS config."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_CONFIG_FILE", str(workdir / "no-aws-config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(workdir / "no-aws-credentials"))
        yield


def _tags(resource: str, **tags: str) -> list[dict[str, Any]]:
    return [{"ResourceType": resource, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def seed_waste(ec2: Any, region: str) -> Waste:
    """Waste and non-waste in one region; returns the findings a scan must produce."""
    zone = f"{region}a"
    waste: Waste = set()
    for size, vtype in ((100, "gp3"), (20, "gp2")):
        volume = ec2.create_volume(AvailabilityZone=zone, Size=size, VolumeType=vtype)
        waste.add(("idle_volume", region, volume["VolumeId"]))
    ec2.create_volume(
        AvailabilityZone=zone, Size=50, TagSpecifications=_tags("volume", **{"costbot:skip": "y"})
    )
    launched = ec2.run_instances(
        ImageId="ami-12345678",
        MinCount=1,
        MaxCount=1,
        InstanceType="m5.large",
        Placement={"AvailabilityZone": zone},
    )
    instance = launched["Instances"][0]["InstanceId"]
    attached = ec2.create_volume(AvailabilityZone=zone, Size=30)["VolumeId"]
    ec2.attach_volume(VolumeId=attached, InstanceId=instance, Device="/dev/sdf")
    free_ip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    waste.add(("unattached_ip", region, free_ip))
    kept_ip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_tags(Resources=[kept_ip], Tags=[{"Key": "costbot:skip", "Value": "DNS"}])
    subnet = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": [zone]}])
    eni = ec2.create_network_interface(SubnetId=subnet["Subnets"][0]["SubnetId"])
    nat_ip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.associate_address(
        AllocationId=nat_ip, NetworkInterfaceId=eni["NetworkInterface"]["NetworkInterfaceId"]
    )
    return waste


def seed_reader_identity(server: MotoServer) -> dict[str, str]:
    """An IAM user that may assume only `costbot-reader`; returns its access key as env vars."""
    iam = client(server, "iam", "us-east-1")
    iam.create_user(UserName="costbot")
    key = iam.create_access_key(UserName="costbot")["AccessKey"]
    iam.put_user_policy(
        UserName="costbot",
        PolicyName="assume-reader",
        PolicyDocument=_policy(
            {"Action": "sts:AssumeRole", "Resource": READER_ROLE.format(account="123456789012")}
        ),
    )
    trust = _policy({"Action": "sts:AssumeRole", "Principal": {"AWS": "*"}})
    iam.create_role(RoleName="costbot-reader", AssumeRolePolicyDocument=trust)
    iam.put_role_policy(
        RoleName="costbot-reader",
        PolicyName="read",
        PolicyDocument=_policy(
            {"Action": ["ec2:Describe*", "cloudwatch:GetMetricData"], "Resource": "*"}
        ),
    )
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def _policy(statement: dict[str, Any]) -> str:
    """An IAM policy document with one Allow statement."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]})


# -- running the CLI ---------------------------------------------------------------------------


def write_config(path: Path, store: Path, *, accounts: str = "", extra: str = "") -> Path:
    """A costbot config for both regions, bundled prices and no waiting on idle clocks."""
    path.write_text(
        f"""\
providers:
  aws:
    regions: [{", ".join(REGIONS)}]
{accounts}rules:
  idle_volume:
    min_unattached_days: 0
  unattached_ip:
    min_unattached_days: 0
pricing:
  source: bundled
store:
  path: {store}
{extra}""",
        encoding="utf-8",
    )
    return path


def cli_env(server: MotoServer | None, workdir: Path, **extra: str) -> dict[str, str]:
    """The CLI's environment: no AWS_* or COSTBOT_* from outside, fake keys, the server."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "COSTBOT_", "SLACK_")) and "PROXY" not in k.upper()
    }
    env |= FAKE_KEY | {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(workdir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(workdir / "no-aws-credentials"),
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if server is not None:
        env["AWS_ENDPOINT_URL"] = server.url
    return env | extra


def costbot(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m costbot --config CONFIG ARGS...`, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "costbot", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def findings_of(stdout: str) -> list[dict[str, Any]]:
    """The JSON array on stdout."""
    data = json.loads(stdout)
    assert isinstance(data, list)
    return data


def waste_of(findings: list[dict[str, Any]]) -> Waste:
    """(kind, region, resource_id) of every reported finding."""
    return {(f["kind"], f["region"], f["resource_id"]) for f in findings}


# -- a scanned estate, shared by the read-only tests -------------------------------------------


@dataclass(frozen=True)
class Scanned:
    """The seeded estate, the scan's outcome and everything needed to run more commands."""

    waste: Waste
    account: str
    config: Path
    env: dict[str, str]
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def scanned(servers: list[MotoServer], tmp_path_factory: pytest.TempPathFactory) -> Scanned:
    """One server seeded with waste in two regions, scanned once by `costbot scan`."""
    workdir = tmp_path_factory.mktemp("scanned")
    server = start_moto(servers, workdir)
    waste: Waste = set()
    with seeding_env(workdir):
        for region in REGIONS:
            waste |= seed_waste(client(server, "ec2", region), region)
        account = client(server, "sts", "us-east-1").get_caller_identity()["Account"]
    config = write_config(workdir / "costbot.yaml", workdir / "costbot.db")
    env = cli_env(server, workdir)
    result = costbot(config, env, "scan", "--format", "json")
    return Scanned(waste, account, config, env, result)


def test_scan_reports_exactly_the_seeded_waste(scanned: Scanned) -> None:
    result = scanned.result
    assert result.returncode == 0, result.stderr
    findings = findings_of(result.stdout)
    assert {(k, rid) for k, _, rid in waste_of(findings)} == {
        (k, rid) for k, _, rid in scanned.waste
    }
    assert waste_of(findings) == scanned.waste
    assert "Scanned 2/2 account-regions" in result.stderr
    assert "Traceback" not in result.stderr


def test_scan_json_has_the_contract_fields(scanned: Scanned) -> None:
    findings = findings_of(scanned.result.stdout)
    assert findings
    for f in findings:
        assert not CONTRACT_FIELDS - set(f), f
        assert f["id"] == f"aws:{scanned.account}:{f['region']}:{f['kind']}:{f['resource_id']}"
        assert (f["provider"], f["account"], f["status"]) == ("aws", scanned.account, "open")
        assert f["monthly_cost_usd"] > 0
        assert f["monthly_savings_usd"] == f["monthly_cost_usd"]
        assert f["recommendation"]
        assert isinstance(f["details"], dict)
    by_kind = {f["kind"]: f for f in findings}
    assert by_kind["idle_volume"]["details"]["size_gb"] in (100, 20)
    assert by_kind["unattached_ip"]["details"]["ip"]


def test_findings_csv_reads_the_same_store(scanned: Scanned) -> None:
    result = costbot(scanned.config, scanned.env, "findings", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {(r["kind"], r["region"], r["resource_id"]) for r in rows} == scanned.waste
    assert {r["id"] for r in rows} == {f["id"] for f in findings_of(scanned.result.stdout)}
    savings = [float(r["monthly_savings_usd"]) for r in rows]
    assert savings == sorted(savings, reverse=True)


def test_findings_json_filters_by_kind(scanned: Scanned) -> None:
    result = costbot(
        scanned.config, scanned.env, "findings", "--format", "json", "--kind", "unattached_ip"
    )
    assert result.returncode == 0, result.stderr
    expected = {w for w in scanned.waste if w[0] == "unattached_ip"}
    assert len(expected) == len(REGIONS)
    assert waste_of(findings_of(result.stdout)) == expected


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["scan", "check-config"])
def test_typo_in_config_exits_2_with_one_line(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path / "typo.yaml", tmp_path / "costbot.db")
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("min_unattached_days", "min_unatached_days", 1), "utf-8")
    result = costbot(config, cli_env(None, tmp_path), command)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0]
    assert "rules.idle_volume.min_unatached_days" in lines[0]
    assert "did you mean 'min_unattached_days'" in lines[0]
    assert "Traceback" not in result.stderr


def test_check_config_masks_only_secrets(tmp_path: Path) -> None:
    accounts = (
        "    accounts:\n"
        '      - id: "123456789012"\n'
        f"        role_arn: {READER_ROLE.format(account='123456789012')}\n"
        "        external_id: costbot-external-id\n"
    )
    extra = (
        "exclusions:\n  resources:\n"
        "    - id: vol-0123456789abcdef0\n      reason: token ring archive, keep\n"
    )
    config = write_config(
        tmp_path / "costbot.yaml", tmp_path / "costbot.db", accounts=accounts, extra=extra
    )
    token = "xoxb-0000-secret-value"
    result = costbot(config, cli_env(None, tmp_path, SLACK_BOT_TOKEN=token), "check-config")
    assert result.returncode == 0, result.stderr
    first, _, rest = result.stdout.partition("\n")
    assert first == f"{config}: valid"
    shown = yaml.safe_load(rest)
    secrets = shown.pop("secrets_from_environment")
    assert shown == load_config(config).model_dump(mode="json")
    assert "***" not in result.stdout
    assert token not in result.stdout
    assert secrets["SLACK_BOT_TOKEN"] == "set (hidden)"
    assert secrets["SLACK_APP_TOKEN"] == "not set"


# -- failing units -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Guarded:
    """A server that enforces IAM, the reader's key, and the waste in the readable account."""

    server: MotoServer
    key: dict[str, str]
    waste: Waste


@pytest.fixture(scope="module")
def guarded(servers: list[MotoServer], tmp_path_factory: pytest.TempPathFactory) -> Guarded:
    """A second server: one idle volume per region, then moto's IAM checks switched on."""
    workdir = tmp_path_factory.mktemp("guarded")
    server = start_moto(servers, workdir)
    waste: Waste = set()
    with seeding_env(workdir):
        key = seed_reader_identity(server)
        for region in REGIONS:
            ec2 = client(server, "ec2", region)
            volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=10)["VolumeId"]
            waste.add(("idle_volume", region, volume))
    moto_api(server, "/moto-api/reset-auth", b"0")
    return Guarded(server, key, waste)


def test_account_whose_role_cannot_be_assumed_fails_alone(guarded: Guarded, tmp_path: Path) -> None:
    accounts = "    accounts:\n" + "".join(
        f'      - id: "{account}"\n        role_arn: {READER_ROLE.format(account=account)}\n'
        for account in ("123456789012", DENIED_ACCOUNT)
    )
    config = write_config(tmp_path / "costbot.yaml", tmp_path / "costbot.db", accounts=accounts)
    env = cli_env(guarded.server, tmp_path, **guarded.key)
    result = costbot(config, env, "scan", "--format", "json")
    assert result.returncode == 1, result.stderr
    findings = findings_of(result.stdout)
    assert waste_of(findings) == guarded.waste
    assert {f["account"] for f in findings} == {"123456789012"}
    for region in REGIONS:
        assert f"FAILED aws:{DENIED_ACCOUNT}:{region}: sts:AssumeRole: AccessDenied" in (
            result.stderr
        )
    assert "Scanned 2/4 account-regions" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_credentials_fail_every_unit(guarded: Guarded, tmp_path: Path) -> None:
    config = write_config(tmp_path / "costbot.yaml", tmp_path / "costbot.db")
    result = costbot(config, cli_env(guarded.server, tmp_path), "scan", "--format", "json")
    assert result.returncode == 1, result.stderr
    assert findings_of(result.stdout) == []
    for region in REGIONS:
        assert f"FAILED aws:default:{region}: sts:GetCallerIdentity: InvalidClientTokenId" in (
            result.stderr
        )
    assert "Scanned 0/2 account-regions" in result.stderr
    assert "Traceback" not in result.stderr
