"""AWS spend: Cost Explorer GetCostAndUsage, daily, grouped by SERVICE and LINKED_ACCOUNT,
following NextPageToken."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import boto3

from costbot.model import CostRow
from costbot.providers.aws_sessions import aws_errors, client_config


class AwsCosts:
    """Daily AWS cost rows from Cost Explorer."""

    provider = "aws"

    def __init__(
        self, metric: str, session_factory: Callable[..., boto3.Session] = boto3.Session
    ) -> None:
        self._metric = metric
        self._session_factory = session_factory

    def fetch(self, start: date, end: date) -> list[CostRow]:
        """Rows for start <= day < end."""
        with aws_errors(None, "ce:GetCostAndUsage"):
            ce: Any = self._session_factory().client(
                "ce", region_name="us-east-1", config=client_config()
            )
            rows: list[CostRow] = []
            request: dict[str, Any] = {
                "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
                "Granularity": "DAILY",
                "Metrics": [self._metric],
                "GroupBy": [
                    {"Type": "DIMENSION", "Key": "SERVICE"},
                    {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                ],
            }
            while True:
                page = ce.get_cost_and_usage(**request)
                for period in page.get("ResultsByTime", []):
                    day = date.fromisoformat(period["TimePeriod"]["Start"])
                    for group in period.get("Groups", []):
                        service, account = [*group["Keys"], "", ""][:2]
                        value = group["Metrics"][self._metric]
                        rows.append(
                            CostRow(
                                day,
                                self.provider,
                                account,
                                service,
                                float(value["Amount"]),
                                value.get("Unit", "USD"),
                            )
                        )
                token = page.get("NextPageToken")
                if not token:
                    return rows
                request["NextPageToken"] = token
