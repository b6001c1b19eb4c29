"""Google Cloud client factories: one place that decides credentials, endpoints and transports,
so users behind proxies and tests against local emulators get the same real clients.

Also gcp_errors(), which re-raises google-api-core errors as ProviderError.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from costbot.config import GcpConfig
from costbot.errors import ProviderError
from costbot.model import Provider

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


@contextmanager
def gcp_errors(project: str, operation: str, region: str = "*") -> Iterator[None]:
    """Re-raise Google API and auth errors from `operation` as ProviderError."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        yield
    except (GoogleAPIError, GoogleAuthError, OSError) as exc:  # OSError: requests' transport
        detail = getattr(exc, "message", None) or str(exc)
        code = getattr(exc, "code", None)
        status = f"{int(code)} " if isinstance(code, int) else ""
        raise ProviderError(
            f"gcp project {project}: {operation}: {status}{detail}",
            provider=Provider.GCP,
            account=project,
            region=region,
            operation=operation,
        ) from exc


class GcpClients:
    """Builds (once each) the Compute, Monitoring and Billing clients a config asks for."""

    def __init__(
        self,
        config: GcpConfig,
        *,
        credentials: Any = None,
        monitoring_channel: Callable[[], Any] | None = None,
    ) -> None:
        self._config = config
        self._credentials = credentials
        self._monitoring_channel = monitoring_channel
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}

    def credentials(self) -> Any:
        """The credentials every client uses: injected, anonymous, or Application Default."""
        with self._lock:
            if self._credentials is None:
                if self._config.credentials == "anonymous":
                    from google.auth.credentials import AnonymousCredentials

                    self._credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
                else:
                    import google.auth

                    with gcp_errors("*", "google.auth.default"):
                        self._credentials, _ = google.auth.default(scopes=SCOPES)
            return self._credentials

    def compute(self, name: str) -> Any:
        """A compute_v1 REST client by class name, e.g. compute('DisksClient')."""
        from google.cloud import compute_v1

        return self._cached(
            name,
            lambda: getattr(compute_v1, name)(
                credentials=self.credentials(),
                transport="rest",
                client_options=self._options(self._config.endpoints.compute),
            ),
        )

    def monitoring(self) -> Any:
        """The Cloud Monitoring MetricServiceClient (gRPC)."""
        from google.cloud import monitoring_v3

        def build() -> Any:
            endpoint = self._config.endpoints.monitoring
            channel = self._monitoring_channel
            if channel is None and endpoint and self._config.endpoints.monitoring_insecure:
                import grpc

                def channel() -> Any:
                    return grpc.insecure_channel(endpoint)

            if channel is not None:
                from google.cloud.monitoring_v3.services.metric_service.transports import (
                    MetricServiceGrpcTransport,
                )

                return monitoring_v3.MetricServiceClient(
                    transport=MetricServiceGrpcTransport(channel=channel())
                )
            return monitoring_v3.MetricServiceClient(
                credentials=self.credentials(), client_options=self._options(endpoint)
            )

        return self._cached("monitoring", build)

    def recommender(self) -> Any:
        """The Recommender client (REST), for Google's own second opinion."""
        from google.cloud import recommender_v1

        return self._cached(
            "recommender",
            lambda: recommender_v1.RecommenderClient(
                credentials=self.credentials(),
                transport="rest",
                client_options=self._options(self._config.endpoints.recommender),
            ),
        )

    def catalog(self) -> Any:
        """The Cloud Billing CloudCatalogClient (REST), for live prices."""
        from google.cloud import billing_v1

        return self._cached(
            "catalog",
            lambda: billing_v1.CloudCatalogClient(
                credentials=self.credentials(),
                transport="rest",
                client_options=self._options(self._config.endpoints.billing),
            ),
        )

    def test_project_permissions(self, project: str, permissions: list[str]) -> set[str]:
        """Which of `permissions` the caller holds on a project (Resource Manager v1)."""
        from google.auth.transport.requests import AuthorizedSession

        base = (
            self._config.endpoints.resource_manager or "https://cloudresourcemanager.googleapis.com"
        )
        url = f"{base.rstrip('/')}/v1/projects/{project}:testIamPermissions"
        operation = "resourcemanager.projects.testIamPermissions"
        session = AuthorizedSession(self.credentials())  # type: ignore[no-untyped-call]
        try:
            answer = session.post(url, json={"permissions": permissions}, timeout=30)
        except OSError as exc:  # requests' errors derive from IOError
            raise ProviderError(
                f"gcp project {project}: {operation}: {exc}",
                provider=Provider.GCP,
                account=project,
                operation=operation,
            ) from exc
        if answer.status_code != 200:
            raise ProviderError(
                f"gcp project {project}: {operation}: {answer.status_code} {answer.text[:300]}",
                provider=Provider.GCP,
                account=project,
                operation=operation,
            )
        return set(answer.json().get("permissions", []))

    def _cached(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            client = build()
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client

    @staticmethod
    def _options(endpoint: str | None) -> dict[str, str] | None:
        return {"api_endpoint": endpoint} if endpoint else None
