"""`costbot restore` on GCP and Azure, end to end through the CLI: scan, approve, clean with a
snapshot, then recreate each disk from its snapshot — against the demo's emulated estates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from google.api_core.exceptions import NotFound

from costbot.cli import cli
from costbot.config import AzureConfig, GcpConfig
from costbot.demo_clouds import AZURE_GROUP, GCP_PROJECT, emulated_gcp_azure
from costbot.providers.azure import wire
from costbot.providers.azure_clients import AzureClients
from costbot.providers.gcp_clients import GcpClients
from costbot.store import Store

ZONE = "us-central1-a"


@pytest.fixture
def clouds(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    with emulated_gcp_azure(datetime.now(UTC)) as providers:
        config = {
            "providers": providers,
            "store": {"path": str(tmp_path / "costbot.db")},
            "cleanup": {"execute": True},
        }
        path = tmp_path / "costbot.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        yield path, providers


def run(path: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--config", str(path), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_disks_cleaned_on_gcp_and_azure_come_back_from_their_snapshots(
    clouds: tuple[Path, dict[str, Any]],
) -> None:
    path, providers = clouds
    gcp = GcpClients(GcpConfig(**providers["gcp"])).compute("DisksClient")
    azure = AzureClients(AzureConfig(**providers["azure"]), retry_total=0, polling_interval_s=0)
    azure_disks = azure.compute(providers["azure"]["subscriptions"][0]).disks
    gcp_before = gcp.get(project=GCP_PROJECT, zone=ZONE, disk="never-attached-ssd")
    azure_before = wire(azure_disks.get(AZURE_GROUP, "orphan-data"))

    run(path, "scan")
    store = Store(Path(yaml.safe_load(path.read_text())["store"]["path"]))
    wanted = {
        f.name: f.id for f in store.findings() if f.name in ("never-attached-ssd", "orphan-data")
    }
    assert len(wanted) == 2
    run(path, "approve", *wanted.values(), "--by", "alice")
    cleaned = json.loads(
        run(
            path,
            "clean",
            "--execute",
            "--format",
            "json",
            *[arg for i in wanted.values() for arg in ("--finding", i)],
        )
    )
    assert {line["stage"] for line in cleaned} == {"cleaned"}
    with pytest.raises(NotFound):
        gcp.get(project=GCP_PROJECT, zone=ZONE, disk="never-attached-ssd")
    assert "orphan-data" not in {d.name for d in azure_disks.list()}

    out_gcp = run(path, "restore", wanted["never-attached-ssd"], "--by", "bob")
    out_azure = run(path, "restore", wanted["orphan-data"], "--by", "bob")

    gcp_after = gcp.get(project=GCP_PROJECT, zone=ZONE, disk="never-attached-ssd")
    assert gcp_after.size_gb == gcp_before.size_gb
    assert gcp_after.type_.rsplit("/", 1)[-1] == gcp_before.type_.rsplit("/", 1)[-1]
    assert gcp_after.labels["costbot-restored-from"].startswith("costbot-never-attached-ssd-")
    assert "never-attached-ssd" in out_gcp
    azure_after = wire(azure_disks.get(AZURE_GROUP, "orphan-data"))
    assert azure_after["sku"]["name"] == azure_before["sku"]["name"]
    assert azure_after["properties"]["diskSizeGB"] == azure_before["properties"]["diskSizeGB"]
    assert azure_after["location"] == azure_before["location"]
    assert "snapshots/costbot-orphan-data-" in azure_after["tags"]["costbot:restored-from"]
    assert "orphan-data" in out_azure
    history = run(path, "history", wanted["orphan-data"], "--format", "json")
    assert "restored as" in history and "bob" in history


def test_restore_without_a_recorded_snapshot_says_so(clouds: tuple[Path, dict[str, Any]]) -> None:
    path, _providers = clouds
    run(path, "scan")
    store = Store(Path(yaml.safe_load(path.read_text())["store"]["path"]))
    finding = next(f for f in store.findings() if f.name == "old-build-cache")

    result = CliRunner().invoke(cli, ["--config", str(path), "restore", finding.id])

    assert result.exit_code == 1
    assert f"no costbot snapshot recorded for {finding.id}" in result.output
