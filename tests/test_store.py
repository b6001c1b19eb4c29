"""Store: upserts, resolve-on-successful-rescan only, history kept, concurrent writers."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from costbot.errors import TransitionError, UnknownFindingError
from costbot.model import Finding, Kind, Provider, Status, Unit
from costbot.store import Store

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EAST = Unit(Provider.AWS, "123456789012", "us-east-1")
WEST = Unit(Provider.AWS, "123456789012", "eu-west-1")


def finding(unit: Unit, resource_id: str, savings: float = 10.0) -> Finding:
    return Finding(
        unit=unit,
        kind=Kind.IDLE_VOLUME,
        resource_id=resource_id,
        reason="unattached",
        monthly_cost_usd=savings,
        monthly_savings_usd=savings,
        price_source="bundled",
        price_date="2026-11-01",
        recommendation="snapshot, then delete",
    )


def scan(store: Store, unit: Unit, findings: list[Finding], at: datetime, error: str | None = None):
    return store.record_scan(
        unit,
        run_id="r",
        started_at=at,
        finished_at=at,
        findings=findings,
        resource_counts={"volumes": len(findings)},
        error=error,
    )


def test_new_finding_is_open_with_an_event(store: Store) -> None:
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    stored = store.get("aws:123456789012:us-east-1:idle_volume:vol-1")
    assert stored.status is Status.OPEN
    assert stored.first_seen == stored.last_seen == T0
    [event] = store.events(stored.id)
    assert (event.from_status, event.to_status, event.actor) == (None, "open", "costbot:scan")


def test_reseen_finding_keeps_first_seen_and_updates_the_rest(store: Store) -> None:
    scan(store, EAST, [finding(EAST, "vol-1", 10)], T0)
    record = scan(store, EAST, [finding(EAST, "vol-1", 12)], T0 + timedelta(days=1))
    stored = store.get(finding(EAST, "vol-1").id)
    assert (record.new, record.seen_again) == (0, 1)
    assert stored.first_seen == T0
    assert stored.last_seen == T0 + timedelta(days=1)
    assert stored.monthly_savings_usd == 12
    assert len(store.events(stored.id)) == 1


def test_vanished_finding_is_resolved_only_by_a_successful_scan(store: Store) -> None:
    scan(store, EAST, [finding(EAST, "vol-1"), finding(EAST, "vol-2")], T0)
    failed = scan(store, EAST, [], T0 + timedelta(hours=1), error="DescribeVolumes: throttled")
    assert failed.resolved == 0
    assert store.get(finding(EAST, "vol-1").id).status is Status.OPEN
    ok = scan(store, EAST, [finding(EAST, "vol-2")], T0 + timedelta(hours=2))
    assert ok.resolved == 1
    assert store.get(finding(EAST, "vol-1").id).status is Status.RESOLVED
    assert store.get(finding(EAST, "vol-2").id).status is Status.OPEN


def test_a_scan_resolves_only_its_own_unit(store: Store) -> None:
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    scan(store, WEST, [], T0 + timedelta(hours=1))
    assert store.get(finding(EAST, "vol-1").id).status is Status.OPEN


def test_resolved_finding_seen_again_reopens_and_history_is_kept(store: Store) -> None:
    fid = finding(EAST, "vol-1").id
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    scan(store, EAST, [], T0 + timedelta(days=1))
    scan(store, EAST, [finding(EAST, "vol-1")], T0 + timedelta(days=2))
    assert store.get(fid).status is Status.OPEN
    moves = [(e.from_status, e.to_status) for e in store.events(fid)]
    assert moves == [(None, "open"), ("open", "resolved"), ("resolved", "open")]


def test_failed_scan_is_recorded_in_scans(store: Store) -> None:
    scan(store, EAST, [], T0, error="boom")
    [latest] = store.latest_scans()
    assert (latest["ok"], latest["error"], latest["region"]) == (0, "boom", "us-east-1")


def test_transition_rules_and_events(store: Store) -> None:
    fid = finding(EAST, "vol-1").id
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    approved = store.transition(fid, Status.APPROVED, actor="alice", note="ok")
    assert approved.status is Status.APPROVED
    with pytest.raises(TransitionError, match="is approved; it cannot become snoozed"):
        store.transition(fid, Status.SNOOZED, actor="bob")
    assert store.events(fid)[-1].actor == "alice"
    with pytest.raises(UnknownFindingError):
        store.transition("aws:x:y:idle_volume:nope", Status.APPROVED, actor="alice")


def test_snoozed_finding_reopens_when_seen_after_the_snooze(store: Store) -> None:
    fid = finding(EAST, "vol-1").id
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    store.transition(fid, Status.SNOOZED, actor="a", snoozed_until=T0 + timedelta(days=7), now=T0)
    scan(store, EAST, [finding(EAST, "vol-1")], T0 + timedelta(days=3))
    assert store.get(fid).status is Status.SNOOZED
    scan(store, EAST, [finding(EAST, "vol-1")], T0 + timedelta(days=8))
    assert store.get(fid).status is Status.OPEN
    assert store.get(fid).snoozed_until is None


def test_unattached_clock_keeps_the_first_sighting_and_resets_on_reattach(store: Store) -> None:
    first = store.note_unattached(EAST, Kind.IDLE_VOLUME, ["vol-1"], T0)
    later = store.note_unattached(
        EAST, Kind.IDLE_VOLUME, ["vol-1", "vol-2"], T0 + timedelta(days=3)
    )
    assert first == {"vol-1": T0}
    assert later == {"vol-1": T0, "vol-2": T0 + timedelta(days=3)}
    store.note_unattached(EAST, Kind.IDLE_VOLUME, ["vol-2"], T0 + timedelta(days=4))
    again = store.note_unattached(EAST, Kind.IDLE_VOLUME, ["vol-1"], T0 + timedelta(days=5))
    assert again == {"vol-1": T0 + timedelta(days=5)}


def test_reopening_an_existing_database_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    scan(Store(path), EAST, [finding(EAST, "vol-1")], T0)
    reopened = Store(path)
    assert [f.resource_id for f in reopened.findings()] == ["vol-1"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] >= 1


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Store(path)
    errors: list[BaseException] = []

    def writer(unit: Unit) -> None:
        try:
            own = Store(path)
            for n in range(40):
                scan(
                    own,
                    unit,
                    [finding(unit, f"vol-{k}") for k in range(n + 1)],
                    T0 + timedelta(minutes=n),
                )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(u,)) for u in (EAST, WEST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = Store(path)
    assert len(store.findings()) == 80
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM scans").fetchone()[0] == 80
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 80


def test_concurrent_approvals_make_exactly_one_transition(store: Store) -> None:
    fid = finding(EAST, "vol-1").id
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def approve(who: str) -> None:
        barrier.wait()
        try:
            store.transition(fid, Status.APPROVED, actor=who, allowed_from=[Status.OPEN])
            outcomes.append("ok")
        except TransitionError:
            outcomes.append("refused")

    threads = [threading.Thread(target=approve, args=(f"u{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["refused"] * 7
    approvals = [e for e in store.events(fid) if e.to_status == "approved"]
    assert len(approvals) == 1


def test_a_human_decision_is_refused_while_a_cleanup_action_is_in_flight(store: Store) -> None:
    fid = finding(EAST, "vol-1").id
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    store.transition(fid, Status.APPROVED, actor="alice")
    store.begin_action(fid, action="delete", run_id="r", params={}, actor="bot", now=T0)
    with pytest.raises(TransitionError, match="action in progress"):
        store.transition(fid, Status.REJECTED, actor="bob", refuse_in_flight=True)
    assert store.get(fid).status is Status.APPROVED


def test_an_action_result_is_recorded_even_if_the_finding_moved_meanwhile(store: Store) -> None:
    fid = finding(EAST, "vol-1").id
    scan(store, EAST, [finding(EAST, "vol-1")], T0)
    store.transition(fid, Status.APPROVED, actor="alice")
    action = store.begin_action(fid, action="delete", run_id="r", params={}, actor="bot", now=T0)
    store.transition(fid, Status.REJECTED, actor="bob")  # e.g. an older client without the check
    store.finish_action(
        action, result="done", note="deleted", data={}, to=Status.CLEANED, actor="bot", now=T0
    )
    assert store.open_actions() == []
    assert store.get(fid).status is Status.REJECTED
    assert store.events(fid)[-1].type == "result"


def test_a_newer_failure_recorded_before_the_account_id_was_known_holds_cleanup(
    store: Store,
) -> None:
    scan(store, EAST, [], T0)
    assert store.scan_health("aws", EAST.account, EAST.region, 0.5) is None
    unknown = Unit(Provider.AWS, "default", "us-east-1")
    scan(store, unknown, [], T0 + timedelta(hours=1), error="sts:GetCallerIdentity: expired")
    assert "failed" in (store.scan_health("aws", EAST.account, EAST.region, 0.5) or "")
    scan(store, EAST, [], T0 + timedelta(hours=2))
    assert store.scan_health("aws", EAST.account, EAST.region, 0.5) is None


def test_a_whole_account_scan_resolves_across_its_regions_and_records_real_regions(
    store: Store,
) -> None:
    everywhere = Unit(Provider.GCP, "my-project", "*")
    central = Unit(Provider.GCP, "my-project", "us-central1")
    east = Unit(Provider.GCP, "my-project", "us-east1")
    scan(store, everywhere, [finding(central, "disk-a"), finding(east, "disk-b")], T0)
    assert {f.region for f in store.findings()} == {"us-central1", "us-east1"}
    record = scan(store, everywhere, [finding(east, "disk-b")], T0 + timedelta(days=1))
    assert record.resolved == 1
    assert store.get(finding(central, "disk-a").id).status is Status.RESOLVED
    assert store.scan_health("gcp", "my-project", "us-east1", 0.5) is None
    scan(store, everywhere, [], T0 + timedelta(days=2), error="403 on the project")
    assert "failed" in (store.scan_health("gcp", "my-project", "us-east1", 0.5) or "")
