"""Azure spend through the REAL azure-mgmt-costmanagement client against a local https fake.

The fake is a ThreadingHTTPServer on 127.0.0.1 wrapped in TLS with a trustme certificate; the
client trusts it through `connection_verify=<ca.pem>` and authenticates with a tiny offline
credential. It answers `POST {scope}/providers/Microsoft.CostManagement/query` (any api-version)
per subscription with scripted pages (columns + rows + an absolute nextLink) or an error.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme
from azure.core.credentials import AccessToken

from costbot.costs import collect_costs
from costbot.costs.aws import AwsCosts
from costbot.costs.azure import AzureCosts
from costbot.errors import ProviderError
from costbot.model import CostRow
from costbot.store import Store

SUB_A = "11111111-1111-1111-1111-111111111111"
SUB_B = "22222222-2222-2222-2222-222222222222"
COLUMNS = [
    {"name": "Cost", "type": "Number"},
    {"name": "UsageDate", "type": "Number"},
    {"name": "ServiceName", "type": "String"},
    {"name": "Currency", "type": "String"},
]
START, END = date(2026, 11, 9), date(2026, 11, 16)


class FakeCredential:
    """An offline token credential: never touches login.microsoftonline.com."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


class FakeCostManagement:
    """Scripted Cost Management query answers per subscription, over https."""

    def __init__(self, ca: trustme.CA) -> None:
        self.pages: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, tuple[int, dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeCostManagement:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def answer(self, request: Request) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(request)
        parts = request.path.lower().strip("/").split("/")
        wanted = ["subscriptions", "*", "providers", "microsoft.costmanagement", "query"]
        if len(parts) != len(wanted) or any(
            w not in ("*", p) for w, p in zip(wanted, parts, strict=True)
        ):
            return 404, {"error": {"code": "NotFound", "message": request.path}}
        if request.method != "POST" or "api-version" not in request.query:
            return 400, {"error": {"code": "BadRequest", "message": "POST with api-version"}}
        subscription = parts[1]
        if subscription in self.errors:
            return self.errors[subscription]
        pages = self.pages.get(subscription, [{"rows": []}])
        index = int(request.query.get("$skiptoken", "0"))
        page = pages[index]
        next_link = None
        if index + 1 < len(pages):
            query = urllib.parse.urlencode(
                {"api-version": request.query["api-version"], "$skiptoken": str(index + 1)}
            )
            next_link = f"{self.url}{request.path}?{query}"
        return 200, {
            "id": f"/subscriptions/{subscription}/providers/Microsoft.CostManagement/query/q",
            "name": "q",
            "type": "Microsoft.CostManagement/query",
            "properties": {
                "nextLink": next_link,
                "columns": page.get("columns", COLUMNS),
                "rows": page["rows"],
            },
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        request = Request(
            self.command,
            url.path,
            {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()},
            json.loads(raw) if raw else None,
            self.headers.get("Authorization"),
        )
        status, answer = self.server.fake.answer(request)  # type: ignore[attr-defined]
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_path(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def fake(ca: trustme.CA) -> Iterator[FakeCostManagement]:
    server = FakeCostManagement(ca).start()
    try:
        yield server
    finally:
        server.stop()


def azure_costs(fake: FakeCostManagement, ca_path: str, subscriptions: list[str]) -> AzureCosts:
    return AzureCosts(
        subscriptions,
        fake.url,
        credential=FakeCredential(),
        connection_verify=ca_path,
        retry_total=0,
    )


def test_rows_are_parsed_per_day_and_service(fake: FakeCostManagement, ca_path: str) -> None:
    fake.pages[SUB_A] = [
        {
            "rows": [
                [12.5, 20261109, "Virtual Machines", "USD"],
                [3.25, 20261109, "Storage", "USD"],
                [14.0, 20261115, "Virtual Machines", "USD"],
                # outside [START, END): dropped
                [99.0, 20261108, "Virtual Machines", "USD"],
                [99.0, 20261116, "Virtual Machines", "USD"],
            ]
        }
    ]
    rows = azure_costs(fake, ca_path, [SUB_A]).fetch(START, END)
    assert rows == [
        CostRow(date(2026, 11, 9), "azure", SUB_A, "Virtual Machines", 12.5, "USD"),
        CostRow(date(2026, 11, 9), "azure", SUB_A, "Storage", 3.25, "USD"),
        CostRow(date(2026, 11, 15), "azure", SUB_A, "Virtual Machines", 14.0, "USD"),
    ]
    (request,) = fake.requests
    assert request.authorization == "Bearer fake-token"
    assert request.path.lower() == (
        f"/subscriptions/{SUB_A}/providers/microsoft.costmanagement/query"
    )
    body = request.body
    assert body["type"] == "ActualCost"
    assert body["timeframe"] == "Custom"
    assert body["timePeriod"]["from"].startswith("2026-11-09T00:00:00")
    assert body["timePeriod"]["to"].startswith("2026-11-16T00:00:00")
    assert body["dataset"]["granularity"] == "Daily"
    assert body["dataset"]["grouping"] == [{"type": "Dimension", "name": "ServiceName"}]


def test_usage_date_as_iso_string_and_other_currency(
    fake: FakeCostManagement, ca_path: str
) -> None:
    fake.pages[SUB_A] = [
        {
            "columns": [
                {"name": "PreTaxCost", "type": "Number"},
                {"name": "UsageDate", "type": "Datetime"},
                {"name": "ServiceName", "type": "String"},
                {"name": "Currency", "type": "String"},
            ],
            "rows": [[7.5, "2026-11-10T00:00:00", "Bandwidth", "EUR"]],
        }
    ]
    rows = azure_costs(fake, ca_path, [SUB_A]).fetch(START, END)
    assert rows == [CostRow(date(2026, 11, 10), "azure", SUB_A, "Bandwidth", 7.5, "EUR")]


def test_next_link_is_followed_by_hand_with_the_same_query(
    fake: FakeCostManagement, ca_path: str
) -> None:
    fake.pages[SUB_A] = [
        {"rows": [[1.0, 20261109, "Virtual Machines", "USD"]]},
        {"rows": [[2.0, 20261110, "Virtual Machines", "USD"]]},
        {"rows": [[4.0, 20261111, "Storage", "USD"]]},
    ]
    rows = azure_costs(fake, ca_path, [SUB_A]).fetch(START, END)
    assert [(r.day.day, r.service, r.amount) for r in rows] == [
        (9, "Virtual Machines", 1.0),
        (10, "Virtual Machines", 2.0),
        (11, "Storage", 4.0),
    ]
    assert [r.query.get("$skiptoken") for r in fake.requests] == [None, "1", "2"]
    first = fake.requests[0]
    for later in fake.requests[1:]:
        assert later.method == "POST"
        assert later.authorization == "Bearer fake-token"
        assert later.query["api-version"] == first.query["api-version"]
        assert later.body == first.body  # the same QueryDefinition, REST-shaped


def test_403_on_one_subscription_names_it(fake: FakeCostManagement, ca_path: str) -> None:
    fake.pages[SUB_A] = [{"rows": [[1.0, 20261109, "Virtual Machines", "USD"]]}]
    fake.errors[SUB_B] = (
        403,
        {
            "error": {
                "code": "AuthorizationFailed",
                "message": "The client does not have authorization to perform action "
                "'Microsoft.CostManagement/query/action'",
            }
        },
    )
    with pytest.raises(ProviderError) as caught:
        azure_costs(fake, ca_path, [SUB_A, SUB_B]).fetch(START, END)
    error = caught.value
    assert error.provider == "azure"
    assert error.account == SUB_B
    assert SUB_B in str(error)
    assert SUB_A not in str(error)
    assert "AuthorizationFailed" in str(error) or "authorization" in str(error)
    assert error.operation == "costmanagement:query"


def test_403_via_collect_costs_marks_azure_missing_and_keeps_aws(
    aws: None, fake: FakeCostManagement, ca_path: str, store: Store
) -> None:
    fake.pages[SUB_A] = [{"rows": [[1.0, 20261109, "Virtual Machines", "USD"]]}]
    fake.errors[SUB_B] = (403, {"error": {"code": "AuthorizationFailed", "message": "denied"}})
    group = {
        "Keys": ["Amazon Simple Storage Service", "123456789012"],
        "Metrics": {"UnblendedCost": {"Amount": "5.5", "Unit": "USD"}},
    }
    result = {
        "ResultsByTime": [
            {
                "TimePeriod": {"Start": "2026-11-09", "End": "2026-11-10"},
                "Total": {},
                "Groups": [group],
                "Estimated": False,
            }
        ],
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
        ],
        "DimensionValueAttributes": [],
    }
    requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
        json={"results": [result]},
        timeout=10,
    ).raise_for_status()
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    costs = collect_costs(
        store,
        [azure_costs(fake, ca_path, [SUB_A, SUB_B]), AwsCosts("UnblendedCost")],
        START,
        END,
        now=now,
        settle_days=3,
    )
    assert set(costs.missing) == {"azure"}
    assert SUB_B in costs.missing["azure"]
    assert costs.rows == [
        CostRow(
            date(2026, 11, 9), "aws", "123456789012", "Amazon Simple Storage Service", 5.5, "USD"
        )
    ]
    assert set(costs.fetched_at) == {"aws"}
    # nothing was cached for azure, so the next run asks again
    assert store.fetched_days("azure", START, END) == {}
