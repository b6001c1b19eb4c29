"""Store writes of the scan: idle clocks (first seen unattached), scan rows, the finding
upsert and the resolution of findings a successful scan no longer sees."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from costbot.model import ACTIVE_STATUSES, Finding, Kind, Status, Unit
from costbot.store.base import StoreBase
from costbot.store.records import ScanRecord, iso, parse_time

SCANNER_ACTOR = "costbot:scan"


class ScanWrites(StoreBase):
    """What run_scan writes."""

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

    def scan_health(self, provider: str, account: str, region: str, min_ratio: float) -> str | None:
        """Why the latest scans make acting in this account/region unsafe, or None if they don't."""
        with self._db() as db:
            latest = [
                dict(r)
                for r in db.conn.execute(
                    "SELECT * FROM scans WHERE id IN (SELECT MAX(id) FROM scans"
                    " WHERE provider=? AND account=? GROUP BY region)",
                    (provider, account),
                )
            ]
            failed = [r for r in latest if not r["ok"]]
            if failed:
                where = ", ".join(sorted(r["region"] for r in failed))
                return (
                    f"the latest scan of account {account} failed ({where}): {failed[0]['error']}"
                )
            here = next((r for r in latest if r["region"] == region), None)
            if here is None:
                return f"{provider}:{account}:{region} has never been scanned"
            before = db.conn.execute(
                "SELECT resources FROM scans WHERE provider=? AND account=? AND region=?"
                " AND ok=1 AND id < ? ORDER BY id DESC LIMIT 1",
                (provider, account, region, here["id"]),
            ).fetchone()
        if before is not None and here["resources"] < min_ratio * before["resources"]:
            return (
                f"the latest scan of {region} saw {here['resources']} resources against "
                f"{before['resources']} before; a partial inventory must not look idle"
            )
        return None
