"""Commands for human decisions and cleanup: approve, reject, snooze, clean, history, restore."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import click

from costbot.actions import Restored
from costbot.approvals import Decision, decide
from costbot.cleanup import CleanupReport, CleanupRun, Stage
from costbot.cli.base import (
    EXIT_PARTIAL,
    FORMAT_TABLE_JSON,
    AppContext,
    build_cleaners_for,
    cli,
)
from costbot.config import Config
from costbot.errors import CleanupError, ConfigError, CostbotError, UnknownFindingError
from costbot.model import Provider, Unit, short_id
from costbot.render import cleanup_table, console, history_table
from costbot.store import StoredFinding, utcnow


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
        actionable=set(build_cleaners_for(config)),
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
    cleaners = build_cleaners_for(config)
    report = CleanupRun(config, app.store(), cleaners, execute=execute).run(
        list(finding_ids) or None
    )
    if fmt == "json":
        click.echo(json.dumps([line.to_json() for line in report.lines], indent=2, default=str))
    else:
        console().print(cleanup_table(report))
        if execute and not config.cleanup.execute:
            console().print("[yellow]note:[/yellow] --execute given but cleanup.execute is false")
    _tell_slack(config, app, report, set(cleaners))
    if report.count(Stage.FAILED):
        sys.exit(EXIT_PARTIAL)


def _tell_slack(
    config: Config, app: AppContext, report: CleanupReport, actionable: set[Any]
) -> None:
    """Outcomes reach the findings' Slack threads when Slack is configured (best effort)."""
    if config.slack is None or not os.environ.get("SLACK_BOT_TOKEN"):
        return
    from costbot.slack.notify import post_outcomes, web_client

    try:
        post_outcomes(app.store(), web_client(config.slack), report, actionable)
    except CostbotError as exc:
        console(stderr=True).print(f"[yellow]warning:[/yellow] Slack not updated: {exc}")


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
    """Recreate a disk costbot deleted, from its snapshot (same zone, type, size, tags)."""
    config = app.config
    if ref.startswith("snap-"):
        restored = _restore_aws(config, app, ref)
    else:
        finding = app.store().get(ref)
        if finding.provider == Provider.AWS:
            restored = _restore_aws(config, app, ref)
        else:
            restored = _restore_other(config, app, finding)
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
        f"restored {short_id(restored.source_volume)} as {restored.volume_id} "
        f"({restored.size_gb} GiB {restored.volume_type} in {restored.zone}) "
        f"from {restored.snapshot_id}"
    )


def _restore_aws(config: Config, app: AppContext, ref: str) -> Restored:
    from cleaners.aws_restore import RestoreVolume
    from costbot.providers.aws import AwsProvider

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
    return restorer.restore(unit.account, unit.region, snapshot)


def _restore_other(config: Config, app: AppContext, finding: StoredFinding) -> Restored:
    """GCP/Azure: the snapshot is the one the finding's last successful action recorded."""
    key = "snapshot" if finding.provider == Provider.GCP else "snapshot_id"
    done = [
        a.data
        for a in app.store().actions(finding.id)
        if a.result in ("done", "already_gone") and a.data.get(key) and a.data.get("disk")
    ]
    if not done:
        raise CleanupError(f"no costbot snapshot recorded for {finding.id}")
    today = utcnow
    if finding.provider == Provider.GCP:
        from cleaners.gcp_restore import RestoreGcpDisk
        from costbot.providers.gcp_clients import GcpClients

        if config.providers.gcp is None:
            raise ConfigError("restore needs providers.gcp", key="providers.gcp")
        gcp = RestoreGcpDisk(GcpClients(config.providers.gcp), config.exclusions, today)
        return gcp.restore(finding, done[-1])
    from cleaners.azure_restore import RestoreAzureDisk
    from costbot.providers.azure_clients import AzureClients

    if config.providers.azure is None:
        raise ConfigError("restore needs providers.azure", key="providers.azure")
    azure = RestoreAzureDisk(AzureClients(config.providers.azure), config.exclusions, today)
    return azure.restore(finding, done[-1])
