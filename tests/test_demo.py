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
    by_kind = Counter(f.kind for f in result.findings)
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
