"""The click group, the shared context every command gets, and the error-to-exit-code rule:
0 ok, 1 partial failure, 2 bad config or usage."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from costbot import __version__
from costbot.config import Config, config_path, load_config
from costbot.errors import ConfigError, CostbotError
from costbot.logs import setup_logging
from costbot.render import console, findings_csv, findings_json, findings_table, print_scan_summary
from costbot.scan import ScanReport
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


def build_cleaners_for(config: Config) -> Any:
    """The cleanup actions the config enables (the CLI is the only costbot code importing them)."""
    from cleaners import build_cleaners

    return build_cleaners(config)
