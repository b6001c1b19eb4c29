"""The Slack app in HTTP mode, for real: costbot's bolt App behind its threaded WSGI server on
127.0.0.1, Slack-signed block_actions posted over HTTP, the Web API calls going to the fake.

With the default process_before_response=False the listener runs after the HTTP answer, so
those tests poll the store / the fake's call log with a deadline; the others build the app with
process_before_response=True, where the answer comes after the listener has finished."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from slack_bolt import App

from costbot.config import SlackConfig
from costbot.model import Kind, Status
from costbot.slack.app import build_app
from costbot.slack.blocks import (
    ACTION_APPROVE,
    ACTION_REJECT,
    ACTION_SNOOZE,
    finding_blocks,
)
from costbot.slack.notify import ACTOR, notify, web_client
from costbot.slack.server import http_server
from costbot.store import Store, utcnow
from tests.slack.conftest import TOKEN
from tests.slack.fake_slack import (
    CHANNEL_ID,
    Call,
    FakeSlack,
    Reply,
    block_actions_payload,
    http,
    iter_buttons,
    signed_request,
    wait_until,
)
from tests.slack.seed import ACTIONABLE, AWS_EAST, GCP_CENTRAL, T0, make, scan

SECRET = "3a9c2f5e8b7d4c1a9e0f6b2d8c4a7e1f"
MESSAGE_TS = "1699999999.000100"
APPROVERS = ["UALICE", "UBOB"]
GROUP = "SOPS"
NOT_AN_APPROVER = "You are not a costbot approver: nothing was changed."


@dataclass
class Served:
    """One running app: where it listens, and what it wrote or queued."""

    base: str
    store: Store
    fake: FakeSlack
    app: App
    approved: list[str] = field(default_factory=list)

    def click(
        self,
        action_id: str,
        finding_id: str,
        user: str,
        *,
        message_ts: str = MESSAGE_TS,
        secret: str = SECRET,
        age_s: float = 0.0,
        timeout: float = 10.0,
    ) -> Reply:
        payload = block_actions_payload(
            action_id=action_id,
            value=finding_id,
            user_id=user,
            message_ts=message_ts,
            response_url=self.fake.response_url(),
        )
        body, headers = signed_request(secret, payload, timestamp=time.time() - age_s)
        return http(f"{self.base}/slack/events", body=body, headers=headers, timeout=timeout)

    def updates(self) -> list[Call]:
        return self.fake.calls_to("chat.update")

    def ephemerals(self, user: str | None = None) -> list[Call]:
        calls = self.fake.calls_to("chat.postEphemeral")
        return [c for c in calls if user is None or c.params["user"] == user]


@pytest.fixture
def serve(store: Store, fake_slack: FakeSlack) -> Iterator[Callable[..., Served]]:
    """Start costbot's app over HTTP (stopped after the test)."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(*, process_before_response: bool = False) -> Served:
        config = SlackConfig(
            channel="#costs",
            approvers=APPROVERS,
            approver_groups=[GROUP],
            api_base_url=fake_slack.url,
        )
        client = web_client(config, token=TOKEN)
        approved: list[str] = []
        app = build_app(
            config,
            store,
            client,
            actionable=ACTIONABLE,
            on_approved=approved.append,
            signing_secret=SECRET,
            process_before_response=process_before_response,
        )
        server = http_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        running.append((server, thread))
        base = f"http://127.0.0.1:{server.server_port}"
        return Served(base, store, fake_slack, app, approved)

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(5)


def posted(store: Store, *findings: Any, unit: Any = AWS_EAST) -> list[str]:
    """Scan the findings into the store and record them as shown in MESSAGE_TS (a root post)."""
    ids = scan(store, unit, list(findings))
    for fid in ids:
        store.mark_notified(
            fid, channel=CHANNEL_ID, ts=MESSAGE_TS, thread_ts=MESSAGE_TS, actor=ACTOR, now=T0
        )
    return ids


def status_events(store: Store, finding_id: str, to: Status) -> list[Any]:
    return [e for e in store.events(finding_id) if e.type == "status" and e.to_status == to]


def context_of(call: Call, finding_id: str) -> dict[str, Any]:
    """The block after the finding's section (its buttons, or its decided line) in a message."""
    resource = finding_id.rsplit(":", 1)[1]
    for n, block in enumerate(call.blocks):
        if block.get("block_id", "").startswith("f:") and f"`{resource}`" in block["text"]["text"]:
            return call.blocks[n + 1]
    raise AssertionError(f"{finding_id} is not in the updated message")


# -- decisions -------------------------------------------------------------------------------


def test_approve_acks_before_the_listener_runs_then_decides(
    store: Store, serve: Callable[..., Served]
) -> None:
    served = serve()  # the default: process_before_response=False
    a, b = posted(store, make(AWS_EAST, "vol-a", cost=20.0), make(AWS_EAST, "vol-b"))
    held = served.fake.hold("chat.update")

    reply = served.click(ACTION_APPROVE, a, "UALICE")

    # Slack got its 200 while the listener is still blocked on chat.update: ack came first.
    assert (reply.status, reply.body) == (200, b"")
    assert held.waiting.wait(10)
    assert not served.updates()[0].answer
    held.release.set()
    [update] = served.fake.wait_for(lambda: [c for c in served.updates() if c.answer])

    finding = store.get(a)
    assert finding.status is Status.APPROVED
    assert finding.approved_by == "UALICE"
    assert finding.approval_source == {
        "via": "slack",
        "user_id": "UALICE",
        "user_name": "ualice",
        "channel": CHANNEL_ID,
        "message_ts": MESSAGE_TS,
        "group": None,
        "recommendation": finding.recommendation,
    }
    [event] = status_events(store, a, Status.APPROVED)
    assert (event.actor, event.from_status, event.data["via"]) == ("UALICE", "notified", "slack")
    assert served.approved == [a]
    assert (update.params["channel"], update.params["ts"]) == (CHANNEL_ID, MESSAGE_TS)
    assert update.blocks[0]["type"] == "header"
    assert context_of(update, a)["elements"][0]["text"].startswith("✅ Approved by <@UALICE>")
    still_open = [x["action_id"] for x in iter_buttons(update.blocks) if x["value"] == b]
    assert still_open == [ACTION_APPROVE, ACTION_REJECT, ACTION_SNOOZE]
    assert store.get(b).status is Status.NOTIFIED
    assert served.ephemerals() == []


@pytest.mark.parametrize(
    ("action_id", "status", "line"),
    [
        (ACTION_REJECT, Status.REJECTED, "🚫 Rejected by <@UBOB>"),
        (ACTION_SNOOZE, Status.SNOOZED, "😴 Snoozed by <@UBOB>"),
    ],
)
def test_reject_and_snooze(
    store: Store,
    serve: Callable[..., Served],
    action_id: str,
    status: Status,
    line: str,
) -> None:
    served = serve(process_before_response=True)
    [fid] = posted(store, make(AWS_EAST, "vol-a"))
    before = utcnow()

    reply = served.click(action_id, fid, "UBOB")

    assert reply.status == 200
    finding = store.get(fid)
    assert finding.status is status
    assert finding.approved_by is None
    [event] = status_events(store, fid, status)
    assert event.actor == "UBOB"
    assert event.data["via"] == "slack" and event.data["message_ts"] == MESSAGE_TS
    if status is Status.SNOOZED:
        assert finding.snoozed_until is not None
        assert before + timedelta(days=7) <= finding.snoozed_until <= utcnow() + timedelta(days=7)
        line += f" on {event.at:%Y-%m-%d %H:%M} UTC until {finding.snoozed_until:%Y-%m-%d}"
    [update] = served.updates()
    assert context_of(update, fid)["elements"][0]["text"].startswith(line)
    assert served.approved == []


def test_a_member_of_an_approver_group_may_decide(
    store: Store, serve: Callable[..., Served]
) -> None:
    served = serve(process_before_response=True)
    served.fake.usergroups[GROUP] = ["UGRACE", "UHEIDI"]
    a, b = posted(store, make(AWS_EAST, "vol-a"), make(AWS_EAST, "vol-b"))

    assert served.click(ACTION_APPROVE, a, "UGRACE").status == 200
    assert served.click(ACTION_REJECT, b, "UGRACE").status == 200

    approved = store.get(a)
    assert (approved.status, approved.approved_by) == (Status.APPROVED, "UGRACE")
    assert approved.approval_source["group"] == GROUP
    assert store.get(b).status is Status.REJECTED
    [lookup] = served.fake.calls_to("usergroups.users.list")  # the second click used the cache
    assert lookup.params["usergroup"] == GROUP
    assert served.approved == [a]


@pytest.mark.parametrize("lookup", ["not a member", "lookup fails"])
def test_anyone_else_is_refused_and_nothing_changes(
    store: Store, serve: Callable[..., Served], lookup: str
) -> None:
    served = serve()
    if lookup == "not a member":
        served.fake.usergroups[GROUP] = ["UGRACE"]
    else:
        served.fake.fail("usergroups.users.list", "missing_scope", times=None)
    [fid] = posted(store, make(AWS_EAST, "vol-a"))

    served.click(ACTION_APPROVE, fid, "UMALLORY")  # its HTTP status: see the xfail below

    [refusal] = served.fake.wait_for(lambda: served.ephemerals("UMALLORY"))
    assert (refusal.params["channel"], refusal.params["text"]) == (CHANNEL_ID, NOT_AN_APPROVER)
    assert store.get(fid).status is Status.NOTIFIED
    assert status_events(store, fid, Status.APPROVED) == []
    assert served.updates() == []
    assert served.approved == []


def click_together(served: Served, barrier: threading.Barrier, fid: str, user: str) -> Reply:
    barrier.wait(5)
    return served.click(ACTION_APPROVE, fid, user)


def test_two_approvers_at_once_only_one_wins(store: Store, serve: Callable[..., Served]) -> None:
    served = serve(process_before_response=True)
    ids = posted(store, *(make(AWS_EAST, f"vol-{n}") for n in range(6)))
    users = ("UALICE", "UBOB")
    for fid in ids:
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(click_together, served, barrier, fid, u) for u in users]
            assert [f.result(15).status for f in futures] == [200, 200]

    for fid in ids:
        [event] = status_events(store, fid, Status.APPROVED)
        winner = store.get(fid).approved_by
        assert winner in users and event.actor == winner
        [loser] = [u for u in users if u != winner]
        nothing = [c for c in served.ephemerals(loser) if fid.rsplit(":", 1)[1] in c.params["text"]]
        assert len(nothing) == 1
        assert nothing[0].params["text"].startswith("Nothing changed:")
    assert sorted(served.approved) == sorted(ids)
    assert served.ephemerals() and all(
        c.params["text"].startswith("Nothing changed:") for c in served.ephemerals()
    )
    assert len(served.ephemerals()) == len(ids)


def test_clicks_on_resolved_cleaned_or_advisory_findings_change_nothing(
    store: Store, serve: Callable[..., Served]
) -> None:
    served = serve(process_before_response=True)
    gone, cleaned, kept = posted(
        store, make(AWS_EAST, "vol-gone"), make(AWS_EAST, "vol-cleaned"), make(AWS_EAST, "vol-x")
    )
    [advisory] = posted(store, make(GCP_CENTRAL, "disk-1", kind=Kind.IDLE_VOLUME), unit=GCP_CENTRAL)
    scan(store, AWS_EAST, [make(AWS_EAST, "vol-cleaned"), make(AWS_EAST, "vol-x")], T0)
    store.transition(cleaned, Status.APPROVED, actor="UALICE", now=T0)
    action = store.begin_action(
        cleaned, action="delete_volume", run_id="r", params={}, actor="costbot:cleanup", now=T0
    )
    store.finish_action(
        action, result="done", note="deleted", data={}, to=Status.CLEANED, actor="c", now=T0
    )
    before = {fid: (store.get(fid).status, len(store.events(fid))) for fid in (gone, cleaned)}

    clicks = [
        (ACTION_APPROVE, gone, "is already resolved"),
        (ACTION_REJECT, gone, "is already resolved"),
        (ACTION_APPROVE, cleaned, "is already cleaned"),
        (ACTION_SNOOZE, cleaned, "is already cleaned"),
        (ACTION_APPROVE, advisory, "is advisory"),
        (ACTION_APPROVE, "aws:123456789012:us-east-1:idle_volume:vol-nope", "no finding with id"),
    ]
    for action_id, fid, why in clicks:
        assert served.click(action_id, fid, "UALICE").status == 200
        text = served.ephemerals("UALICE")[-1].params["text"]
        assert text.startswith("Nothing changed:") and why in text, text

    assert len(served.ephemerals()) == len(clicks)
    assert {fid: (store.get(fid).status, len(store.events(fid))) for fid in before} == before
    assert store.get(advisory).status is Status.NOTIFIED
    assert store.get(kept).status is Status.NOTIFIED
    assert served.approved == []


def test_a_click_in_a_threaded_follow_up_updates_that_message(
    store: Store, serve: Callable[..., Served], fake_slack: FakeSlack
) -> None:
    served = serve(process_before_response=True)
    ids = scan(store, AWS_EAST, [make(AWS_EAST, f"vol-{n:02d}", cost=100.0 - n) for n in range(30)])
    config = SlackConfig(channel="#costs", api_base_url=fake_slack.url)
    notify(config, store, web_client(config, token=TOKEN), {}, now=T0)
    root, follow_up = (c.answer["ts"] for c in fake_slack.calls_to("chat.postMessage"))  # type: ignore[index]
    in_follow_up = [fid for fid in ids if store.get(fid).slack_ts == follow_up]
    assert in_follow_up and root != follow_up

    served.click(ACTION_SNOOZE, in_follow_up[0], "UALICE", message_ts=follow_up)

    [update] = served.updates()
    assert update.params["ts"] == follow_up
    assert update.blocks[0]["type"] == "section"  # no header outside the root
    assert len(update.blocks) == 2 * len(in_follow_up)
    text = context_of(update, in_follow_up[0])["elements"][0]["text"]
    assert text.startswith("😴 Snoozed by <@UALICE>")
    assert store.get(in_follow_up[0]).status is Status.SNOOZED


def test_every_button_shown_on_a_failed_finding_works(
    store: Store, serve: Callable[..., Served]
) -> None:
    """A failed cleanup keeps Approve / Reject / Snooze; each of them must really decide."""
    served = serve(process_before_response=True)
    shown = finding_blocks(
        store.get(posted(store, make(AWS_EAST, "vol-probe"))[0]),
        actionable=ACTIONABLE,
        now=T0,
    )
    actions = [b["action_id"] for b in iter_buttons(shown)]
    findings = [make(AWS_EAST, f"vol-failed-{a}") for a in actions]
    ids = posted(store, make(AWS_EAST, "vol-probe"), *findings)[1:]
    for fid in ids:
        store.transition(fid, Status.APPROVED, actor="UALICE", now=T0)
        store.transition(fid, Status.FAILED, actor="costbot:cleanup", now=T0)
        failed = finding_blocks(store.get(fid), actionable=ACTIONABLE, now=T0)
        assert [b["action_id"] for b in iter_buttons(failed)] == actions
    results = {}
    for action_id, fid in zip(actions, ids, strict=True):
        assert served.click(action_id, fid, "UALICE").status == 200
        results[action_id] = store.get(fid).status
    assert Status.FAILED not in results.values(), results


# -- the request gate ------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["unsigned", "wrong secret", "tampered", "6 minutes old"])
def test_unverified_requests_get_401_and_change_nothing(
    store: Store, serve: Callable[..., Served], bad: str
) -> None:
    served = serve()
    [fid] = posted(store, make(AWS_EAST, "vol-a"))
    payload = block_actions_payload(
        action_id=ACTION_APPROVE,
        value=fid,
        user_id="UALICE",
        message_ts=MESSAGE_TS,
        response_url=served.fake.response_url(),
    )
    body, headers = signed_request(
        "not-the-secret" if bad == "wrong secret" else SECRET,
        payload,
        timestamp=time.time() - (360 if bad == "6 minutes old" else 0),
    )
    if bad == "unsigned":
        del headers["X-Slack-Signature"], headers["X-Slack-Request-Timestamp"]
    if bad == "tampered":
        body = body.replace(b"UALICE", b"UBOB")

    reply = http(f"{served.base}/slack/events", body=body, headers=headers)

    assert reply.status == 401
    # A correctly signed click after it is served (and proves the listener pool is idle).
    assert served.click(ACTION_REJECT, "aws:x:y:idle_volume:none", "UALICE").status == 200
    served.fake.wait_for(lambda: served.ephemerals("UALICE"))
    assert store.get(fid).status is Status.NOTIFIED
    assert len(store.events(fid)) == 2  # open, notified
    assert served.updates() == []
    assert served.approved == []


def test_a_four_minute_old_signed_click_is_still_accepted(
    store: Store, serve: Callable[..., Served]
) -> None:
    served = serve(process_before_response=True)
    [fid] = posted(store, make(AWS_EAST, "vol-a"))
    assert served.click(ACTION_REJECT, fid, "UALICE", age_s=240).status == 200
    assert store.get(fid).status is Status.REJECTED


def test_healthz_and_unknown_paths(serve: Callable[..., Served]) -> None:
    served = serve()
    health = http(f"{served.base}/healthz")
    assert (health.status, health.body) == (200, b"ok\n")
    assert http(f"{served.base}/nope").status == 404


# -- known bugs ------------------------------------------------------------------------------


@pytest.mark.parametrize("process_before_response", [False, True])
def test_a_refused_click_is_still_acknowledged_with_200(
    store: Store, serve: Callable[..., Served], process_before_response: bool
) -> None:
    served = serve(process_before_response=process_before_response)
    [fid] = posted(store, make(AWS_EAST, "vol-a"))
    reply = served.click(ACTION_APPROVE, fid, "UMALLORY")
    served.fake.wait_for(lambda: served.ephemerals("UMALLORY"))
    assert (reply.status, reply.body) == (200, b"")


def test_a_slow_group_lookup_does_not_delay_the_ack(
    store: Store, serve: Callable[..., Served]
) -> None:
    served = serve()  # default mode: the listener's work is meant to come after the ack
    served.fake.usergroups[GROUP] = ["UGRACE"]
    [fid] = posted(store, make(AWS_EAST, "vol-a"))
    held = served.fake.hold("usergroups.users.list")
    replies: list[Reply] = []
    clicker = threading.Thread(
        target=lambda: replies.append(served.click(ACTION_APPROVE, fid, "UGRACE"))
    )
    clicker.start()
    try:
        assert held.waiting.wait(10)
        acked = wait_until(lambda: replies, timeout=1.5, what="the HTTP ack while Slack is slow")
        assert acked[0].status == 200
    finally:
        held.release.set()
        clicker.join(15)
        wait_until(lambda: store.get(fid).status is Status.APPROVED, what="the approval")
        served.fake.wait_for(served.updates)


def test_a_decision_from_an_older_post_updates_the_message_now_showing_the_finding(
    store: Store, serve: Callable[..., Served], fake_slack: FakeSlack
) -> None:
    served = serve(process_before_response=True)
    config = SlackConfig(channel="#costs", api_base_url=fake_slack.url)
    client = web_client(config, token=TOKEN)
    rising, steady = make(AWS_EAST, "vol-rising", cost=10.0), make(AWS_EAST, "vol-steady", cost=5.0)
    scan(store, AWS_EAST, [rising, steady])
    notify(config, store, client, {}, now=T0)
    later = T0 + timedelta(days=1)
    scan(store, AWS_EAST, [make(AWS_EAST, "vol-rising", cost=20.0), steady], later)
    notify(config, store, client, {}, now=later)
    first, second = (c.answer["ts"] for c in fake_slack.calls_to("chat.postMessage"))  # type: ignore[index]
    assert store.get(rising.id).slack_ts == second

    served.click(ACTION_REJECT, rising.id, "UALICE", message_ts=first)

    assert store.get(rising.id).status is Status.REJECTED
    updated = {c.params["ts"]: c for c in served.updates()}
    assert second in updated, f"only {sorted(updated)} updated"
    line = context_of(updated[second], rising.id)["elements"][0]["text"]
    assert line.startswith("🚫 Rejected by <@UALICE>")


def test_a_burst_of_20_clicks_fits_in_the_listen_backlog(
    store: Store, fake_slack: FakeSlack
) -> None:
    config = SlackConfig(channel="#costs", approvers=APPROVERS, api_base_url=fake_slack.url)
    app = build_app(
        config,
        store,
        web_client(config, token=TOKEN),
        actionable=ACTIONABLE,
        on_approved=lambda _: None,
        signing_secret=SECRET,
    )
    server = http_server(app, "127.0.0.1", 0)  # listening, accept loop not running yet
    clients = [socket.socket() for _ in range(20)]
    connected = 0
    with selectors.DefaultSelector() as selector:
        try:
            for sock in clients:
                sock.setblocking(False)
                sock.connect_ex(server.server_address)
                selector.register(sock, selectors.EVENT_WRITE)
            deadline = time.monotonic() + 0.5  # a handshake on 127.0.0.1 takes microseconds
            while connected < len(clients) and time.monotonic() < deadline:
                for key, _ in selector.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    connected += sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                    selector.unregister(sock)
        finally:
            for sock in clients:
                sock.close()
            server.server_close()
    assert connected == len(clients)
