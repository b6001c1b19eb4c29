"""`costbot serve`: the scheduler, the Slack app (Socket Mode or HTTP) and the HTTP probes in
one process, with a graceful stop: no new work, the running action finished and recorded."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from costbot.cleanup import Cleaners, CleanupReport, CleanupRun
from costbot.config import Config
from costbot.errors import ConfigError, CostbotError
from costbot.jobs import Jobs
from costbot.metrics import render_metrics
from costbot.scheduler import build_scheduler
from costbot.slack.server import CleanupQueue, Route, http_server
from costbot.store import Store

log = logging.getLogger(__name__)


class Service:
    """Everything `costbot serve` runs; start() returns once serving, stop() drains."""

    def __init__(
        self,
        config: Config,
        store: Store,
        cleaners_factory: Callable[[Config], Cleaners],
        *,
        execute: bool,
        listen: str,
        slack_http: bool,
        secrets: Callable[[str], str],
    ) -> None:
        self.config = config
        self.store = store
        self.jobs = Jobs(config, store, cleaners_factory, execute=execute)
        self.scheduler = build_scheduler(config.schedule, self.run_scheduled)
        self._cleaners = cleaners_factory(config)
        self._socket_handler: Any = None
        self.queue = CleanupQueue(run=self._clean_now, report=self._report)
        app = self._slack_app(slack_http, secrets)
        host, _, port = listen.rpartition(":")
        routes: dict[str, Route] = {"/readyz": self._ready, "/metrics": self._metrics}
        self.http = http_server(app if slack_http else None, host, int(port), routes)
        if app is not None and not slack_http:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            self._socket_handler = SocketModeHandler(app, secrets("SLACK_APP_TOKEN"))
        self._http_thread = threading.Thread(
            target=self.http.serve_forever, name="http", daemon=True
        )

    def run_scheduled(self, job: str) -> None:
        """Run a scheduled job; a scan is followed at once by posting its new findings."""
        self.jobs.run(job)
        if job == "scan" and self.config.slack is not None:
            self.jobs.run("notify")

    def _slack_app(self, slack_http: bool, secrets: Callable[[str], str]) -> Any:
        if self.config.slack is None:
            if slack_http:
                raise ConfigError("Slack HTTP mode needs a slack section", key="slack")
            return None
        from costbot.slack.app import build_app
        from costbot.slack.notify import web_client

        self._client = web_client(self.config.slack)
        return build_app(
            self.config.slack,
            self.store,
            self._client,
            actionable=set(self._cleaners),
            on_approved=self.queue.put,
            signing_secret=secrets("SLACK_SIGNING_SECRET") if slack_http else None,
        )

    def _clean_now(self, finding_ids: list[str]) -> CleanupReport:
        return CleanupRun(self.config, self.store, self._cleaners, execute=self.jobs.execute).run(
            finding_ids
        )

    def _report(self, report: CleanupReport) -> None:
        if self.config.slack is None:
            return
        from costbot.slack.notify import post_outcomes

        post_outcomes(self.store, self._client, report, set(self._cleaners))

    def _ready(self) -> tuple[str, str, bytes]:
        try:
            self.store.latest_scans()
        except CostbotError as exc:
            return "503 Service Unavailable", "text/plain", f"store: {exc}\n".encode()
        if not self.scheduler.running:
            return "503 Service Unavailable", "text/plain", b"scheduler not running\n"
        if not self.queue.alive:
            return "503 Service Unavailable", "text/plain", b"cleanup worker not running\n"
        return "200 OK", "text/plain", b"ready\n"

    def _metrics(self) -> tuple[str, str, bytes]:
        body = render_metrics(self.store, self.jobs).encode()
        return "200 OK", "text/plain; version=0.0.4; charset=utf-8", body

    @property
    def port(self) -> int:
        """The port the HTTP server listens on."""
        return int(self.http.server_port)

    def start(self) -> None:
        """Start the cleanup worker, the scheduler, the HTTP server and Socket Mode."""
        self.queue.start()
        self.scheduler.start()
        self._http_thread.start()
        if self._socket_handler is not None:
            self._socket_handler.connect()
        log.info(
            "serving", extra={"port": self.port, "jobs": [j.id for j in self.scheduler.get_jobs()]}
        )

    def stop(self) -> None:
        """Stop taking work, let running jobs and the current action finish, then close."""
        log.info("stopping")
        if self._socket_handler is not None:
            self._socket_handler.close()
        self.http.shutdown()
        self.scheduler.shutdown(wait=True)
        self.queue.stop()
        self.http.server_close()
        log.info("stopped")
