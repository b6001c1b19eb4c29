"""Cleaners: the only code that changes cloud resources, one small class per action.

build_cleaners(config) returns the enabled actions keyed by (provider, kind of finding);
costbot/cleanup.py is the only caller of their execute().
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import boto3

from costbot.actions import Cleaner
from costbot.config import Config
from costbot.model import Kind, Provider
from costbot.providers.aws_sessions import AwsSessions
from costbot.providers.azure_clients import AzureClients
from costbot.providers.gcp_clients import GcpClients
from costbot.store import utcnow


def build_cleaners(
    config: Config,
    *,
    session_factory: Callable[..., boto3.Session] = boto3.Session,
    today: Callable[[], datetime] = utcnow,
    snapshot_poll_s: float = 15,
    gcp_clients: GcpClients | None = None,
    azure_clients: AzureClients | None = None,
) -> dict[tuple[Provider, Kind], Cleaner]:
    """The cleanup actions the config enables, keyed by (provider, kind)."""
    cleaners: dict[tuple[Provider, Kind], Cleaner] = {}
    if config.providers.aws is not None:
        from cleaners.aws import DeleteVolume, ReleaseAddress, SnapshotAndDeleteVolume
        from cleaners.aws_resize import ResizeInstance

        sessions = AwsSessions(config.providers.aws, session_factory=session_factory)
        exclusions = config.exclusions
        volume_action = (
            SnapshotAndDeleteVolume if config.cleanup.snapshot_before_delete else DeleteVolume
        )
        cleaners[(Provider.AWS, Kind.IDLE_VOLUME)] = volume_action(
            sessions.client,
            exclusions,
            today,
            snapshot_timeout_s=config.cleanup.snapshot_timeout_minutes * 60,
            poll_s=snapshot_poll_s,
        )
        cleaners[(Provider.AWS, Kind.UNATTACHED_IP)] = ReleaseAddress(
            sessions.client, exclusions, today
        )
        if config.cleanup.allow_resize:
            cleaners[(Provider.AWS, Kind.OVERSIZED_INSTANCE)] = ResizeInstance(
                sessions.client, exclusions, today
            )
    if config.providers.gcp is not None:
        cleaners |= _gcp(config, gcp_clients or GcpClients(config.providers.gcp), today)
    if config.providers.azure is not None:
        clients = azure_clients or AzureClients(config.providers.azure)
        cleaners |= _azure(config, clients, today)
    return cleaners


def _gcp(
    config: Config, clients: GcpClients, today: Callable[[], datetime]
) -> dict[tuple[Provider, Kind], Cleaner]:
    from cleaners.gcp import DeleteDisk, ReleaseAddress, SnapshotAndDeleteDisk
    from cleaners.gcp_resize import ResizeGcpInstance

    exclusions = config.exclusions
    disk_action = SnapshotAndDeleteDisk if config.cleanup.snapshot_before_delete else DeleteDisk
    timeout = config.cleanup.snapshot_timeout_minutes * 60
    found: dict[tuple[Provider, Kind], Cleaner] = {
        (Provider.GCP, Kind.IDLE_VOLUME): disk_action(
            clients, exclusions, today, operation_timeout_s=timeout
        ),
        (Provider.GCP, Kind.UNATTACHED_IP): ReleaseAddress(clients, exclusions, today),
    }
    if config.cleanup.allow_resize:
        found[(Provider.GCP, Kind.OVERSIZED_INSTANCE)] = ResizeGcpInstance(
            clients, exclusions, today
        )
    return found


def _azure(
    config: Config, clients: AzureClients, today: Callable[[], datetime]
) -> dict[tuple[Provider, Kind], Cleaner]:
    from cleaners.azure import DeleteDisk, DeletePublicIp, SnapshotAndDeleteDisk
    from cleaners.azure_resize import ResizeAzureVm

    exclusions = config.exclusions
    disk_action = SnapshotAndDeleteDisk if config.cleanup.snapshot_before_delete else DeleteDisk
    found: dict[tuple[Provider, Kind], Cleaner] = {
        (Provider.AZURE, Kind.IDLE_VOLUME): disk_action(clients, exclusions, today),
        (Provider.AZURE, Kind.UNATTACHED_IP): DeletePublicIp(clients, exclusions, today),
    }
    if config.cleanup.allow_resize:
        found[(Provider.AZURE, Kind.OVERSIZED_INSTANCE)] = ResizeAzureVm(clients, exclusions, today)
    return found
