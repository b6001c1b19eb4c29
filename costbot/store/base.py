"""Connection plumbing every store part shares: one connection per operation, WAL, busy
timeout, IMMEDIATE write transactions, migrations, and the event writer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from costbot.errors import StoreError
from costbot.store.records import iso, utcnow
from costbot.store.schema import MIGRATIONS


class StoreBase:
    """Opens connections to the SQLite file and applies migrations on construction."""

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
