"""Leases: a named row with a holder and an expiry, so only one process (or replica) runs
cleanups at a time, and a crashed holder's lease simply runs out."""

from __future__ import annotations

from datetime import datetime, timedelta

from costbot.store.base import StoreBase
from costbot.store.records import iso


class Leases(StoreBase):
    """Acquire, renew and release named leases atomically."""

    def acquire_lease(self, name: str, holder: str, ttl: timedelta, now: datetime) -> str | None:
        """Take or renew the lease; None on success, else who holds it and until when."""
        with self._tx() as db:
            row = db.conn.execute("SELECT holder, expires_at FROM leases WHERE name=?", (name,))
            current = row.fetchone()
            if (
                current is not None
                and current["holder"] != holder
                and datetime.fromisoformat(current["expires_at"]) > now
            ):
                return f"{current['holder']} until {current['expires_at']}"
            db.conn.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT(name) DO UPDATE SET holder=excluded.holder,"
                " expires_at=excluded.expires_at",
                (name, holder, iso(now + ttl)),
            )
        return None

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up if we still hold it."""
        with self._tx() as db:
            db.conn.execute("DELETE FROM leases WHERE name=? AND holder=?", (name, holder))
