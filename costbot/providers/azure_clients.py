"""Azure client factories: one place that decides the credential, the ARM endpoint, the CA
bundle and retries, so sovereign clouds, proxies and local emulators get the same real clients.

Also azure_errors(), which re-raises azure-core errors as ProviderError, and parse_id().
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from costbot.config import AzureConfig
from costbot.errors import ConfigError, ProviderError
from costbot.model import Provider

TOKEN_ENV = "AZURE_ACCESS_TOKEN"
PERMISSIONS_API_VERSION = "2022-04-01"


def permits(action: str, grants: list[dict[str, Any]]) -> bool:
    """Whether Microsoft.Authorization permission grants allow an action (wildcards, notActions)."""

    def matches(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(action.lower(), p.lower()) for p in patterns)

    return any(
        matches(g.get("actions", [])) and not matches(g.get("notActions", [])) for g in grants
    )


@contextmanager
def azure_errors(subscription: str, operation: str, region: str = "*") -> Iterator[None]:
    """Re-raise azure-core errors (HTTP, auth, transport) from `operation` as ProviderError."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        detail = (getattr(exc, "message", None) or str(exc)).splitlines()[0]
        raise ProviderError(
            f"azure subscription {subscription}: {operation}: {f'{status} ' if status else ''}"
            f"{detail}",
            provider=Provider.AZURE,
            account=subscription,
            region=region,
            operation=operation,
        ) from exc


def parse_id(resource_id: str) -> dict[str, str]:
    """An ARM id's parts: subscription, resource_group, provider, type, name (case kept)."""
    parts = resource_id.strip("/").split("/")
    pairs = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
    try:
        return {
            "subscription": pairs["subscriptions"],
            "resource_group": pairs["resourcegroups"],
            "provider": pairs["providers"],
            "type": parts[-2],
            "name": parts[-1],
        }
    except KeyError:
        raise ProviderError(
            f"not an Azure resource id: {resource_id}", provider=Provider.AZURE
        ) from None


class EnvTokenCredential:
    """A bearer token from AZURE_ACCESS_TOKEN (`az account get-access-token`), read per call."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """The token in the environment, valid for the next hour as far as we know."""
        from azure.core.credentials import AccessToken

        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise ConfigError(
                f"providers.azure.credential is env_token but {TOKEN_ENV} is not set",
                key="providers.azure.credential",
            )
        return AccessToken(token, int(time.time()) + 3600)


class AzureClients:
    """Builds (once per subscription) the compute, network and monitor management clients."""

    def __init__(
        self,
        config: AzureConfig,
        *,
        credential: Any = None,
        retry_total: int = 3,
        polling_interval_s: float = 10,
    ) -> None:
        self._config = config
        self._credential = credential
        self._retry_total = retry_total
        self._polling_interval = polling_interval_s
        self.endpoint = config.management_endpoint.rstrip("/")
        """The ARM endpoint every client talks to."""
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    def credential(self) -> Any:
        """Injected, the environment token, or DefaultAzureCredential (no browser prompt)."""
        with self._lock:
            if self._credential is None:
                if self._config.credential == "env_token":
                    self._credential = EnvTokenCredential()
                else:
                    from azure.identity import DefaultAzureCredential

                    self._credential = DefaultAzureCredential(
                        exclude_interactive_browser_credential=True
                    )
            return self._credential

    def compute(self, subscription: str) -> Any:
        """azure-mgmt-compute's ComputeManagementClient for one subscription."""
        from azure.mgmt.compute import ComputeManagementClient

        return self._cached("compute", subscription, ComputeManagementClient)

    def network(self, subscription: str) -> Any:
        """azure-mgmt-network's NetworkManagementClient for one subscription."""
        from azure.mgmt.network import NetworkManagementClient

        return self._cached("network", subscription, NetworkManagementClient)

    def monitor(self, subscription: str) -> Any:
        """azure-mgmt-monitor's MonitorManagementClient for one subscription."""
        from azure.mgmt.monitor import MonitorManagementClient

        return self._cached("monitor", subscription, MonitorManagementClient)

    def permissions(self, subscription: str, scope: str = "") -> list[dict[str, Any]]:
        """The caller's effective permission grants on the subscription or a scope under it."""
        from azure.core.rest import HttpRequest

        url = (
            f"{self.endpoint}/subscriptions/{subscription}{scope}"
            f"/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API_VERSION}"
        )
        operation = "Microsoft.Authorization/permissions/read"
        with azure_errors(subscription, operation):
            answer = self.compute(subscription).send_request(HttpRequest("GET", url))
            answer.raise_for_status()
        try:
            return list(answer.json().get("value", []))
        except (ValueError, AttributeError) as exc:
            raise ProviderError(
                f"azure subscription {subscription}: {operation}: unreadable answer ({exc})",
                provider=Provider.AZURE,
                account=subscription,
                operation=operation,
            ) from exc

    def _cached(self, kind: str, subscription: str, cls: Callable[..., Any]) -> Any:
        key = (kind, subscription)
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            options: dict[str, Any] = {
                "base_url": self.endpoint,
                "credential_scopes": [f"{self.endpoint}/.default"],
                "retry_total": self._retry_total,
                "polling_interval": self._polling_interval,
            }
            if self._config.ca_bundle is not None:
                options["connection_verify"] = str(self._config.ca_bundle)
            client = cls(self.credential(), subscription, **options)
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client
