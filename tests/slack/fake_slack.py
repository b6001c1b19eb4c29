"""A local fake of the Slack Web API, and helpers to send Slack-signed button clicks.

FakeSlack is a ThreadingHTTPServer on 127.0.0.1 (port chosen by the OS) in a daemon thread.
It records every call (method, parsed params from JSON or form bodies and the query string,
the Authorization header) and answers the methods costbot uses: auth.test, chat.postMessage
(channel "C123", increasing ts), chat.update, chat.postEphemeral, usergroups.users.list
(members per group are configurable). A token that is not `Bearer xoxb-...` gets invalid_auth.
Tests script failures per method (`fail`, `ratelimit`) or hold a method's answer until they
release it (`hold`). POSTs to /respond/... (a click's response_url) are recorded too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")

BOT_AUTH = {
    "ok": True,
    "url": "https://costbot-test.slack.com/",
    "team": "Costbot Test",
    "user": "costbot",
    "team_id": "T111",
    "user_id": "U0BOT",
    "bot_id": "B0BOT",
    "is_enterprise_install": False,
}
CHANNEL_ID = "C123"
TEAM_ID = "T111"
APP_ID = "A0COSTBOT"
TS_BASE = 1_700_000_000


@dataclass(slots=True)
class Call:
    """One request the fake received (and, once answered, the HTTP status and JSON answer)."""

    method: str
    params: Mapping[str, Any]
    authorization: str | None
    content_type: str
    at: float
    status: int | None = None
    answer: Mapping[str, Any] | None = None

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """The `blocks` param as a list, whether it came as JSON or as a form-encoded string."""
        blocks = self.params.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


@dataclass
class _Script:
    error: str
    status: int
    times: int | None
    """How many calls fail; None = every call from now on."""
    after: int
    """How many calls succeed before the failures start."""
    retry_after: int | None


@dataclass
class _Hold:
    release: threading.Event = field(default_factory=threading.Event)
    waiting: threading.Event = field(default_factory=threading.Event)


class FakeSlack:
    """The fake Slack Web API server (use as a context manager, or start() / stop())."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._scripts: dict[str, list[_Script]] = {}
        self._holds: dict[str, _Hold] = {}
        self._ts = 0
        self.usergroups: dict[str, list[str]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(0.02,), name="fake-slack", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        self._thread.start()
        return self

    def stop(self) -> None:
        for hold in list(self._holds.values()):
            hold.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        """The Web API base URL to give WebClient / SlackConfig.api_base_url."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "click") -> str:
        """A response_url for click payloads that points at this fake."""
        return f"http://127.0.0.1:{self.port}/respond/{TEAM_ID}/{name}"

    # -- scripting -------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        times: int | None = 1,
        after: int = 0,
        retry_after: int | None = None,
    ) -> None:
        """Answer `{"ok": false, "error": error}` to `times` calls of `method` (None = all of
        them), after letting `after` calls succeed first."""
        with self._lock:
            self._scripts.setdefault(method, []).append(
                _Script(error, status, times, after, retry_after)
            )

    def ratelimit(self, method: str, *, times: int | None = 1, retry_after: int = 0) -> None:
        """HTTP 429 `ratelimited` with a Retry-After header, like Slack's tier limits."""
        self.fail(method, "ratelimited", status=429, times=times, retry_after=retry_after)

    def clear_failures(self) -> None:
        """Forget every scripted failure."""
        with self._lock:
            self._scripts.clear()

    def hold(self, method: str) -> _Hold:
        """Make calls of `method` wait until `.release.set()`; `.waiting` is set once one has
        arrived."""
        hold = _Hold()
        with self._lock:
            self._holds[method] = hold
        return hold

    # -- the call log ----------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def wait_for(self, probe: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        """Poll `probe` until it returns something truthy; fail with the call log otherwise."""
        return wait_until(probe, timeout, what or "fake Slack condition", lambda: self.calls)

    # -- answering -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"{TS_BASE}.{self._ts * 100:06d}"

    def _scripted(self, method: str) -> _Script | None:
        with self._lock:
            scripts = self._scripts.get(method)
            if not scripts:
                return None
            script = scripts[0]
            if script.after > 0:
                script.after -= 1
                return None
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    scripts.pop(0)
            return script

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    def answer(
        self, method: str, params: Mapping[str, Any], authorization: str | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        hold = self._holds.get(method)
        if hold is not None:
            hold.waiting.set()
            hold.release.wait(30)
        if not (authorization or "").startswith("Bearer xoxb-"):
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        script = self._scripted(method)
        if script is not None:
            headers = {}
            if script.retry_after is not None:
                headers["Retry-After"] = str(script.retry_after)
            return script.status, headers, {"ok": False, "error": script.error}
        if method == "auth.test":
            return 200, {}, dict(BOT_AUTH)
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {
                "type": "message",
                "ts": ts,
                "text": params.get("text", ""),
                "bot_id": "B0BOT",
            }
            return 200, {}, {"ok": True, "channel": CHANNEL_ID, "ts": ts, "message": message}
        if method == "chat.update":
            return (
                200,
                {},
                {"ok": True, "channel": params.get("channel"), "ts": params.get("ts"), "text": ""},
            )
        if method == "chat.postEphemeral":
            return 200, {}, {"ok": True, "message_ts": self._next_ts()}
        if method == "usergroups.users.list":
            group = str(params.get("usergroup", ""))
            if group not in self.usergroups:
                return 200, {}, {"ok": False, "error": "no_such_subteam"}
            return 200, {}, {"ok": True, "users": list(self.usergroups[group])}
        return 200, {}, {"ok": False, "error": "unknown_method"}


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def _params(self) -> tuple[dict[str, Any], str]:
        url = urllib.parse.urlsplit(self.path)
        params: dict[str, Any] = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if raw and ctype.startswith("application/json"):
            params.update(json.loads(raw))
        elif raw:
            form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
        return params, ctype

    def _send(self, status: int, headers: Mapping[str, str], body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        fake: FakeSlack = self.server.fake  # type: ignore[attr-defined]
        params, ctype = self._params()
        path = urllib.parse.urlsplit(self.path).path
        auth = self.headers.get("Authorization")
        if path.startswith("/respond/"):
            fake._record(Call("response_url", params, auth, ctype, time.monotonic()))
            self._send(200, {}, b"ok", "text/plain")
            return
        if not path.startswith("/api/"):
            self._send(404, {}, b"not found", "text/plain")
            return
        method = path.removeprefix("/api/")
        call = Call(method, params, auth, ctype, time.monotonic())
        fake._record(call)
        status, headers, answer = fake.answer(method, params, auth)
        call.status, call.answer = status, answer
        self._send(status, headers, json.dumps(answer).encode(), "application/json; charset=utf-8")


def wait_until(
    probe: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    context: Callable[[], object] | None = None,
) -> T:
    """Poll `probe` every few milliseconds until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; context: {context()!r}" if context else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(0.005)


# -- signed requests -------------------------------------------------------------------------


def block_actions_payload(
    *,
    action_id: str,
    value: str,
    user_id: str,
    message_ts: str,
    response_url: str,
    channel: str = CHANNEL_ID,
    username: str | None = None,
    block_id: str = "a:block",
) -> dict[str, Any]:
    """A block_actions payload like Slack sends for a button click in a channel message."""
    return {
        "type": "block_actions",
        "user": {"id": user_id, "username": username or user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1111.2222.abcd",
        "team": {"id": TEAM_ID, "domain": "costbot-test"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "costs"},
        "message": {"type": "message", "ts": message_ts, "bot_id": "B0BOT", "text": "costbot"},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "type": "button",
                "value": value,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def signature(secret: str, timestamp: str, body: str) -> str:
    """Slack's v0 request signature: HMAC-SHA256 over `v0:{timestamp}:{body}`."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    return "v0=" + digest.hexdigest()


def signed_request(
    secret: str, payload: Mapping[str, Any], *, timestamp: float | None = None
) -> tuple[bytes, dict[str, str]]:
    """The form body `payload=<json>` and the headers Slack would send with it."""
    body = "payload=" + urllib.parse.quote(json.dumps(payload))
    ts = str(int(time.time() if timestamp is None else timestamp))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret, ts, body),
    }
    return body.encode(), headers


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer and how long it took."""

    status: int
    body: bytes
    seconds: float


def http(
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    """POST (with a body) or GET over real HTTP; any status comes back as a Reply."""
    request = urllib.request.Request(
        url, data=body, headers=dict(headers or {}), method="POST" if body is not None else "GET"
    )
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            data = answer.read()
            return Reply(answer.status, data, time.perf_counter() - start)
    except urllib.error.HTTPError as exc:
        data = exc.read()
        exc.close()
        return Reply(exc.code, data, time.perf_counter() - start)


def iter_buttons(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every button element in a list of blocks."""
    for block in blocks:
        if block.get("type") == "actions":
            yield from (e for e in block["elements"] if e.get("type") == "button")
