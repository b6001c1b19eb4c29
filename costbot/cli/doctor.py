"""`costbot doctor`: credentials and permissions of every configured account, as a table."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click
from rich.table import Table

from costbot.cli.base import EXIT_PARTIAL, FORMAT_TABLE_JSON, AppContext, build_cleaners_for, cli
from costbot.model import Provider
from costbot.render import console


@cli.command()
@click.option(
    "--provider", type=click.Choice([p.value for p in Provider]), help="Check only this provider."
)
@click.option("--all", "show_all", is_flag=True, help="Also list the permissions that are fine.")
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@click.pass_obj
def doctor(app: AppContext, provider: str | None, show_all: bool, fmt: str) -> None:
    """Check credentials and the scan (read) and cleanup (write) permissions; exit 1 if any fail."""
    from costbot.doctor import problems, run_doctor
    from costbot.providers import build_providers

    config = app.config
    adapters = build_providers(config, Provider(provider) if provider else None)
    writes: dict[Provider, list[str]] = {}
    for (cloud, _kind), cleaner in build_cleaners_for(config).items():
        writes.setdefault(cloud, []).extend(cleaner.permissions)
    checks = run_doctor(adapters, writes)
    failed = problems(checks)
    if fmt == "json":
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        shown = (
            checks if show_all else [c for c in checks if c.purpose == "credentials" or c in failed]
        )
        table = Table(title="costbot doctor")
        for column in ("provider", "account", "purpose", "permission", "verdict", "detail"):
            table.add_column(column)
        for c in shown:
            style = {"ok": "green", "missing": "red", "error": "red"}.get(c.verdict, "yellow")
            table.add_row(
                c.provider, c.account, c.purpose, c.permission, f"[{style}]{c.verdict}[/]", c.detail
            )
        console().print(table)
        ok = sum(1 for c in checks if c.verdict == "ok")
        console().print(f"{ok} ok, {len(failed)} missing or failing, {len(checks)} checked")
    if failed:
        sys.exit(EXIT_PARTIAL)
