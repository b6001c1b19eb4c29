"""`costbot demo`: scan, approve and clean in the built-in emulated estate."""

from __future__ import annotations

from pathlib import Path

import click

from costbot.cli.base import FORMAT_TABLE_JSON, cli, emit_findings
from costbot.digest.render import digest_markdown
from costbot.render import cleanup_table, console, slack_preview


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
    if result.slack_messages:
        out.print(
            f"\n[bold]What Slack would show[/bold] (full Block Kit JSON: {result.slack_json_path}):"
        )
        out.print(slack_preview(result.slack_messages), markup=False, highlight=False)
    if result.cleanup is not None:
        out.print()
        out.print(cleanup_table(result.cleanup))
    if result.digest is not None:
        out.print(
            "\n[bold]Weekly cost digest[/bold] (from 8 weeks of emulated Cost Explorer data; "
            f"chart: {result.chart_path}):"
        )
        out.print(digest_markdown(result.digest, markdown=False), markup=False, highlight=False)
    out.print(
        f"\nDemo store: {result.store_path} — try "
        f"`costbot --config {result.config_path} findings` after the demo."
    )
