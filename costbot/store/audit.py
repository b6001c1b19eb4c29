"""The write-ahead audit of cleanup actions: dry-run verdicts, an intent row before every
cloud call and its result after, so a crash in between is found and re-checked, never repeated."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from costbot.errors import TransitionError, UnknownFindingError
from costbot.model import TRANSITIONS, Status
from costbot.store.base import StoreBase
from costbot.store.records import Event, event_from_row, iso, parse_time


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One attempted action: its intent and, once known, its result."""

    id: int
    finding_id: str
    action: str
    run_id: str
    intent_at: datetime
    params: Mapping[str, Any]
    result_at: datetime | None
    result: str | None
    note: str
    data: Mapping[str, Any]


def _action(row: Mapping[str, Any]) -> ActionRecord:
    return ActionRecord(
        id=row["id"],
        finding_id=row["finding_id"],
        action=row["action"],
        run_id=row["run_id"],
        intent_at=datetime.fromisoformat(row["intent_at"]),
        params=json.loads(row["params"]),
        result_at=parse_time(row["result_at"]),
        result=row["result"],
        note=row["note"] or "",
        data=json.loads(row["data"]),
    )


class ActionLog(StoreBase):
    """Dry-run verdicts and the intent/result pairs of every action."""

    def record_dry_run(
        self, finding_id: str, *, ok: bool, verdict: str, actor: str, now: datetime
    ) -> None:
        """Store the latest dry-run verdict on the finding and as an event."""
        with self._tx() as db:
            updated = db.conn.execute(
                "UPDATE findings SET dry_run_ok=?, dry_run_verdict=?, dry_run_at=? WHERE id=?",
                (int(ok), verdict, iso(now), finding_id),
            ).rowcount
            if not updated:
                raise UnknownFindingError(f"no finding with id '{finding_id}'")
            self._event(db, finding_id, now, actor, "dry_run", None, None, verdict, {"ok": ok})

    def begin_action(
        self,
        finding_id: str,
        *,
        action: str,
        run_id: str,
        params: Mapping[str, Any],
        actor: str,
        now: datetime,
    ) -> int:
        """Write the intent before the cloud call; refuses if the finding has an open intent."""
        with self._tx() as db:
            row = db.conn.execute(
                "SELECT status FROM findings WHERE id=?", (finding_id,)
            ).fetchone()
            if row is None or row["status"] != Status.APPROVED:
                raise TransitionError(f"finding '{finding_id}' is not approved; no action")
            pending = db.conn.execute(
                "SELECT id FROM actions WHERE finding_id=? AND result IS NULL", (finding_id,)
            ).fetchone()
            if pending is not None:
                raise TransitionError(
                    f"finding '{finding_id}' already has action #{pending['id']} in flight"
                )
            cursor = db.conn.execute(
                "INSERT INTO actions (finding_id, action, run_id, intent_at, params)"
                " VALUES (?, ?, ?, ?, ?)",
                (finding_id, action, run_id, iso(now), json.dumps(dict(params), default=str)),
            )
            action_id = int(cursor.lastrowid or 0)
            self._event(
                db,
                finding_id,
                now,
                actor,
                "intent",
                None,
                None,
                action,
                {"action_id": action_id, **params},
            )
        return action_id

    def finish_action(
        self,
        action_id: int,
        *,
        result: str,
        note: str,
        data: Mapping[str, Any],
        to: Status,
        actor: str,
        now: datetime,
    ) -> None:
        """Write an action's result and move its finding to `to` (if still allowed), atomically."""
        with self._tx() as db:
            row = db.conn.execute(
                "SELECT a.finding_id, a.result, f.status FROM actions a"
                " JOIN findings f ON f.id = a.finding_id WHERE a.id=?",
                (action_id,),
            ).fetchone()
            if row is None or row["result"] is not None:
                raise TransitionError(f"action #{action_id} is unknown or already finished")
            current = Status(row["status"])
            if to is not current and to not in TRANSITIONS[current]:
                # the result is recorded whatever happened to the finding meanwhile
                note = f"{note} (finding stays {current}; it could not become {to})"
                to = current
            db.conn.execute(
                "UPDATE actions SET result_at=?, result=?, note=?, data=? WHERE id=?",
                (iso(now), result, note, json.dumps(dict(data), default=str), action_id),
            )
            db.conn.execute(
                "UPDATE findings SET status=?, status_changed_at=?, outcome=? WHERE id=?",
                (str(to), iso(now), note, row["finding_id"]),
            )
            self._event(
                db,
                row["finding_id"],
                now,
                actor,
                "result",
                current,
                to,
                note,
                {"action_id": action_id, "result": result, **data},
            )

    def open_actions(self) -> list[ActionRecord]:
        """Intents with no result: left by a crash between the intent and its result."""
        with self._db() as db:
            rows = db.conn.execute("SELECT * FROM actions WHERE result IS NULL ORDER BY id")
            return [_action(r) for r in rows]

    def actions(self, finding_id: str) -> list[ActionRecord]:
        """Every action attempted on one finding, oldest first."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM actions WHERE finding_id=? ORDER BY id", (finding_id,)
            )
            return [_action(r) for r in rows]

    def add_note(
        self, finding_id: str, *, actor: str, note: str, data: Mapping[str, Any], now: datetime
    ) -> None:
        """Append a free-form event (e.g. a restore) to a finding's audit trail."""
        with self._tx() as db:
            self._event(db, finding_id, now, actor, "note", None, None, note, data)

    def last_moves(self, finding_ids: Sequence[str]) -> dict[str, Event]:
        """For each finding, the latest event that changed its status (one query)."""
        if not finding_ids:
            return {}
        marks = ",".join("?" * len(finding_ids))
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM events WHERE id IN (SELECT MAX(id) FROM events WHERE to_status"
                f" IS NOT NULL AND finding_id IN ({marks}) GROUP BY finding_id)",
                list(finding_ids),
            ).fetchall()
        return {r["finding_id"]: event_from_row(r) for r in rows}
