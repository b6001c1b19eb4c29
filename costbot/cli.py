"""The `costbot` command line: the composition root that wires config, store, providers and
output together. Exit codes: 0 ok, 1 partial failure, 2 bad config or usage.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from costbot import __version__
from costbot.config import Config, config_path, load_config, masked, secrets_from_env
from costbot.errors import ConfigError, CostbotError
from costbot.logs import setup_logging
from costbot.model import ACTIVE_STATUSES, Kind, Provider, Status
from costbot.render import (
    console,
    findings_csv,
    findings_json,
    findings_table,
    print_scan_summary,
)
from costbot.scan import ScanReport, UnitResult, run_scan
from costbot.store import Store, StoredFinding

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


@cli.command()
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the demo's findings in this SQLite file [default: a temporary file].",
)
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
def demo(store_path: Path | None, fmt: str) -> None:
    """Run the whole scan against a built-in emulated AWS estate (no account needed)."""
    from costbot.demo import run_demo

    result = run_demo(store_path)
    emit_findings(result.findings, fmt, result.report)
    console(stderr=fmt != "table").print(
        f"\nDemo store: {result.store_path} — try "
        f"`costbot --config {result.config_path} findings` after the demo."
    )


def main() -> None:
    """Entry point of the `costbot` console script."""
    cli(prog_name="costbot")
