"""Running for real: `costbot serve` (scheduler + Slack app + probes) and `costbot run JOB`
(one job, for cron or a Kubernetes CronJob, with JSON logs on stdout)."""

from __future__ import annotations

import os
import signal
import sys
import threading

import click

from costbot.cli.base import AppContext, build_cleaners_for, cli
from costbot.errors import ConfigError
from costbot.jobs import JOB_NAMES, Jobs
from costbot.logs import setup_logging


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{name} is not set in the environment", key="slack")
    return value


@cli.command()
@click.option(
    "--http",
    "http",
    metavar="HOST:PORT",
    help="Slack HTTP mode: serve /slack/events (and the probes) on this address.",
)
@click.option(
    "--execute", is_flag=True, help="Approved cleanups really act (also needs cleanup.execute)."
)
@click.pass_obj
def serve(app: AppContext, http: str | None, execute: bool) -> None:
    """Run the scheduler, the Slack app and /healthz, /readyz, /metrics until SIGTERM."""
    from costbot.service import Service

    config = app.config
    slack_http = bool(http) or (config.slack is not None and config.slack.mode == "http")
    listen = http or config.serve.listen
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--http")
    service = Service(
        config,
        app.store(),
        build_cleaners_for,
        execute=execute,
        listen=listen,
        slack_http=slack_http,
        secrets=_secret,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service.start()
    click.echo(
        f"costbot serving on http://{host}:{service.port} (probes /healthz /readyz "
        f"/metrics{', Slack /slack/events' if slack_http else ''})",
        err=True,
    )
    stop.wait()
    service.stop()


@cli.command()
@click.argument("job", type=click.Choice(JOB_NAMES))
@click.option("--execute", is_flag=True, help="cleanup: really act (also needs cleanup.execute).")
@click.pass_context
def run(ctx: click.Context, job: str, execute: bool) -> None:
    """Run one job and exit: 0 ok, 1 partial failure, 2 bad config. JSON logs on stdout."""
    fmt = ctx.find_root().params.get("log_format", "auto")
    verbosity = max(1, ctx.find_root().params.get("verbose", 0))
    setup_logging(verbosity, "json" if fmt == "auto" else fmt, stream=sys.stdout)
    app: AppContext = ctx.obj
    result = Jobs(app.config, app.store(), build_cleaners_for, execute=execute).run(job)
    sys.exit(result.exit_code)
