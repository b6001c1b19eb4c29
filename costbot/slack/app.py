"""The bolt App: Approve / Reject / Snooze buttons. Every listener acks first, then lets only
configured users (or members of configured user groups) through; the
decision goes through costbot.approvals; the message is updated in place; slow work (cleanup)
is handed to a callback that queues it, never run inside Slack's 3-second window."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from costbot.approvals import Decision, DecisionRefused, decide
from costbot.config import SlackConfig
from costbot.errors import CostbotError
from costbot.slack.blocks import (
    ACTION_APPROVE,
    ACTION_REJECT,
    ACTION_SNOOZE,
    SNOOZE_DAYS,
    Actionable,
)
from costbot.slack.notify import refresh_message, slack_call
from costbot.store import Store

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 300.0
ACTIONS = {
    ACTION_APPROVE: Decision.APPROVE,
    ACTION_REJECT: Decision.REJECT,
    ACTION_SNOOZE: Decision.SNOOZE,
}


class Approvers:
    """Who may decide: configured user ids, or members of configured user groups (cached)."""

    def __init__(self, config: SlackConfig, client: WebClient) -> None:
        self._users = set(config.approvers)
        self._groups = list(config.approver_groups)
        self._client = client
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def authorize(self, user_id: str) -> tuple[bool, str | None]:
        """(allowed, the user group that allowed it); errors mean not allowed."""
        if user_id in self._users:
            return True, None
        for group in self._groups:
            try:
                if user_id in self._group_members(group):
                    return True, group
            except CostbotError as exc:
                log.warning(
                    "approver group lookup failed", extra={"group": group, "error": str(exc)}
                )
        return False, None

    def _group_members(self, group: str) -> frozenset[str]:
        with self._lock:
            cached = self._members.get(group)
            if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
                return cached[1]
        answer = slack_call(
            "usergroups.users.list", self._client.usergroups_users_list, usergroup=group
        )
        members = frozenset(answer.get("users", []))
        with self._lock:
            self._members[group] = (time.monotonic(), members)
        return members


def build_app(
    config: SlackConfig,
    store: Store,
    client: WebClient,
    *,
    actionable: Actionable,
    on_approved: Callable[[str], None],
    signing_secret: str | None,
    process_before_response: bool = False,
) -> App:
    """The bolt App with costbot's button listeners (HTTP mode when signing_secret is given)."""
    app = App(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=process_before_response,
    )
    approvers = Approvers(config, client)
    refresher = MessageRefresher(store, client, actionable, background=not process_before_response)

    def acknowledge(ack: Any) -> None:
        ack()

    def on_click(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()  # first, before any Slack or store call (a no-op when already acknowledged)
        user = body["user"]
        allowed, group = approvers.authorize(user["id"])
        if not allowed:
            _ephemeral(client, body, "You are not a costbot approver: nothing was changed.")
            return
        decision = ACTIONS[action["action_id"]]
        finding_id = action["value"]
        channel, ts = _where(body)
        source = {
            "via": "slack",
            "user_id": user["id"],
            "user_name": user.get("username") or user.get("name", ""),
            "channel": channel,
            "message_ts": ts,
            "group": group,
        }
        try:
            decide(
                store,
                [finding_id],
                decision,
                actor=user["id"],
                approvers=(),
                actionable=actionable,
                source=source,
                snooze_days=SNOOZE_DAYS if decision is Decision.SNOOZE else None,
            )
        except DecisionRefused as exc:
            _ephemeral(
                client, body, f"Nothing changed: {str(exc).removesuffix('; nothing changed')}"
            )
        except CostbotError as exc:
            log.error("decision failed", extra={"finding": finding_id, "error": str(exc)})
            _ephemeral(client, body, f"Nothing changed: {exc}")
            return
        else:
            if decision is Decision.APPROVE:
                on_approved(finding_id)
        refresher.request(channel, ts, finding_id)

    for action_id in ACTIONS:
        if process_before_response:  # serverless: everything before the response, in order
            app.action(action_id)(on_click)
        else:  # ack in the request thread at once; the work runs lazily in bolt's executor
            app.action(action_id)(ack=acknowledge, lazy=[on_click])
    return app


class MessageRefresher:
    """Updates posted messages after decisions. In the background (the default) it coalesces
    a burst of clicks on one message into one rebuild; in process_before_response mode
    (serverless) it updates inline, since nothing may run after the response."""

    def __init__(
        self, store: Store, client: WebClient, actionable: Actionable, *, background: bool
    ) -> None:
        self._store = store
        self._client = client
        self._actionable = actionable
        self._background = background
        self._pending: dict[tuple[str, str], None] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def request(self, channel: str, ts: str, finding_id: str) -> None:
        """Refresh the clicked message and, if the finding was re-posted, its newer message."""
        targets = [(channel, ts)]
        try:
            current = self._store.get(finding_id)
        except CostbotError:
            current = None
        if current and current.slack_channel and current.slack_ts:
            targets.append((current.slack_channel, current.slack_ts))
        if not self._background:
            for target in dict.fromkeys(targets):
                self._refresh(*target)
            return
        with self._wake:
            self._pending.update(dict.fromkeys(targets))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="slack-refresh", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
                target = next(iter(self._pending))
                del self._pending[target]
            self._refresh(*target)

    def _refresh(self, channel: str, ts: str) -> None:
        try:
            refresh_message(self._store, self._client, channel, ts, self._actionable)
        except CostbotError as exc:
            log.error("message update failed", extra={"ts": ts, "error": str(exc)})


def _where(body: dict[str, Any]) -> tuple[str, str]:
    container = body.get("container", {})
    channel = container.get("channel_id") or body.get("channel", {}).get("id", "")
    return str(channel), str(container.get("message_ts") or body.get("message", {}).get("ts", ""))


def _ephemeral(client: WebClient, body: dict[str, Any], text: str) -> None:
    channel, _ = _where(body)
    try:
        slack_call(
            "chat.postEphemeral",
            client.chat_postEphemeral,
            channel=channel,
            user=body["user"]["id"],
            text=text,
        )
    except CostbotError as exc:
        log.error("ephemeral reply failed", extra={"error": str(exc)})
