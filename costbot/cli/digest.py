"""`costbot digest`: the weekly cost digest, printed, charted and/or posted to Slack."""

from __future__ import annotations

import json
from pathlib import Path

import click

from costbot.cli.base import AppContext, cli
from costbot.store import utcnow


@cli.command()
@click.option("--week", metavar="YYYY-Www", help="ISO week [default: the last complete week].")
@click.option("--post", is_flag=True, help="Post it to Slack (digest.channel or slack.channel).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option(
    "--chart",
    "chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the daily-spend chart (PNG) here.",
)
@click.pass_obj
def digest(app: AppContext, week: str | None, post: bool, fmt: str, chart: Path | None) -> None:
    """Spend last week vs the week before, top services and movers, waste and savings."""
    from costbot.costs import build_cost_sources
    from costbot.digest import build_digest, post_digest
    from costbot.digest.chart import render_chart
    from costbot.digest.render import digest_markdown

    config = app.config
    sources, unavailable = build_cost_sources(config)
    result = build_digest(config, app.store(), sources, unavailable, now=utcnow(), week=week)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2, default=str))
    else:
        click.echo(digest_markdown(result, markdown=fmt == "markdown"), nl=False)
    if chart is not None:
        render_chart(result, chart)
        click.echo(f"chart written to {chart}", err=True)
    if post:
        from costbot.slack.notify import web_client

        if config.slack is None:
            raise click.UsageError("--post needs a slack section in the config")
        ts = post_digest(config, web_client(config.slack), result, chart)
        click.echo(f"posted to Slack ({ts})", err=True)
