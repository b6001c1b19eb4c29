"""The demo's spend history: eight weeks of daily AWS Cost Explorer results, seeded through
moto's documented Cost Explorer seeding endpoint, so `costbot demo` shows a real digest."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

SEED_URL = "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results"
ACCOUNTS = ("123456789012", "210987654321")
SERVICES = {  # service: average daily cost in USD for the first account
    "Amazon Elastic Compute Cloud - Compute": 410.0,
    "EC2 - Other": 96.0,
    "Amazon Relational Database Service": 188.0,
    "Amazon Simple Storage Service": 61.0,
    "Amazon CloudWatch": 22.0,
    "AWS Data Transfer": 35.0,
    "Amazon Elastic Kubernetes Service": 58.0,
}


def cost_results(start: date, end: date, metric: str) -> dict[str, Any]:
    """One GetCostAndUsage answer for [start, end): weekly rhythm, slow growth, one spike."""
    rng = random.Random(7)
    periods = []
    days = (end - start).days
    spike_day = end - timedelta(days=9)
    for n in range(days):
        day = start + timedelta(days=n)
        weekday = 0.82 if day.weekday() >= 5 else 1.0
        growth = 1 + 0.004 * n
        groups = []
        for service, base in SERVICES.items():
            for k, account in enumerate(ACCOUNTS):
                amount = base * (0.45 if k else 1.0) * weekday * growth * rng.uniform(0.93, 1.07)
                if day == spike_day and service == "Amazon Relational Database Service" and k == 0:
                    amount *= 2.6
                groups.append(
                    {
                        "Keys": [service, account],
                        "Metrics": {metric: {"Amount": f"{amount:.4f}", "Unit": "USD"}},
                    }
                )
        periods.append(
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": groups,
                "Estimated": False,
            }
        )
    return {
        "ResultsByTime": periods,
        "DimensionValueAttributes": [],
        "GroupDefinitions": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
        ],
    }


def seed_cost_explorer(start: date, end: date, metric: str) -> None:
    """Queue the demo's answer in the emulator (moto intercepts this request in-process)."""
    import requests

    response = requests.post(
        SEED_URL, json={"results": [cost_results(start, end, metric)]}, timeout=10
    )
    response.raise_for_status()
