"""The `costbot` command line: the composition root that wires config, store, providers and
output together. Exit codes: 0 ok, 1 partial failure, 2 bad config or usage.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from costbot import __version__
from costbot.approvals import Decision, decide
from costbot.cleanup import CleanupRun, Stage
from costbot.config import Config, config_path, load_config, masked, secrets_from_env
from costbot.errors import CleanupError, ConfigError, CostbotError, UnknownFindingError
from costbot.logs import setup_logging
from costbot.model import ACTIVE_STATUSES, Kind, Provider, Status, Unit
from costbot.render import (
    cleanup_table,
    console,
    findings_csv,
    findings_json,
    findings_table,
    history_table,
    print_scan_summary,
)
from costbot.scan import ScanReport, UnitResult, run_scan
from costbot.store import Store, StoredFinding, utcnow

EXIT_PARTIAL = 1
EXIT_CONFIG = 2


class CostbotGroup(click.Group):
    """A click group that turns costbot's own errors into a one-line message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; ConfigError exits 2, any other CostbotError exits 1."""
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_CONFIG)
        except CostbotError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_PARTIAL)


@dataclass
class AppContext:
    """What every command gets: where the config is, loaded on first use."""

    config_file: str | None
    _config: Config | None = None

    @property
    def path(self) -> Path:
        """The config file in use."""
        return config_path(self.config_file)

    @property
    def config(self) -> Config:
        """The validated config (ConfigError on any mistake)."""
        if self._config is None:
            self._config = load_config(self.path)
        return self._config

    def store(self) -> Store:
        """The findings store named in the config."""
        return Store(self.config.store.path)


@click.group(cls=CostbotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Config file [default: $COSTBOT_CONFIG, else config/costbot.yaml].",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option(
    "--log-format",
    type=click.Choice(["auto", "text", "json"]),
    default="auto",
    show_default=True,
    help="Log line format; auto is text on a terminal, JSON otherwise.",
)
@click.version_option(__version__, prog_name="costbot")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: int, log_format: str) -> None:
    """costbot finds cloud waste, prices it, and cleans up what a human approved."""
    setup_logging(verbose, log_format)
    ctx.obj = AppContext(config_file)


FORMAT_TABLE_JSON = click.Choice(["table", "json"])


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


def emit_findings(findings: list[StoredFinding], fmt: str, report: ScanReport | None) -> None:
    """Print findings in the chosen format; scan summaries go to stderr for machine formats."""
    if fmt == "json":
        click.echo(findings_json(findings))
    elif fmt == "csv":
        click.echo(findings_csv(findings), nl=False)
    else:
        console().print(findings_table(findings))
    if report is not None:
        print_scan_summary(console(stderr=fmt != "table"), report)


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


def _cleaners(config: Config) -> Any:
    from cleaners import build_cleaners

    return build_cleaners(config)


def _decide(
    app: AppContext, ids: tuple[str, ...], decision: Decision, by: str, days: float | None = None
) -> None:
    config = app.config
    done = decide(
        app.store(),
        list(ids),
        decision,
        actor=by,
        approvers=config.cleanup.cli_approvers,
        actionable=set(_cleaners(config)),
        source={"via": "cli"},
        snooze_days=days,
    )
    for item in done:
        until = f" until {item.finding.snoozed_until:%Y-%m-%d %H:%M} UTC" if days else ""
        click.echo(f"{item.finding.status}: {item.finding.id} (by {by}){until}")


BY = click.option("--by", "by", required=True, metavar="NAME", help="Who decides (recorded).")
IDS = click.argument("finding_ids", nargs=-1, required=True, metavar="ID...")


@cli.command()
@IDS
@BY
@click.pass_obj
def approve(app: AppContext, finding_ids: tuple[str, ...], by: str) -> None:
    """Approve findings for cleanup (from open, notified or failed)."""
    _decide(app, finding_ids, Decision.APPROVE, by)


@cli.command()
@IDS
@BY
@click.pass_obj
def reject(app: AppContext, finding_ids: tuple[str, ...], by: str) -> None:
    """Reject findings: they are never cleaned."""
    _decide(app, finding_ids, Decision.REJECT, by)


@cli.command()
@IDS
@click.option("--days", type=click.FloatRange(min=0, min_open=True), required=True)
@BY
@click.pass_obj
def snooze(app: AppContext, finding_ids: tuple[str, ...], days: float, by: str) -> None:
    """Snooze findings for N days; a scan after that reopens them."""
    _decide(app, finding_ids, Decision.SNOOZE, by, days)


@cli.command()
@click.option("--execute", is_flag=True, help="Really act (also needs cleanup.execute: true).")
@click.option("--finding", "finding_ids", multiple=True, metavar="ID", help="Only these findings.")
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@click.pass_obj
def clean(app: AppContext, execute: bool, finding_ids: tuple[str, ...], fmt: str) -> None:
    """Dry-run (default) or execute the approved cleanups, through every safety rail."""
    config = app.config
    report = CleanupRun(config, app.store(), _cleaners(config), execute=execute).run(
        list(finding_ids) or None
    )
    if fmt == "json":
        click.echo(json.dumps([line.to_json() for line in report.lines], indent=2, default=str))
    else:
        console().print(cleanup_table(report))
        if execute and not config.cleanup.execute:
            console().print("[yellow]note:[/yellow] --execute given but cleanup.execute is false")
    if report.count(Stage.FAILED):
        sys.exit(EXIT_PARTIAL)


@cli.command()
@click.argument("finding_id")
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@click.pass_obj
def history(app: AppContext, finding_id: str, fmt: str) -> None:
    """The whole audit trail of one finding."""
    store = app.store()
    store.get(finding_id)
    events = store.events(finding_id)
    if fmt == "json":
        click.echo(json.dumps([e.to_json() for e in events], indent=2, default=str))
    else:
        console().print(history_table(finding_id, events))


@cli.command()
@click.argument("ref", metavar="SNAPSHOT_ID_OR_FINDING_ID")
@click.option("--by", "by", default="cli", show_default=True, help="Who restores (recorded).")
@click.pass_obj
def restore(app: AppContext, ref: str, by: str) -> None:
    """Recreate a volume costbot deleted, from its snapshot (same AZ, type, size, tags)."""
    from cleaners.aws_restore import RestoreVolume
    from costbot.providers.aws import AwsProvider

    config = app.config
    if config.providers.aws is None:
        raise ConfigError("restore needs providers.aws", key="providers.aws")
    provider = AwsProvider(config.providers.aws, config.rules.oversized_instance)
    restorer = RestoreVolume(provider.client)
    if ref.startswith("snap-"):
        places = provider.units()[0]
        found = next(
            ((u, s) for u in places if (s := restorer.find(u.account, u.region, snapshot_id=ref))),
            None,
        )
    else:
        finding = app.store().get(ref)
        unit = Unit(Provider(finding.provider), finding.account, finding.region)
        snap = restorer.find(unit.account, unit.region, finding_id=finding.id)
        found = (unit, snap) if snap else None
    if found is None:
        raise CleanupError(f"no costbot snapshot found for {ref}")
    unit, snapshot = found
    restored = restorer.restore(unit.account, unit.region, snapshot)
    if restored.finding_id:
        with contextlib.suppress(UnknownFindingError):
            app.store().add_note(
                restored.finding_id,
                actor=by,
                now=utcnow(),
                note=f"restored as {restored.volume_id} from {restored.snapshot_id}",
                data={"volume_id": restored.volume_id, "snapshot_id": restored.snapshot_id},
            )
    click.echo(
        f"restored {restored.source_volume} as {restored.volume_id} "
        f"({restored.size_gb} GiB {restored.volume_type} in {restored.zone}) "
        f"from {restored.snapshot_id}"
    )


@cli.command()
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the demo's findings in this SQLite file [default: a temporary file].",
)
@click.option("--execute", is_flag=True, help="Really clean the two approved demo findings.")
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
def demo(store_path: Path | None, execute: bool, fmt: str) -> None:
    """Run scan, approval and cleanup against a built-in emulated AWS estate (no account needed)."""
    from cleaners import build_cleaners
    from costbot.demo import run_demo

    result = run_demo(store_path, cleaners_factory=build_cleaners, execute=execute)
    emit_findings(result.findings, fmt, result.report)
    out = console(stderr=fmt != "table")
    if result.cleanup is not None:
        out.print()
        out.print(cleanup_table(result.cleanup))
    out.print(
        f"\nDemo store: {result.store_path} — try "
        f"`costbot --config {result.config_path} findings` after the demo."
    )


def main() -> None:
    """Entry point of the `costbot` console script."""
    cli(prog_name="costbot")
