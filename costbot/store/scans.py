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
_VALUE_COLUMNS = (
    "name",
    "reason",
    "monthly_cost_usd",
    "monthly_savings_usd",
    "price_source",
    "price_date",
    "recommendation",
    "details",
    "last_seen",
    "first_seen_unattached",
)
_INSERT_COLUMNS = ", ".join(
    (
        "id",
        "provider",
        "account",
        "region",
        "kind",
        "resource_id",
        "status",
        "first_seen",
        "status_changed_at",
        *_VALUE_COLUMNS,
    )
)
_INSERT_MARKS = ", ".join("?" * len(_INSERT_COLUMNS.split(", ")))
_UPDATE_SET = ", ".join(f"{c}=?" for c in _VALUE_COLUMNS)


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
                " WHERE provider=? AND account=? AND (region=? OR ?='*')",
                (unit.provider, unit.account, unit.region, unit.region),
            )
        }
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        reopens: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        stamp = iso(now)
        for finding in findings:
            values = (
                finding.name,
                finding.reason,
                finding.monthly_cost_usd,
                finding.monthly_savings_usd,
                finding.price_source,
                finding.price_date,
                finding.recommendation,
                json.dumps(dict(finding.details), default=str),
                stamp,
                iso(since.get(finding.resource_id)),
            )
            row = existing.get(finding.id)
            if row is None:
                inserts.append(
                    (
                        finding.id,
                        str(finding.unit.provider),
                        finding.unit.account,
                        finding.unit.region,  # the resource's own region (units may be "*")
                        str(finding.kind),
                        finding.resource_id,
                        str(Status.OPEN),
                        stamp,
                        stamp,
                        *values,
                    )
                )
                events.append((finding.id, stamp, None, str(Status.OPEN), finding.reason))
                continue
            status = Status(row["status"])
            reopen_note = ""
            if status is Status.RESOLVED:
                reopen_note = "wasteful again"
            elif status is Status.SNOOZED and (parse_time(row["snoozed_until"]) or now) <= now:
                reopen_note = "snooze ended"
            if reopen_note:
                reopens.append((*values, str(Status.OPEN), stamp, finding.id))
                events.append((finding.id, stamp, str(status), str(Status.OPEN), reopen_note))
            else:
                updates.append((*values, finding.id))
        seen = {finding.id for finding in findings}
        in_flight = {  # an interrupted cleanup is settled by the cleanup run, not by a scan
            row[0] for row in db.conn.execute("SELECT finding_id FROM actions WHERE result IS NULL")
        }
        vanished = [
            (fid, row["status"])
            for fid, row in existing.items()
            if fid not in seen and fid not in in_flight and Status(row["status"]) in ACTIVE_STATUSES
        ]
        db.conn.executemany(
            f"INSERT INTO findings ({_INSERT_COLUMNS}) VALUES ({_INSERT_MARKS})", inserts
        )
        db.conn.executemany(f"UPDATE findings SET {_UPDATE_SET} WHERE id=?", updates)
        db.conn.executemany(
            f"UPDATE findings SET {_UPDATE_SET}, status=?, status_changed_at=?, snoozed_until=NULL"
            " WHERE id=?",
            reopens,
        )
        db.conn.executemany(
            "UPDATE findings SET status=?, status_changed_at=? WHERE id=?",
            [(str(Status.RESOLVED), stamp, fid) for fid, _ in vanished],
        )
        events += [
            (fid, stamp, old, str(Status.RESOLVED), "no longer wasteful in a successful scan")
            for fid, old in vanished
        ]
        db.conn.executemany(
            "INSERT INTO events (finding_id, at, actor, type, from_status, to_status, note)"
            f" VALUES (?, ?, '{SCANNER_ACTOR}', 'status', ?, ?, ?)",
            events,
        )
        return ScanRecord(
            new=len(inserts), seen_again=len(updates) + len(reopens), resolved=len(vanished)
        )

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
            latest = [  # this account's units, and failures recorded before its id was known
                dict(r)
                for r in db.conn.execute(
                    "SELECT * FROM scans WHERE id IN (SELECT MAX(id) FROM scans"
                    " WHERE provider=? AND account IN (?, 'default', 'organization', '*')"
                    " GROUP BY account, region)",
                    (provider, account),
                )
            ]
            own = [r for r in latest if r["account"] == account]
            here = next((r for r in own if r["region"] == region), None) or next(
                (r for r in own if r["region"] == "*"),
                None,  # a whole-account (all regions) scan
            )
            newest_own = max((r["id"] for r in latest if r["account"] == account), default=0)
            failed = [  # a failure under a placeholder account counts only if it is newer
                r
                for r in latest
                if not r["ok"] and (r["account"] == account or r["id"] > newest_own)
            ]
            if failed:
                where = ", ".join(sorted(r["region"] for r in failed))
                return (
                    f"the latest scan of account {account} failed ({where}): {failed[0]['error']}"
                )
            if here is None:
                return f"{provider}:{account}:{region} has never been scanned"
            before = db.conn.execute(
                "SELECT resources FROM scans WHERE provider=? AND account=? AND region=?"
                " AND ok=1 AND id < ? ORDER BY id DESC LIMIT 1",
                (provider, account, here["region"], here["id"]),
            ).fetchone()
        if before is not None and here["resources"] < min_ratio * before["resources"]:
            return (
                f"the latest scan of {region} saw {here['resources']} resources against "
                f"{before['resources']} before; a partial inventory must not look idle"
            )
        return None
