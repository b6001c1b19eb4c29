"""The Store class: reads of findings and events, status transitions, the price cache; scan
writes and the action audit come from the mixins in scans.py and audit.py."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from costbot.errors import TransitionError, UnknownFindingError
from costbot.model import TRANSITIONS, Kind, Status
from costbot.store.audit import ActionLog
from costbot.store.costs import CostCache
from costbot.store.lease import Leases
from costbot.store.records import CachedPrice, Event, StoredFinding, event_from_row, iso, utcnow
from costbot.store.scans import ScanWrites
from costbot.store.slack import SlackRecords
from costbot.store.stats import Stats

_APPROVAL_VOID = frozenset({Status.OPEN, Status.NOTIFIED, Status.REJECTED, Status.SNOOZED})
"""Moves that void a recorded approval (an approval is never carried over to a later one)."""


class Store(ScanWrites, ActionLog, SlackRecords, Leases, Stats, CostCache):
    """All reads and writes of costbot's SQLite database."""

    # -- findings ------------------------------------------------------------------------------

    def get(self, finding_id: str) -> StoredFinding:
        """One finding by id; UnknownFindingError if there is none."""
        with self._db() as db:
            row = db.conn.execute("SELECT * FROM findings WHERE id=?", (finding_id,)).fetchone()
        if row is None:
            raise UnknownFindingError(f"no finding with id '{finding_id}' in {self.path}")
        return StoredFinding.from_row(row)

    def findings(
        self,
        *,
        status: Iterable[Status] | None = None,
        kind: Kind | None = None,
        provider: str | None = None,
    ) -> list[StoredFinding]:
        """Findings filtered by status, kind and provider, largest savings first."""
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            wanted = [str(s) for s in status]
            clauses.append(f"status IN ({','.join('?' * len(wanted))})")
            params += wanted
        if kind is not None:
            clauses.append("kind=?")
            params.append(str(kind))
        if provider is not None:
            clauses.append("provider=?")
            params.append(provider)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM findings{where} ORDER BY monthly_savings_usd DESC, id"
        with self._db() as db:
            return [StoredFinding.from_row(r) for r in db.conn.execute(sql, params)]

    def transition(
        self,
        finding_id: str,
        to: Status,
        *,
        actor: str,
        note: str = "",
        now: datetime | None = None,
        allowed_from: Iterable[Status] | None = None,
        snoozed_until: datetime | None = None,
        data: Mapping[str, Any] | None = None,
        refuse_in_flight: bool = False,
    ) -> StoredFinding:
        """Move a finding to a new status atomically, with an event, or raise TransitionError."""
        moment = now or utcnow()
        with self._tx() as db:
            row = db.conn.execute(
                "SELECT status FROM findings WHERE id=?", (finding_id,)
            ).fetchone()
            if row is None:
                raise UnknownFindingError(f"no finding with id '{finding_id}' in {self.path}")
            current = Status(row["status"])
            permitted = TRANSITIONS[current]
            if allowed_from is not None and current not in set(allowed_from):
                permitted = frozenset()
            if to not in permitted:
                raise TransitionError(f"finding '{finding_id}' is {current}; it cannot become {to}")
            if (
                refuse_in_flight
                and db.conn.execute(
                    "SELECT 1 FROM actions WHERE finding_id=? AND result IS NULL", (finding_id,)
                ).fetchone()
            ):
                raise TransitionError(
                    f"finding '{finding_id}' has a cleanup action in progress; try again after it"
                )
            db.conn.execute(
                "UPDATE findings SET status=?, status_changed_at=?, snoozed_until=? WHERE id=?",
                (str(to), iso(moment), iso(snoozed_until), finding_id),
            )
            if to is Status.APPROVED:
                db.conn.execute(
                    "UPDATE findings SET approved_by=?, approved_at=?, approval_source=?"
                    " WHERE id=?",
                    (actor, iso(moment), json.dumps(dict(data or {}), default=str), finding_id),
                )
            elif to in _APPROVAL_VOID:
                db.conn.execute(
                    "UPDATE findings SET approved_by=NULL, approved_at=NULL, approval_source='{}'"
                    " WHERE id=?",
                    (finding_id,),
                )
            self._event(db, finding_id, moment, actor, "status", current, to, note, data)
        return self.get(finding_id)

    def events(self, finding_id: str) -> list[Event]:
        """The audit trail of one finding, oldest first."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM events WHERE finding_id=? ORDER BY id", (finding_id,)
            ).fetchall()
        return [event_from_row(r) for r in rows]

    # -- price cache ---------------------------------------------------------------------------

    def cached_price(self, key: str) -> CachedPrice | None:
        """A remembered live price, or None."""
        with self._db() as db:
            row = db.conn.execute("SELECT * FROM prices WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        return CachedPrice(
            row["usd"], row["unit"], row["source"], datetime.fromisoformat(row["fetched_at"])
        )

    def save_price(self, key: str, price: CachedPrice) -> None:
        """Remember a live price."""
        with self._tx() as db:
            db.table("prices").upsert(
                {
                    "key": key,
                    "usd": price.usd,
                    "unit": price.unit,
                    "source": price.source,
                    "fetched_at": iso(price.fetched_at),
                },
                pk="key",
            )
