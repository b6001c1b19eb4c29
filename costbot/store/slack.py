"""Store records of Slack posts: which message (and thread) shows each finding, when it was
posted and at what cost, so nothing is posted twice and a rising cost is posted again."""

from __future__ import annotations

from datetime import datetime

from costbot.errors import UnknownFindingError
from costbot.model import Status
from costbot.store.base import StoreBase
from costbot.store.records import StoredFinding, iso

COST_RISE_TO_REPOST = 1.01


class SlackRecords(StoreBase):
    """Where each finding was posted."""

    def findings_to_notify(self) -> list[StoredFinding]:
        """Open findings never posted (or reopened), and notified ones whose cost has risen."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM findings WHERE status=? OR (status=? AND notified_cost_usd IS NOT"
                " NULL AND monthly_cost_usd > notified_cost_usd * ?)"
                " ORDER BY monthly_savings_usd DESC, id",
                (str(Status.OPEN), str(Status.NOTIFIED), COST_RISE_TO_REPOST),
            )
            return [StoredFinding.from_row(r) for r in rows]

    def mark_notified(
        self,
        finding_id: str,
        *,
        channel: str,
        ts: str,
        thread_ts: str,
        actor: str,
        now: datetime,
    ) -> None:
        """Record the message showing a finding; open -> notified with an event."""
        with self._tx() as db:
            row = db.conn.execute(
                "SELECT status, monthly_cost_usd FROM findings WHERE id=?", (finding_id,)
            ).fetchone()
            if row is None:
                raise UnknownFindingError(f"no finding with id '{finding_id}'")
            db.conn.execute(
                "UPDATE findings SET slack_channel=?, slack_ts=?, slack_thread_ts=?,"
                " notified_at=?, notified_cost_usd=? WHERE id=?",
                (channel, ts, thread_ts, iso(now), row["monthly_cost_usd"], finding_id),
            )
            current = Status(row["status"])
            to = Status.NOTIFIED if current is Status.OPEN else None
            if to is not None:
                db.conn.execute(
                    "UPDATE findings SET status=?, status_changed_at=? WHERE id=?",
                    (str(to), iso(now), finding_id),
                )
            self._event(
                db,
                finding_id,
                now,
                actor,
                "status" if to else "note",
                current,
                to,
                f"posted to Slack {channel} ({ts})",
                {"channel": channel, "ts": ts},
            )

    def findings_in_message(self, ts: str) -> list[StoredFinding]:
        """Every finding a Slack message shows, largest savings first."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM findings WHERE slack_ts=? ORDER BY monthly_savings_usd DESC, id",
                (ts,),
            )
            return [StoredFinding.from_row(r) for r in rows]

    def findings_in_thread(self, thread_ts: str) -> list[StoredFinding]:
        """Every finding of one summary post (its root message and threaded follow-ups)."""
        with self._db() as db:
            rows = db.conn.execute(
                "SELECT * FROM findings WHERE slack_thread_ts=?"
                " ORDER BY monthly_savings_usd DESC, id",
                (thread_ts,),
            )
            return [StoredFinding.from_row(r) for r in rows]
