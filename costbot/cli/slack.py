"""`costbot notify`: post new findings to Slack."""

from __future__ import annotations

import os
import sys

import click

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
