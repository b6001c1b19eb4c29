"""The plain-http plumbing of the GCP emulator: a threaded JSON server on 127.0.0.1 (free port,
daemon threads, keep-alive) with start/stop/context-manager lifecycle, and the request record.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received (path without the query string; body as parsed JSON)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


class JsonHttpEmulator(ABC):
    """Serves `handle(method, path, query, body) -> (status, JSON)` over http on 127.0.0.1."""

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        """Answer one request: (HTTP status, JSON-serialisable body)."""

    def start(self) -> Self:
        """Serve on 127.0.0.1 on a free port from a daemon thread."""
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The base URL to give clients as `api_endpoint`: "http://127.0.0.1:PORT"."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running: call start() or use `with`")
        return f"http://127.0.0.1:{self._server.server_address[1]}"


class _Server(ThreadingHTTPServer):
    """127.0.0.1, a free port, one daemon thread per connection."""

    daemon_threads = True

    def __init__(self, emulator: JsonHttpEmulator) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.emulator = emulator


class _Handler(BaseHTTPRequestHandler):
    """Turns HTTP requests into `handle` calls (JSON in, JSON out, keep-alive)."""

    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query, True).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        emulator = cast(_Server, self.server).emulator
        status, answer = emulator.handle(self.command, unquote(url.path), query, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test and demo output quiet."""
