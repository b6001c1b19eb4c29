"""Slack commands: `notify` posts new findings; `serve` runs the app that takes decisions."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import click

from costbot.cleanup import CleanupRun
from costbot.cli.base import EXIT_PARTIAL, AppContext, build_cleaners_for, cli
from costbot.config import Config, SlackConfig
from costbot.errors import ConfigError
from costbot.render import console


def _slack(config: Config) -> SlackConfig:
    if config.slack is None:
        raise ConfigError("this command needs a slack section in the config", key="slack")
    return config.slack


def _secret(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{name} is not set in the environment", key="slack")
    return value


@cli.command()
@click.pass_obj
def notify(app: AppContext) -> None:
    """Dry-run and post new findings to Slack with Approve / Reject / Snooze buttons."""
    from costbot.slack.notify import notify as post
    from costbot.slack.notify import web_client

    config = app.config
    slack = _slack(config)
    report = post(slack, app.store(), web_client(slack), build_cleaners_for(config))
    if report.error:
        click.echo(f"error: {report.error}", err=True)
        sys.exit(EXIT_PARTIAL)
    console().print(
        f"Posted {report.findings} findings in {report.messages} messages to {slack.channel}."
    )


@cli.command()
@click.option(
    "--http", "http", metavar="HOST:PORT", help="HTTP mode on this address (path /slack/events)."
)
@click.option(
    "--execute", is_flag=True, help="Approved cleanups really act (also needs cleanup.execute)."
)
@click.pass_obj
def serve(app: AppContext, http: str | None, execute: bool) -> None:
    """Run the Slack app (Socket Mode by default) and clean up approved findings as they come."""
    from costbot.slack.app import build_app
    from costbot.slack.notify import post_outcomes, web_client
    from costbot.slack.server import CleanupQueue

    config = app.config
    slack = _slack(config)
    store = app.store()
    client = web_client(slack)
    cleaners = build_cleaners_for(config)
    actionable = set(cleaners)
    worker = CleanupQueue(
        run=lambda ids: CleanupRun(config, store, cleaners, execute=execute).run(ids),
        report=lambda report: post_outcomes(store, client, report, actionable),
    )
    address = http or ("0.0.0.0:3000" if slack.mode == "http" else None)
    secret = _secret("SLACK_SIGNING_SECRET") if address else None
    bolt = build_app(
        slack, store, client, actionable=actionable, on_approved=worker.put, signing_secret=secret
    )
    worker.start()
    try:
        if address:
            _serve_http(bolt, address)
        else:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler: Any = SocketModeHandler(bolt, _secret("SLACK_APP_TOKEN"))
            handler.start()
    finally:
        worker.stop()


def _serve_http(bolt: Any, address: str) -> None:
    from costbot.slack.server import http_server

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {address!r}", param_hint="--http")
    server = http_server(bolt, host, int(port))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    click.echo(f"listening on http://{host}:{server.server_port}/slack/events", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
