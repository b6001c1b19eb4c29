"""The Store class: all reads and writes of costbot's SQLite database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from costbot.errors import StoreError, TransitionError, UnknownFindingError
from costbot.model import ACTIVE_STATUSES, TRANSITIONS, Finding, Kind, Status, Unit
from costbot.store.records import (
    CachedPrice,
    Event,
    ScanRecord,
    StoredFinding,
    iso,
    parse_time,
    utcnow,
)
from costbot.store.schema import MIGRATIONS

SCANNER_ACTOR = "costbot:scan"


class Store:
    """All reads and writes of costbot's SQLite database."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # -- plumbing ------------------------------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite_utils.Database]:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            yield sqlite_utils.Database(conn)
        finally:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction, taken IMMEDIATE so concurrent writers queue instead of failing."""
        with self._db() as db:
            try:
                db.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"the store at {self.path} is busy or locked: {exc}") from exc
            try:
                yield db
            except BaseException:
                db.conn.execute("ROLLBACK")
                raise
            db.conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._db() as db:
            db.conn.execute("PRAGMA journal_mode = WAL")
        with self._tx() as db:
            db.conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations"
                " (version INTEGER PRIMARY KEY, applied_at TEXT)"
            )
            done = {row[0] for row in db.conn.execute("SELECT version FROM migrations")}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    db.conn.execute(statement)
                db.conn.execute("INSERT INTO migrations VALUES (?, ?)", (version, iso(utcnow())))

    @staticmethod
    def _event(
        db: sqlite_utils.Database,
        finding_id: str,
        at: datetime,
        actor: str,
        type_: str,
        from_status: str | None,
        to_status: str | None,
        note: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> None:
        db.conn.execute(
            "INSERT INTO events (finding_id, at, actor, type, from_status, to_status, note, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                finding_id,
                iso(at),
                actor,
                type_,
                from_status,
                to_status,
                note,
                json.dumps(dict(data or {}), default=str),
            ),
        )

    # -- idle clocks ---------------------------------------------------------------------------

    def note_unattached(
        self, unit: Unit, kind: Kind, resource_ids: Iterable[str], now: datetime
    ) -> dict[str, datetime]:
        """Remember since when each resource has been seen unattached; forget re-attached ones."""
        current = set(resource_ids)
        prefix = f"{unit}:{kind}:"
        with self._tx() as db:
            known = {
                row["resource_key"]: row["first_seen_unattached"]
                for row in db.conn.execute(
                    "SELECT resource_key, first_seen_unattached FROM sightings"
                    " WHERE provider=? AND account=? AND region=? AND kind=?",
                    (unit.provider, unit.account, unit.region, kind),
                )
            }
            gone = [key for key in known if key.removeprefix(prefix) not in current]
            db.conn.executemany("DELETE FROM sightings WHERE resource_key=?", [(k,) for k in gone])
            fresh = [rid for rid in current if prefix + rid not in known]
            db.conn.executemany(
                "INSERT INTO sightings VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (prefix + rid, unit.provider, unit.account, unit.region, kind, iso(now))
                    for rid in fresh
                ],
            )
        since = {key.removeprefix(prefix): datetime.fromisoformat(v) for key, v in known.items()}
        return {rid: since.get(rid, now) for rid in current}

    # -- scans ---------------------------------------------------------------------------------

    def record_scan(
        self,
        unit: Unit,
        *,
        run_id: str,
        started_at: datetime,
        finished_at: datetime,
        findings: Sequence[Finding],
        resource_counts: Mapping[str, int],
        error: str | None = None,
        unattached_since: Mapping[str, datetime] | None = None,
    ) -> ScanRecord:
        """Write one unit's scan; on success upsert its findings and resolve the vanished ones."""
        since = unattached_since or {}
        with self._tx() as db:
            db.conn.execute(
                "INSERT INTO scans (run_id, provider, account, region, started_at, finished_at,"
                " ok, error, resources, counts, findings) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    unit.provider,
                    unit.account,
                    unit.region,
                    iso(started_at),
                    iso(finished_at),
                    int(error is None),
                    error,
                    sum(resource_counts.values()),
                    json.dumps(dict(resource_counts)),
                    len(findings),
                ),
            )
            if error is not None:
                return ScanRecord()
            return self._merge_findings(db, unit, findings, started_at, since)

    def _merge_findings(
        self,
        db: sqlite_utils.Database,
        unit: Unit,
        findings: Sequence[Finding],
        now: datetime,
        since: Mapping[str, datetime],
    ) -> ScanRecord:
        existing = {
            row["id"]: row
            for row in db.conn.execute(
                "SELECT id, status, snoozed_until FROM findings"
                " WHERE provider=? AND account=? AND region=?",
                (unit.provider, unit.account, unit.region),
            )
        }
        new = seen_again = resolved = 0
        for finding in findings:
            values = {
                "name": finding.name,
                "reason": finding.reason,
                "monthly_cost_usd": finding.monthly_cost_usd,
                "monthly_savings_usd": finding.monthly_savings_usd,
                "price_source": finding.price_source,
                "price_date": finding.price_date,
                "recommendation": finding.recommendation,
                "details": json.dumps(dict(finding.details), default=str),
                "last_seen": iso(now),
                "first_seen_unattached": iso(since.get(finding.resource_id)),
            }
            row = existing.get(finding.id)
            if row is None:
                new += 1
                db.table("findings").insert(
                    {
                        "id": finding.id,
                        "provider": str(unit.provider),
                        "account": unit.account,
                        "region": unit.region,
                        "kind": str(finding.kind),
                        "resource_id": finding.resource_id,
                        "status": str(Status.OPEN),
                        "first_seen": iso(now),
                        "status_changed_at": iso(now),
                        "snoozed_until": None,
                        **values,
                    },
                )
                self._event(
                    db, finding.id, now, SCANNER_ACTOR, "status", None, Status.OPEN, finding.reason
                )
                continue
            seen_again += 1
            status = Status(row["status"])
            reopen_note = ""
            if status is Status.RESOLVED:
                reopen_note = "wasteful again"
            elif status is Status.SNOOZED and (parse_time(row["snoozed_until"]) or now) <= now:
                reopen_note = "snooze ended"
            if reopen_note:
                values |= {
                    "status": str(Status.OPEN),
                    "status_changed_at": iso(now),
                    "snoozed_until": None,
                }
                self._event(
                    db, finding.id, now, SCANNER_ACTOR, "status", status, Status.OPEN, reopen_note
                )
            db.table("findings").update(finding.id, values)
        seen = {finding.id for finding in findings}
        for fid, row in existing.items():
            if fid in seen or Status(row["status"]) not in ACTIVE_STATUSES:
                continue
            resolved += 1
            db.conn.execute(
                "UPDATE findings SET status=?, status_changed_at=? WHERE id=?",
                (str(Status.RESOLVED), iso(now), fid),
            )
            self._event(
                db,
                fid,
                now,
                SCANNER_ACTOR,
                "status",
                row["status"],
                Status.RESOLVED,
                "no longer wasteful in a successful scan",
            )
        return ScanRecord(new=new, seen_again=seen_again, resolved=resolved)

    def latest_scans(self, provider: str | None = None) -> list[dict[str, Any]]:
        """The most recent scan row of every unit."""
        sql = (
            "SELECT * FROM scans WHERE id IN (SELECT MAX(id) FROM scans GROUP BY provider,"
            " account, region)" + (" AND provider=?" if provider else "") + " ORDER BY id"
        )
        with self._db() as db:
            return [dict(r) for r in db.conn.execute(sql, (provider,) if provider else ())]

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
            db.conn.execute(
                "UPDATE findings SET status=?, status_changed_at=?, snoozed_until=? WHERE id=?",
                (str(to), iso(moment), iso(snoozed_until), finding_id),
            )
            self._event(db, finding_id, moment, actor, "status", current, to, note, data)
        return self.get(finding_id)

    def events(self, finding_id: str) -> list[Event]:
        """The audit trail of one finding, oldest first."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM events WHERE finding_id=? ORDER BY id", (finding_id,)
            ).fetchall()
        return [
            Event(
                id=r["id"],
                finding_id=r["finding_id"],
                at=datetime.fromisoformat(r["at"]),
                actor=r["actor"],
                type=r["type"],
                from_status=r["from_status"],
                to_status=r["to_status"],
                note=r["note"],
                data=json.loads(r["data"]),
            )
            for r in rows
        ]

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
