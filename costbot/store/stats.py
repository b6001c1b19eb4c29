"""Aggregates of the store for monitoring: findings and savings by provider/kind/status, the
latest scan of every unit, scan failures and cleanup results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from costbot.store.base import StoreBase


class Stats(StoreBase):
    """Read-only aggregates (one connection, a handful of GROUP BY queries)."""

    def stats(self) -> dict[str, list[dict[str, Any]]]:
        """Everything /metrics exposes, as rows."""
        queries = {
            "findings": "SELECT provider, kind, status, COUNT(*) AS n,"
            " SUM(monthly_savings_usd) AS savings FROM findings GROUP BY provider, kind, status",
            "latest_scans": "SELECT provider, account, region, ok, started_at, finished_at,"
            " resources FROM scans WHERE id IN (SELECT MAX(id) FROM scans"
            " GROUP BY provider, account, region)",
            "last_success": "SELECT provider, account, region, MAX(finished_at) AS finished_at"
            " FROM scans WHERE ok=1 GROUP BY provider, account, region",
            "scan_errors": "SELECT provider, region, COUNT(*) AS n FROM scans WHERE ok=0"
            " GROUP BY provider, region",
            "actions": "SELECT action, COALESCE(result, 'in_flight') AS result, COUNT(*) AS n"
            " FROM actions GROUP BY action, result",
        }
        with self._db() as db:
            return {
                name: [dict(row) for row in db.conn.execute(sql)] for name, sql in queries.items()
            }

    def cleaned_times(self) -> dict[str, datetime]:
        """When each cleaned finding was cleaned."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT finding_id, MAX(at) AS at FROM events WHERE to_status='cleaned'"
                " GROUP BY finding_id"
            ).fetchall()
        return {r["finding_id"]: datetime.fromisoformat(r["at"]) for r in rows}
