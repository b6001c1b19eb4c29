"""The HTTP side of `costbot serve`: a threaded WSGI server with GET probes (/healthz, and
/readyz and /metrics from the service) and, in Slack HTTP mode, bolt at POST /slack/events;
and the worker that runs cleanups queued by approvals, off the request path."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from costbot.cleanup import CleanupReport
from costbot.errors import CostbotError

log = logging.getLogger(__name__)
EVENTS_PATH = "/slack/events"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128
    """Slack may send a burst of clicks at once; the default backlog (5) drops connections."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


Route = Callable[[], tuple[str, str, bytes]]
"""A GET handler: () -> (HTTP status line, content type, body)."""


def _health() -> tuple[str, str, bytes]:
    return "200 OK", "text/plain", b"ok\n"


def wsgi_app(
    app: App | None, routes: Mapping[str, Route] | None = None
) -> Callable[..., Iterable[bytes]]:
    """GET routes (/healthz by default, plus `routes`) and, with an app, bolt at /slack/events."""
    bolt = SlackRequestHandler(app, path=EVENTS_PATH) if app is not None else None
    table: dict[str, Route] = {"/healthz": _health, **(routes or {})}

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        handler = table.get(path) if environ.get("REQUEST_METHOD") == "GET" else None
        if handler is not None:
            status, content_type, body = handler()
            start_response(
                status, [("Content-Type", content_type), ("Content-Length", str(len(body)))]
            )
            return [body]
        if bolt is not None and path == EVENTS_PATH:
            return bolt(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return route


def http_server(
    app: App | None, host: str, port: int, routes: Mapping[str, Route] | None = None
) -> WSGIServer:
    """A threaded HTTP server (call serve_forever(); port 0 picks a free port)."""
    return make_server(
        host,
        port,
        wsgi_app(app, routes),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )


class CleanupQueue:
    """Runs queued cleanups one at a time in a background thread."""

    def __init__(
        self, run: Callable[[list[str]], CleanupReport], report: Callable[[CleanupReport], None]
    ) -> None:
        self._run = run
        self._report = report
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="cleanup", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def put(self, finding_id: str) -> None:
        """Queue one approved finding for cleanup (returns at once)."""
        self._queue.put(finding_id)

    @property
    def alive(self) -> bool:
        """Whether the worker thread is running."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 30) -> None:
        """Finish the action in progress, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _work(self) -> None:
        while (finding_id := self._queue.get()) is not None:
            try:
                self._report(self._run([finding_id]))
            except CostbotError as exc:
                log.error("queued cleanup failed", extra={"finding": finding_id, "error": str(exc)})
            except Exception:  # the worker must survive anything; the next run re-checks
                log.exception("queued cleanup crashed", extra={"finding": finding_id})
