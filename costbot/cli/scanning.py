"""Commands that read clouds and the store: scan, findings, check-config."""

from __future__ import annotations

import sys
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from costbot.cli.base import EXIT_PARTIAL, FORMAT_TABLE_JSON, AppContext, cli, emit_findings
from costbot.config import masked, secrets_from_env
from costbot.model import ACTIVE_STATUSES, Kind, Provider, Status
from costbot.scan import ScanReport, UnitResult, run_scan


@cli.command()
@click.option(
    "--provider",
    type=click.Choice([p.value for p in Provider]),
    help="Scan only this provider.",
)
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@click.pass_obj
def scan(app: AppContext, provider: str | None, fmt: str) -> None:
    """Scan the configured clouds for waste and store the findings."""
    from costbot.providers import build_price_books, build_providers

    config = app.config
    adapters = build_providers(config, Provider(provider) if provider else None)
    store = app.store()
    report = _scan_with_progress(
        lambda on_unit: run_scan(
            config, store, adapters, build_price_books(config, store), on_unit=on_unit
        ),
        show=fmt == "table",
    )
    ids = {f.id for f in report.findings}
    found = [f for f in store.findings() if f.id in ids]
    emit_findings(found, fmt, report)
    if report.failed:
        sys.exit(EXIT_PARTIAL)


def _scan_with_progress(run: Any, *, show: bool) -> ScanReport:
    err = Console(stderr=True)
    if not (show and err.is_terminal):
        result: ScanReport = run(None)
        return result
    columns = (TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("scan", total=None)

        def on_unit(result: UnitResult, total: int) -> None:
            progress.update(task, total=total, advance=1)

        report: ScanReport = run(on_unit)
        return report


@cli.command()
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice([s.value for s in Status] + ["active", "all"]),
    help="Only findings with this status (repeatable) [default: active = "
    + ", ".join(sorted(ACTIVE_STATUSES))
    + "].",
)
@click.option("--kind", type=click.Choice([k.value for k in Kind]), help="Only this kind.")
@click.option("--provider", type=click.Choice([p.value for p in Provider]))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.pass_obj
def findings(
    app: AppContext, statuses: tuple[str, ...], kind: str | None, provider: str | None, fmt: str
) -> None:
    """List stored findings, largest savings first."""
    wanted: set[Status] | None = set()
    for s in statuses or ("active",):
        if s == "all":
            wanted = None
            break
        assert wanted is not None
        wanted |= set(ACTIVE_STATUSES) if s == "active" else {Status(s)}
    rows = app.store().findings(status=wanted, kind=Kind(kind) if kind else None, provider=provider)
    emit_findings(rows, fmt, None)


@cli.command("check-config")
@click.pass_obj
def check_config(app: AppContext) -> None:
    """Validate the config file and print it resolved, with secrets masked."""
    config = app.config
    click.echo(f"{app.path}: valid")
    dump = masked(config.model_dump(mode="json"))
    click.echo(yaml.safe_dump(dump, sort_keys=False), nl=False)
    env = {
        name: ("set (hidden)" if present else "not set")
        for name, present in secrets_from_env().items()
    }
    click.echo(yaml.safe_dump({"secrets_from_environment": env}, sort_keys=False), nl=False)
