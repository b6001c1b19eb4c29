"""GCP spend through the REAL google-cloud-bigquery client against a local HTTP fake of the
BigQuery jobs API.

`client.query(sql, job_config).result()` and iterating the rows makes these REST calls (found by
logging them in the fake, google-cloud-bigquery 3.47):

1. POST /bigquery/v2/projects/{p}/jobs            jobs.insert (the query and its parameters)
2. GET  /bigquery/v2/projects/{p}/queries/{job}?maxResults=0&location=..   wait for completion
3. GET  /bigquery/v2/projects/{p}/queries/{job}?fields=..                   rows, page 1
4. GET  /bigquery/v2/projects/{p}/queries/{job}?pageToken=..&fields=..      rows, later pages
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from costbot.costs import build_cost_sources, collect_costs
from costbot.costs.gcp import GcpCosts
from costbot.errors import ProviderError
from costbot.model import CostRow
from costbot.store import Store
from tests.conftest import make_config

SCHEMA = {
    "fields": [
        {"name": "day", "type": "DATE", "mode": "NULLABLE"},
        {"name": "project", "type": "STRING", "mode": "NULLABLE"},
        {"name": "service", "type": "STRING", "mode": "NULLABLE"},
        {"name": "currency", "type": "STRING", "mode": "NULLABLE"},
        {"name": "amount", "type": "FLOAT", "mode": "NULLABLE"},
    ]
}
START, END = date(2026, 11, 9), date(2026, 11, 16)
TABLE = "billing-proj.billing_ds.gcp_billing_export_v1_0123"


@dataclass
class FakeBigQuery:
    """Answers one query job with scripted pages of rows; records every request."""

    pages: list[list[tuple[str, str, str, str, float]]] = field(default_factory=lambda: [[]])
    insert_error: tuple[int, dict[str, Any]] | None = None
    page_errors: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def answer(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path, query, body))
        parts = path.strip("/").split("/")  # bigquery v2 projects {p} jobs|queries [{job}]
        if parts[:3] != ["bigquery", "v2", "projects"] or len(parts) < 5:
            return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}
        project, collection = parts[3], parts[4]
        if method == "POST" and collection == "jobs" and len(parts) == 5:
            if self.insert_error is not None:
                return self.insert_error
            reference = {**body["jobReference"], "location": "US"}
            job = {
                "kind": "bigquery#job",
                "id": f"{project}:US.{reference['jobId']}",
                "jobReference": reference,
                "configuration": body["configuration"],
                "status": {"state": "DONE"},
                "statistics": {"creationTime": "1763600000000", "query": {}},
            }
            self.jobs[reference["jobId"]] = job
            return 200, job
        if len(parts) != 6 or parts[5] not in self.jobs:
            return 404, {"error": {"code": 404, "message": f"Not found: Job {path}"}}
        job = self.jobs[parts[5]]
        if method == "GET" and collection == "jobs":
            return 200, job
        if method == "GET" and collection == "queries":
            total = sum(len(p) for p in self.pages)
            answer: dict[str, Any] = {
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": job["jobReference"],
                "jobComplete": True,
                "schema": SCHEMA,
                "totalRows": str(total),
            }
            if query.get("maxResults") == "0":
                return 200, answer
            index = int(query.get("pageToken", "page0").removeprefix("page"))
            if index in self.page_errors:
                return self.page_errors[index]
            answer["rows"] = [
                {"f": [{"v": v if isinstance(v, str) else repr(v)} for v in row]}
                for row in self.pages[index]
            ]
            if index + 1 < len(self.pages):
                answer["pageToken"] = f"page{index + 1}"
            return 200, answer
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake: FakeBigQuery = self.server.fake  # type: ignore[attr-defined]
        status, answer = fake.answer(
            self.command,
            url.path,
            {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()},
            json.loads(raw) if raw else None,
        )
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    state = FakeBigQuery()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.fake = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def client_for(fake: FakeBigQuery) -> bigquery.Client:
    return bigquery.Client(
        project="billing-proj",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": fake.url},  # type: ignore[attr-defined]
    )


def test_rows_per_day_project_service_currency(fake: FakeBigQuery) -> None:
    fake.pages = [
        [
            ("2026-11-09", "proj-a", "Compute Engine", "USD", 12.5),
            ("2026-11-09", "proj-b", "BigQuery", "EUR", 3.25),
            ("2026-11-10", "(no project)", "Support", "USD", 100.0),
        ]
    ]
    rows = GcpCosts(TABLE, client=client_for(fake)).fetch(START, END)
    assert rows == [
        CostRow(date(2026, 11, 9), "gcp", "proj-a", "Compute Engine", 12.5, "USD"),
        CostRow(date(2026, 11, 9), "gcp", "proj-b", "BigQuery", 3.25, "EUR"),
        CostRow(date(2026, 11, 10), "gcp", "(no project)", "Support", 100.0, "USD"),
    ]
    inserts = [r for r in fake.requests if r[0] == "POST"]
    assert len(inserts) == 1
    _, path, _, body = inserts[0]
    assert path == "/bigquery/v2/projects/billing-proj/jobs"
    job = body["configuration"]["query"]
    assert f"FROM `{TABLE}`" in job["query"]
    assert job["useLegacySql"] is False
    params = {p["name"]: p["parameterValue"]["value"] for p in job["queryParameters"]}
    assert params == {"start": "2026-11-09", "end": "2026-11-16"}


def test_pages_are_all_read(fake: FakeBigQuery) -> None:
    fake.pages = [
        [("2026-11-09", "proj-a", "Compute Engine", "USD", 1.0)],
        [("2026-11-10", "proj-a", "Compute Engine", "USD", 2.0)],
        [("2026-11-11", "proj-a", "Cloud Storage", "USD", 4.0)],
    ]
    rows = GcpCosts(TABLE, client=client_for(fake)).fetch(START, END)
    assert [(r.day.day, r.service, r.amount) for r in rows] == [
        (9, "Compute Engine", 1.0),
        (10, "Compute Engine", 2.0),
        (11, "Cloud Storage", 4.0),
    ]
    tokens = [r[2].get("pageToken") for r in fake.requests if "/queries/" in r[1]]
    assert "page1" in tokens and "page2" in tokens


def test_projects_filter(fake: FakeBigQuery) -> None:
    fake.pages = [
        [
            ("2026-11-09", "proj-a", "Compute Engine", "USD", 1.0),
            ("2026-11-09", "proj-b", "Compute Engine", "USD", 2.0),
            ("2026-11-09", "proj-c", "Compute Engine", "USD", 4.0),
            ("2026-11-09", "(no project)", "Support", "USD", 8.0),
        ]
    ]
    source = GcpCosts(TABLE, client=client_for(fake), projects=["proj-a", "proj-c"])
    rows = source.fetch(START, END)
    assert [(r.account, r.amount) for r in rows] == [("proj-a", 1.0), ("proj-c", 4.0)]


def test_query_refused_is_a_provider_error(fake: FakeBigQuery, store: Store) -> None:
    fake.insert_error = (
        403,
        {
            "error": {
                "code": 403,
                "message": "Access Denied: Table billing-proj:billing_ds.gcp_billing_export",
                "errors": [{"reason": "accessDenied", "message": "Access Denied"}],
            }
        },
    )
    source = GcpCosts(TABLE, client=client_for(fake))
    with pytest.raises(ProviderError) as caught:
        source.fetch(START, END)
    assert caught.value.provider == "gcp"
    assert TABLE in str(caught.value)
    costs = collect_costs(
        store, [source], START, END, now=datetime(2026, 11, 20, tzinfo=UTC), settle_days=3
    )
    assert costs.rows == []
    assert "Access Denied" in costs.missing["gcp"]


def test_a_failing_later_page_is_a_provider_error(fake: FakeBigQuery) -> None:
    from google.api_core.exceptions import Forbidden

    fake.pages = [
        [("2026-11-09", "proj-a", "Compute Engine", "USD", 1.0)],
        [("2026-11-10", "proj-a", "Compute Engine", "USD", 2.0)],
    ]
    fake.page_errors[1] = (
        403,
        {"error": {"code": 403, "message": "Access Denied: page 2", "errors": []}},
    )
    source = GcpCosts(TABLE, client=client_for(fake))
    try:
        source.fetch(START, END)
    except ProviderError:
        return
    except Forbidden as exc:
        raise AssertionError(f"escaped as {type(exc).__name__}, not ProviderError") from exc
    raise AssertionError("no error at all")


def test_gcp_without_credentials_is_missing_not_a_crash(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from google.auth.exceptions import DefaultCredentialsError

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    config = make_config(
        f"""
        providers:
          gcp:
            billing_export_table: {TABLE}
        """
    )
    sources, missing = build_cost_sources(config)
    assert missing == {}
    try:
        costs = collect_costs(
            store, sources, START, END, now=datetime(2026, 11, 20, tzinfo=UTC), settle_days=3
        )
    except DefaultCredentialsError as exc:
        raise AssertionError(f"escaped as {type(exc).__name__}") from exc
    assert "gcp" in costs.missing


def test_gcp_without_billing_table_is_missing_with_a_reason() -> None:
    config = make_config(
        """
        providers:
          gcp:
            projects: [proj-aaaa]
        """
    )
    sources, missing = build_cost_sources(config)
    assert sources == []
    assert missing == {"gcp": "no billing export configured (providers.gcp.billing_export_table)"}
