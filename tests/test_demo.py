"""`costbot demo`: the embedded emulator estate goes through the real scan path."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from costbot.cli import cli
from costbot.demo import DEMO_REGIONS, DemoResult, run_demo
from costbot.model import Kind
from costbot.store import Store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return run_demo(tmp_path_factory.mktemp("demo") / "demo.db")


def test_demo_finds_the_seeded_waste_and_skips_the_traps(demo: DemoResult) -> None:
    result = demo
    by_kind = Counter(f.kind for f in result.findings if f.provider == "aws")
    per_region = len(DEMO_REGIONS)
    # Seeded per region: 4 unattached volumes + the stopped instance's data and root volumes;
    # 2 unused EIPs; oversized analytics, batch-worker and queue-asg instances.
    assert by_kind == {
        Kind.IDLE_VOLUME: 6 * per_region,
        Kind.UNATTACHED_IP: 2 * per_region,
        Kind.OVERSIZED_INSTANCE: 3 * per_region,
    }
    names = {f.name for f in result.findings}
    traps = {
        "golden-image-src",
        "ml-sandbox",
        "web-1",
        "reporting",
        "bastion",
        "new-service",
        "just-detached",
    }
    assert not names & traps
    assert all(f.monthly_savings_usd > 0 for f in result.findings)
    assert not result.report.failed


# The GCP and Azure estates (costbot/demo_clouds.py): what must be found, and the traps.
GCP_WASTE = {
    (Kind.IDLE_VOLUME, "old-build-cache"),  # detached 40 days ago (lastDetachTimestamp)
    (Kind.IDLE_VOLUME, "never-attached-ssd"),  # never attached: clock from creation
    (Kind.IDLE_VOLUME, "legacy-app-data"),  # attached only to an instance stopped 45 days
    (Kind.UNATTACHED_IP, "old-lb-ip"),  # regional RESERVED EXTERNAL
    (Kind.UNATTACHED_IP, "legacy-global-ip"),  # global RESERVED EXTERNAL
    (Kind.OVERSIZED_INSTANCE, "api-server"),
    (Kind.OVERSIZED_INSTANCE, "analytics-eu"),
    (Kind.OVERSIZED_INSTANCE, "batch-mig-x1z"),  # found; the resizer refuses MIG members
}
GCP_TRAPS = {
    "recently-detached",  # detached 2 days ago
    "gke-pvc-3f1c",  # goog-k8s-* labels
    "golden-image-src",  # costbot-skip label (GCP keys cannot hold ':')
    "api-server-data",  # attached to a running instance
    "db-internal",  # INTERNAL address
    "web-ip",  # IN_USE
    "web-1",  # busy
    "jumpbox",  # e2-small: shared-core, not rated
    "etl-custom",  # custom machine type
}
AZURE_WASTE = {
    (Kind.IDLE_VOLUME, "orphan-data"),  # LastOwnershipUpdateTime 20 days ago
    (Kind.IDLE_VOLUME, "legacy-vm-data"),  # its VM deallocated 60 days ago
    (Kind.UNATTACHED_IP, "old-gateway-ip"),
    (Kind.UNATTACHED_IP, "basic-test-ip"),
    (Kind.OVERSIZED_INSTANCE, "app-vm"),
    (Kind.OVERSIZED_INSTANCE, "worker-vmss_0"),
}
AZURE_TRAPS = {
    "nightly-export",  # LastOwnershipUpdateTime 2 days ago
    "sql01-osdisk-ASRReplica",  # Site Recovery
    "archive-hdd",  # costbot:skip
    "app-vm-data",  # attached to a running VM
    "app-vm-ip",  # on a NIC
    "nat-egress-ip",  # on a NAT gateway
    "busy-vm",
    "burst-vm",  # B-series
}


@pytest.mark.parametrize(
    ("provider", "waste", "traps"),
    [("gcp", GCP_WASTE, GCP_TRAPS), ("azure", AZURE_WASTE, AZURE_TRAPS)],
)
def test_demo_scans_gcp_and_azure_through_their_emulators(
    demo: DemoResult, provider: str, waste: set[tuple[Kind, str]], traps: set[str]
) -> None:
    found = {(f.kind, f.name) for f in demo.findings if f.provider == provider}
    assert found == waste
    assert not {name for _kind, name in found} & traps
    regions = {f.region for f in demo.findings if f.provider == provider}
    assert "*" not in regions  # whole-account units, but every finding keeps its own region
    assert all(f.monthly_savings_usd > 0 and f.price_source for f in demo.findings)


def test_demo_leaves_a_store_the_cli_can_read(demo: DemoResult) -> None:
    result = demo
    runner = CliRunner()
    out = runner.invoke(cli, ["--config", str(result.config_path), "findings", "--format", "json"])
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert {f["id"] for f in listed} == {f.id for f in Store(result.store_path).findings()}


def test_demo_command_prints_the_table_and_total_savings(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["demo", "--store", str(tmp_path / "d.db")])
    assert out.exit_code == 0, out.output
    total = sum(f.monthly_savings_usd for f in Store(tmp_path / "d.db").findings())
    assert f"${total:,.2f}/month to save" in out.output


def test_demo_slack_summary_offers_buttons_for_every_cloud(demo_with_cleaners: DemoResult) -> None:
    values = [
        element["value"]
        for message in demo_with_cleaners.slack_messages
        for block in message.blocks
        if block.get("type") == "actions"
        for element in block["elements"]
        if element.get("action_id") == "costbot_approve"
    ]
    approvable = {value.split(":", 1)[0] for value in values}
    assert approvable == {"aws", "gcp", "azure"}
    ids = {f.id for f in demo_with_cleaners.findings}
    assert set(values) <= ids


@pytest.fixture(scope="module")
def demo_with_cleaners(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    from cleaners import build_cleaners

    return run_demo(tmp_path_factory.mktemp("demo2") / "demo.db", cleaners_factory=build_cleaners)
