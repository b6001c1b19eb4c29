"""Azure spend: Cost Management `query.usage` per subscription scope, daily, grouped by
ServiceName; the SDK returns next_link but does not follow it, so it is followed by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from costbot.errors import ProviderError
from costbot.model import CostRow


class AzureCosts:
    """Daily Azure cost rows from Cost Management, one query per subscription."""

    provider = "azure"

    def __init__(
        self, subscriptions: list[str], endpoint: str, credential: Any = None, **client_kwargs: Any
    ) -> None:
        self._subscriptions = subscriptions
        self._endpoint = endpoint
        self._credential = credential
        self._client_kwargs = client_kwargs

    def _client(self) -> Any:
        from azure.mgmt.costmanagement import CostManagementClient

        credential = self._credential
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return CostManagementClient(credential, base_url=self._endpoint, **self._client_kwargs)

    def fetch(self, start: date, end: date) -> list[CostRow]:
        """Rows for start <= day < end, from every subscription (any failure names it)."""
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest
        from azure.mgmt.costmanagement.models import (
            QueryAggregation,
            QueryDataset,
            QueryDefinition,
            QueryGrouping,
            QueryTimePeriod,
        )

        client = self._client()
        query = QueryDefinition(
            type="ActualCost",
            timeframe="Custom",
            time_period=QueryTimePeriod(
                from_property=datetime.combine(start, time(), UTC),
                to=datetime.combine(end, time(), UTC),
            ),
            dataset=QueryDataset(
                granularity="Daily",
                aggregation={"totalCost": QueryAggregation(name="Cost", function="Sum")},
                grouping=[QueryGrouping(type="Dimension", name="ServiceName")],
            ),
        )
        rows: list[CostRow] = []
        for subscription in self._subscriptions:
            try:
                result = client.query.usage(f"/subscriptions/{subscription}", query)
                columns = [c.name for c in result.columns or []]
                rows += _rows(subscription, columns, result.rows or [], start, end)
                link = result.next_link
                while link:
                    page = client.send_request(HttpRequest("POST", link, json=query.as_dict()))
                    page.raise_for_status()
                    properties = page.json().get("properties", {})
                    columns = [c["name"] for c in properties.get("columns", [])] or columns
                    rows += _rows(subscription, columns, properties.get("rows", []), start, end)
                    link = properties.get("nextLink")
            except AzureError as exc:
                raise ProviderError(
                    f"Cost Management query for subscription {subscription}: {exc}",
                    provider="azure",
                    account=subscription,
                    operation="costmanagement:query",
                ) from exc
        return rows


def _rows(
    subscription: str, columns: list[str], rows: list[list[Any]], start: date, end: date
) -> list[CostRow]:
    index = {name.lower(): n for n, name in enumerate(columns)}
    cost = index.get("cost", index.get("pretaxcost", index.get("costusd")))
    if cost is None or "usagedate" not in index:
        raise ProviderError(
            f"Cost Management answered without cost/date columns: {columns}",
            provider="azure",
            account=subscription,
        )
    out = []
    for row in rows:
        day = _day(row[index["usagedate"]])
        if not start <= day < end:
            continue
        service = str(row[index["servicename"]]) if "servicename" in index else "unknown"
        currency = str(row[index["currency"]]) if "currency" in index else "USD"
        out.append(CostRow(day, "azure", subscription, service, float(row[cost]), currency))
    return out


def _day(value: Any) -> date:
    """UsageDate comes as 20261102 (a number) or an ISO string."""
    text = str(int(value)) if isinstance(value, int | float) else str(value)
    return (
        date.fromisoformat(text[:10]) if "-" in text else datetime.strptime(text, "%Y%m%d").date()
    )
