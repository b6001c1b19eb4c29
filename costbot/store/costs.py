"""The daily cost cache: rows per day, provider, account, service and currency, and which
(day, provider) pairs were fetched when — so closed days are never queried twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from costbot.model import CostRow
from costbot.store.base import StoreBase
from costbot.store.records import iso


class CostCache(StoreBase):
    """Read and replace cached daily cost rows."""

    def fetched_days(self, provider: str, start: date, end: date) -> dict[date, datetime]:
        """Days in [start, end) already fetched for `provider`, with when."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT day, fetched_at FROM cost_days WHERE provider=? AND day>=? AND day<?",
                (provider, start.isoformat(), end.isoformat()),
            ).fetchall()
        return {date.fromisoformat(r["day"]): datetime.fromisoformat(r["fetched_at"]) for r in rows}

    def replace_costs(
        self, provider: str, days: Sequence[date], rows: Iterable[CostRow], now: datetime
    ) -> None:
        """Store the rows of `days` for `provider`, replacing what was cached for those days."""
        marks = [(d.isoformat(), provider) for d in days]
        stamp = iso(now)
        with self._tx() as db:
            db.conn.executemany("DELETE FROM cost_rows WHERE day=? AND provider=?", marks)
            db.conn.executemany(
                "INSERT OR REPLACE INTO cost_rows VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.day.isoformat(),
                        r.provider,
                        r.account,
                        r.service,
                        r.currency,
                        r.amount,
                        stamp,
                    )
                    for r in rows
                ],
            )
            db.conn.executemany(
                "INSERT OR REPLACE INTO cost_days VALUES (?, ?, ?)",
                [(day, prov, stamp) for day, prov in marks],
            )

    def cost_columns(self, start: date, end: date) -> dict[str, list[Any]]:
        """The cached rows with start <= day < end as columns (fast: no object per row)."""
        names = ("day", "provider", "account", "service", "amount", "currency")
        with self._db() as db:
            db.conn.row_factory = None
            rows = db.conn.execute(
                f"SELECT {', '.join(names)} FROM cost_rows WHERE day>=? AND day<? ORDER BY day",
                (start.isoformat(), end.isoformat()),
            ).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        return {name: list(values) for name, values in zip(names, columns, strict=True)}
