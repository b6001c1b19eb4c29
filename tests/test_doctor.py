"""`costbot doctor` through the CLI (click's CliRunner, a real config file in tmp_path) against
costbot's GCP emulator (Resource Manager testIamPermissions), its Azure emulator (effective
permissions over https) and moto's in-process AWS (EC2 DryRun).

The permissions each check must cover are the ones the scanners and cleaners need, written out
here from shared/docs/domain.md and the cloud providers' IAM reference; what the emulators were
actually asked is read back from their request logs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from costbot.cli import cli
from costbot.emulators.azure import AzureEmulator
from costbot.emulators.gcp import GcpEmulator

P = "proj-alpha"
P2 = "proj-beta"
SUB = "00000000-0000-4000-8000-00000000ab01"
GCP_READS = {
    "compute.disks.list",
    "compute.addresses.list",
    "compute.instances.list",
    "compute.machineTypes.list",
    "monitoring.timeSeries.list",
}
GCP_WRITES = {
    "compute.disks.createSnapshot",
    "compute.snapshots.create",
    "compute.disks.delete",
    "compute.addresses.delete",
    "compute.globalAddresses.delete",
}
"""Snapshot-then-delete a disk, release a regional or a global address (the default cleaners)."""
AZURE_READS = {
    "Microsoft.Compute/disks/read",
    "Microsoft.Network/publicIPAddresses/read",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Insights/metrics/read",
}
AZURE_WRITES = {
    "Microsoft.Compute/snapshots/write",
    "Microsoft.Compute/disks/delete",
    "Microsoft.Network/publicIPAddresses/delete",
}
CHECK_FIELDS = {"provider", "account", "purpose", "permission", "verdict", "detail"}


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def gcp() -> Iterator[GcpEmulator]:
    with GcpEmulator() as emulator:
        yield emulator


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureEmulator]:
    monkeypatch.setenv("AZURE_ACCESS_TOKEN", "t")
    with AzureEmulator() as emulator:
        yield emulator


def gcp_section(emu: GcpEmulator, projects: tuple[str, ...] = (P, P2)) -> dict[str, Any]:
    return {
        "projects": list(projects),
        "credentials": "anonymous",
        "endpoints": {
            "compute": emu.endpoint,
            "billing": emu.endpoint,
            "resource_manager": emu.endpoint,
        },
    }


def azure_section(emu: AzureEmulator) -> dict[str, Any]:
    return {
        "subscriptions": [SUB],
        "management_endpoint": emu.endpoint,
        "ca_bundle": str(emu.ca_path),
        "credential": "env_token",
    }


def doctor(
    tmp_path: Path,
    providers: Mapping[str, Any],
    *args: str,
    cleanup: Mapping[str, Any] | None = None,
) -> Result:
    data = {
        "providers": dict(providers),
        "pricing": {"source": "bundled"},
        "store": {"path": str(tmp_path / "costbot.db")},
        "cleanup": dict(cleanup or {}),
    }
    path = tmp_path / "costbot.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return CliRunner().invoke(cli, ["--config", str(path), "doctor", *args])


def checks_of(result: Result) -> list[dict[str, Any]]:
    checks = json.loads(result.stdout)
    assert isinstance(checks, list) and checks
    assert all(set(c) == CHECK_FIELDS for c in checks)
    return checks


def verdicts(
    checks: list[dict[str, Any]], provider: str, account: str
) -> dict[tuple[str, str], str]:
    """(purpose, permission) -> verdict for one account."""
    return {
        (c["purpose"], c["permission"]): c["verdict"]
        for c in checks
        if c["provider"] == provider and c["account"] == account
    }


def asked_gcp(emu: GcpEmulator, project: str) -> list[list[str]]:
    """The permission lists the emulator was asked about for a project."""
    return [
        r.body["permissions"]
        for r in emu.requests
        if r.method == "POST" and r.path == f"/v1/projects/{project}:testIamPermissions"
    ]


# -- GCP ---------------------------------------------------------------------------------------


def test_gcp_all_granted_exits_0_and_checks_reads_and_writes(
    tmp_path: Path, gcp: GcpEmulator
) -> None:
    result = doctor(tmp_path, {"gcp": gcp_section(gcp)}, "--format", "json")

    assert result.exit_code == 0, result.output
    checks = checks_of(result)
    assert {c["verdict"] for c in checks} == {"ok"}
    for project in (P, P2):
        got = verdicts(checks, "gcp", project)
        assert got[("credentials", "-")] == "ok"
        assert {perm for purpose, perm in got if purpose == "scan"} >= GCP_READS
        assert {perm for purpose, perm in got if purpose == "cleanup"} >= GCP_WRITES
        [asked] = asked_gcp(gcp, project)  # one call per project answers every check
        assert {perm for _purpose, perm in got if perm != "-"} == set(asked)
    assert not [r for r in gcp.requests if r.path.startswith("/compute/")]  # nothing touched


def test_gcp_a_denied_permission_is_missing_for_that_project_only(
    tmp_path: Path, gcp: GcpEmulator
) -> None:
    gcp.deny_permissions(P2, "compute.disks.delete")

    as_json = doctor(tmp_path, {"gcp": gcp_section(gcp)}, "--format", "json")
    as_table = doctor(tmp_path, {"gcp": gcp_section(gcp)})

    assert as_json.exit_code == 1
    checks = checks_of(as_json)
    assert verdicts(checks, "gcp", P2)[("cleanup", "compute.disks.delete")] == "missing"
    assert verdicts(checks, "gcp", P)[("cleanup", "compute.disks.delete")] == "ok"
    missing = [(c["account"], c["permission"]) for c in checks if c["verdict"] != "ok"]
    assert missing == [(P2, "compute.disks.delete")]
    assert as_table.exit_code == 1
    [row] = [line for line in as_table.stdout.splitlines() if "compute.disks.delete" in line]
    assert P2 in row and "cleanup" in row and "missing" in row
    assert "1 missing or failing" in as_table.stdout


def test_gcp_resize_permissions_are_checked_when_resize_is_allowed(
    tmp_path: Path, gcp: GcpEmulator
) -> None:
    gcp.deny_permissions(P, "compute.instances.setMachineType")
    providers = {"gcp": gcp_section(gcp, (P,))}

    off = doctor(tmp_path, providers, "--format", "json")
    on = doctor(tmp_path, providers, "--format", "json", cleanup={"allow_resize": True})

    assert off.exit_code == 0, off.output
    assert ("cleanup", "compute.instances.setMachineType") not in verdicts(checks_of(off), "gcp", P)
    assert on.exit_code == 1
    got = verdicts(checks_of(on), "gcp", P)
    assert got[("cleanup", "compute.instances.setMachineType")] == "missing"
    assert got[("cleanup", "compute.instances.stop")] == "ok"
    assert got[("cleanup", "compute.instances.start")] == "ok"


def test_gcp_an_unreachable_project_is_a_credentials_error_for_it_alone(
    tmp_path: Path, gcp: GcpEmulator
) -> None:
    gcp.fail_project(P2, 403, "Cloud Resource Manager API has not been used in project")

    result = doctor(tmp_path, {"gcp": gcp_section(gcp)}, "--format", "json")

    assert result.exit_code == 1
    checks = checks_of(result)
    [broken] = [c for c in checks if c["account"] == P2]
    assert (broken["purpose"], broken["verdict"]) == ("credentials", "error")
    assert P2 in broken["detail"] and "403" in broken["detail"]
    assert "has not been used" in broken["detail"]
    good = verdicts(checks, "gcp", P)
    assert set(good.values()) == {"ok"} and len(good) > len(GCP_READS)


def test_gcp_table_shows_credentials_rows_and_with_all_every_check(
    tmp_path: Path, gcp: GcpEmulator
) -> None:
    providers = {"gcp": gcp_section(gcp, (P,))}

    short = doctor(tmp_path, providers)
    full = doctor(tmp_path, providers, "--all")
    as_json = checks_of(doctor(tmp_path, providers, "--format", "json"))

    assert short.exit_code == 0 and full.exit_code == 0
    assert "credentials" in short.stdout and "compute.disks.list" not in short.stdout
    for check in as_json:
        if check["permission"] != "-":
            assert check["permission"] in full.stdout
    assert f"{len(as_json)} ok, 0 missing or failing, {len(as_json)} checked" in full.stdout


# -- Azure -------------------------------------------------------------------------------------


def test_azure_all_granted_exits_0(tmp_path: Path, azure: AzureEmulator) -> None:
    result = doctor(tmp_path, {"azure": azure_section(azure)}, "--format", "json")

    assert result.exit_code == 0, result.output
    checks = checks_of(result)
    got = verdicts(checks, "azure", SUB)
    assert got[("credentials", "-")] == "ok"
    assert {perm for purpose, perm in got if purpose == "scan"} >= AZURE_READS
    assert {perm for purpose, perm in got if purpose == "cleanup"} >= AZURE_WRITES
    assert set(got.values()) == {"ok"}


def test_azure_a_not_action_makes_that_permission_missing(
    tmp_path: Path, azure: AzureEmulator
) -> None:
    azure.set_permissions(SUB, ["*"], ["Microsoft.Compute/disks/delete"])

    result = doctor(tmp_path, {"azure": azure_section(azure)}, "--format", "json")

    assert result.exit_code == 1
    checks = checks_of(result)
    missing = [(c["account"], c["permission"]) for c in checks if c["verdict"] != "ok"]
    assert missing == [(SUB, "Microsoft.Compute/disks/delete")]
    assert verdicts(checks, "azure", SUB)[("cleanup", "Microsoft.Compute/snapshots/write")] == "ok"


def test_azure_read_only_role_misses_every_write(tmp_path: Path, azure: AzureEmulator) -> None:
    azure.set_permissions(SUB, ["*/read"])

    result = doctor(tmp_path, {"azure": azure_section(azure)}, "--format", "json")

    assert result.exit_code == 1
    got = verdicts(checks_of(result), "azure", SUB)
    assert {p for (purpose, p), v in got.items() if v == "missing"} >= AZURE_WRITES
    assert all(got[("scan", p)] == "ok" for p in AZURE_READS)


def test_both_clouds_in_one_run_and_provider_filter(
    tmp_path: Path, gcp: GcpEmulator, azure: AzureEmulator
) -> None:
    providers = {"gcp": gcp_section(gcp, (P,)), "azure": azure_section(azure)}

    both = doctor(tmp_path, providers, "--format", "json")
    only_gcp = doctor(tmp_path, providers, "--format", "json", "--provider", "gcp")

    assert both.exit_code == 0, both.output
    assert {c["provider"] for c in checks_of(both)} == {"gcp", "azure"}
    assert {c["provider"] for c in checks_of(only_gcp)} == {"gcp"}


# -- AWS ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("aws")
def test_aws_credentials_and_delete_volume_dry_run(tmp_path: Path) -> None:
    result = doctor(tmp_path, {"aws": {"regions": ["us-east-1"]}}, "--format", "json")

    checks = checks_of(result)
    by_permission = {c["permission"]: c for c in checks if c["provider"] == "aws"}
    credentials = by_permission["-"]
    assert (credentials["purpose"], credentials["verdict"]) == ("credentials", "ok")
    assert "arn:aws:" in credentials["detail"]
    delete = by_permission["ec2:DeleteVolume"]
    assert (delete["purpose"], delete["verdict"]) == ("cleanup", "ok")
    assert "dry run passed" in delete["detail"]
    assert by_permission["ec2:DescribeVolumes"]["purpose"] == "scan"
    assert by_permission["ec2:DescribeVolumes"]["verdict"] == "ok"
    assert not [c for c in checks if c["verdict"] in ("missing", "error")]
    assert result.exit_code == 0, result.output
