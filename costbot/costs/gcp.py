"""Google Cloud spend: the Cloud Billing export in BigQuery, summed per day, project and
service (cost plus credits), queried with google-cloud-bigquery."""

from __future__ import annotations

from datetime import date
from typing import Any

from costbot.errors import ProviderError
from costbot.model import CostRow

QUERY = """
SELECT DATE(usage_start_time) AS day,
       IFNULL(project.id, '(no project)') AS project,
       service.description AS service,
       currency,
       SUM(cost) + SUM(IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) c), 0)) AS amount
FROM `{table}`
WHERE usage_start_time >= TIMESTAMP(@start) AND usage_start_time < TIMESTAMP(@end)
GROUP BY day, project, service, currency
"""


class GcpCosts:
    """Daily GCP cost rows from the billing export table."""

    provider = "gcp"

    def __init__(self, table: str, client: Any = None, projects: list[str] | None = None) -> None:
        self._table = table
        self._client = client
        self._projects = set(projects or [])

    def fetch(self, start: date, end: date) -> list[CostRow]:
        """Rows for start <= day < end (only the configured projects, when any are listed)."""
        from google.api_core.exceptions import GoogleAPIError
        from google.auth.exceptions import GoogleAuthError
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("start", "STRING", start.isoformat()),
                bigquery.ScalarQueryParameter("end", "STRING", end.isoformat()),
            ]
        )
        try:
            client = self._client or bigquery.Client(project=self._table.rsplit(".", 2)[0])
            job = client.query(QUERY.format(table=self._table), job_config=config)
            result = list(job.result())  # every page, inside the error handling
        except (GoogleAPIError, GoogleAuthError) as exc:
            raise ProviderError(
                f"BigQuery billing export {self._table}: {exc}",
                provider="gcp",
                operation="bigquery:query",
            ) from exc
        rows = []
        for r in result:
            if self._projects and r["project"] not in self._projects:
                continue
            rows.append(
                CostRow(
                    _as_date(r["day"]),
                    "gcp",
                    str(r["project"]),
                    str(r["service"]),
                    float(r["amount"]),
                    str(r["currency"]),
                )
            )
        return rows


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
