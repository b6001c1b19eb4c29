"""A local emulator of the documented Azure Resource Manager JSON APIs (compute, network,
monitor metrics, authorization permissions) and the Retail Prices API, served over https with a
throwaway trustme CA so the real azure-mgmt clients and `requests` talk to it unchanged.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

from costbot.emulators.azure_prices import RetailPrices
from costbot.emulators.azure_routes import ArmRoutes
from costbot.emulators.azure_state import RecordedRequest, Reply, error

__all__ = ["AzureEmulator", "EmulatorCredential", "RecordedRequest"]
TOKEN = "emulator-token"
_CHALLENGE = (
    'Bearer authorization_uri="https://login.microsoftonline.com/common", '
    'error="invalid_token", error_description="The authentication failed because of '
    "missing 'Authorization' header.\""
)


class EmulatorCredential:
    """An offline token credential for the emulator: never reaches a login endpoint."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A bearer token valid for an hour."""
        return AccessToken(TOKEN, int(time.time()) + 3600)

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        """The same token in the shape newer azure-core policies ask for."""
        return AccessTokenInfo(TOKEN, int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> EmulatorCredential:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AzureEmulator(ArmRoutes):
    """ARM + Retail Prices on https://127.0.0.1:PORT; seed it, then point clients at endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self._prices = RetailPrices()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._directory: str | None = None

    def __enter__(self) -> AzureEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> AzureEmulator:
        """Issue the CA and certificate, write the CA PEM and serve on a free port."""
        import trustme

        ca = trustme.CA()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._directory = tempfile.mkdtemp(prefix="costbot-azure-emulator-")
        ca.cert_pem.write_to_path(str(Path(self._directory) / "ca.pem"))
        self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="azure-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the CA file."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    @property
    def endpoint(self) -> str:
        """https://127.0.0.1:PORT (ARM base_url and Retail Prices host)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ca_path(self) -> str:
        """Path of the CA certificate (PEM) to trust, e.g. as connection_verify."""
        if self._directory is None:
            raise RuntimeError("the emulator is not running")
        return str(Path(self._directory) / "ca.pem")

    def credential(self) -> EmulatorCredential:
        """A credential the azure-mgmt clients accept."""
        return EmulatorCredential()

    def add_price(self, item: dict[str, Any]) -> None:
        """Add one Retail Prices item (same fields as the API returns)."""
        self._prices.add(item)

    def fail_prices(self, status: int, message: str) -> None:
        """Answer every later Retail Prices request with this status and message."""
        self._prices.fail(status, message)

    def answer(self, request: RecordedRequest, *, malformed: bool = False) -> Reply:
        """Record one request and answer it (400 if its body was not JSON)."""
        with self._lock:
            self.requests.append(request)
        if malformed:
            return Reply(400, error("InvalidRequestContent", "The request body is not JSON."))
        if request.path.lower().startswith("/api/retail/prices"):
            if request.method != "GET":
                return Reply(405, {"Error": {"Code": "MethodNotAllowed", "Message": "GET only"}})
            status, body = self._prices.answer(self.endpoint, request.path, request.query)
            return Reply(status, body)
        if not (request.authorization or "").startswith("Bearer "):
            missing = "Authentication failed. The 'Authorization' header is missing."
            return Reply(
                401, error("AuthenticationFailed", missing), {"WWW-Authenticate": _CHALLENGE}
            )
        return self._answer_arm(request, self.endpoint)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, emulator: AzureEmulator, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.emulator = emulator
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        """TLS handshake in the connection's own thread, then serve it."""
        with self.context.wrap_socket(cast(socket.socket, request), server_side=True) as tls:
            _Handler(tls, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about failed handshakes and dropped connections; report anything else."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = "/" + urllib.parse.unquote(url.path).lstrip("/")
        query = {
            key: values[-1]
            for key, values in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
        }
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        emulator = cast(_Server, self.server).emulator
        malformed = False
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body, malformed = raw.decode("utf-8", "replace"), True
        request = RecordedRequest(
            self.command, path, query, body, self.headers.get("Authorization")
        )
        try:
            reply = emulator.answer(request, malformed=malformed)
        except Exception as exc:  # an emulator bug: show it to the client, keep serving
            reply = Reply(500, error("InternalServerError", f"emulator failure: {exc!r}"))
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve
