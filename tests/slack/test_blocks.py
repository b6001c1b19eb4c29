"""Block Kit builders as plain data: Slack's limits, one section + buttons per finding, the
Approve button only where a cleanup action exists, escaping, and decided findings in place."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from costbot.model import Kind, Provider, Status, Unit
from costbot.slack.blocks import (
    ACTION_APPROVE,
    ACTION_REJECT,
    ACTION_SNOOZE,
    Decider,
    finding_blocks,
    message_blocks,
    summary_messages,
)
from costbot.slack.notify import last_decider
from costbot.store import Store, StoredFinding
from tests.slack.fake_slack import iter_buttons
from tests.slack.seed import ACTIONABLE, AWS_EAST, GCP_CENTRAL, T0, make, scan

NOW = T0 + timedelta(days=3)
SLACK_MAX_BLOCKS = 50
SLACK_MAX_SECTION_TEXT = 3000
SLACK_MAX_FIELD_TEXT = 2000
SLACK_MAX_HEADER_TEXT = 150
SLACK_MAX_BUTTON_TEXT = 75
SLACK_MAX_BUTTON_VALUE = 2000
SLACK_MAX_BLOCK_ID = 255
SLACK_MAX_CONFIRM_TEXT = 300


def seed_500(store: Store) -> list[StoredFinding]:
    """500 findings: AWS volumes and IPs (actionable), AWS instances and GCP disks (advisory)."""
    aws = [make(AWS_EAST, f"vol-{n:04d}", cost=500 - n * 0.5) for n in range(150)]
    aws += [
        make(AWS_EAST, f"eipalloc-{n:04d}", kind=Kind.UNATTACHED_IP, cost=3.65) for n in range(100)
    ]
    aws += [
        make(AWS_EAST, f"i-{n:04d}", kind=Kind.OVERSIZED_INSTANCE, cost=140.0, savings=70.0)
        for n in range(50)
    ]
    gcp = [make(GCP_CENTRAL, f"disk-{n:04d}", cost=40.0 + n % 7) for n in range(200)]
    scan(store, AWS_EAST, aws, T0)
    scan(store, GCP_CENTRAL, gcp, T0)
    findings = store.findings()
    assert len(findings) == 500
    return findings


def texts(block: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) for every text object inside a block, recursively."""

    def walk(node: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text") and "text" in node:
                yield where, node["text"]
            for key, value in node.items():
                yield from walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for n, value in enumerate(node):
                yield from walk(value, f"{where}[{n}]")

    yield from walk(block, block["type"])


def finding_pairs(blocks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(section, actions-or-context) per finding, in order, skipping the header blocks."""
    body = [b for b in blocks if b.get("block_id", "").startswith(("f:", "a:"))]
    assert len(body) % 2 == 0
    pairs = list(zip(body[::2], body[1::2], strict=True))
    for section, after in pairs:
        assert section["type"] == "section" and section["block_id"].startswith("f:")
        assert after["type"] in ("actions", "context") and after["block_id"].startswith("a:")
    return pairs


def test_500_findings_split_within_slack_limits_each_exactly_once(store: Store) -> None:
    findings = seed_500(store)
    by_id = {f.id: f for f in findings}
    messages = summary_messages(findings, actionable=ACTIONABLE, now=NOW)

    # 2 blocks per finding; the root also carries a 3-block header: 23 findings in the root,
    # then 25 per threaded follow-up -> 1 + ceil(477 / 25) = 21 messages, no more.
    assert len(messages) == 21
    seen: list[str] = []
    for n, message in enumerate(messages):
        assert len(message.blocks) <= SLACK_MAX_BLOCKS
        assert message.text
        has_header = message.blocks[0]["type"] == "header"
        assert has_header is (n == 0)
        ids = [b["block_id"] for b in message.blocks if "block_id" in b]
        assert len(ids) == len(set(ids)), "block_id must be unique within a message"
        shown = []
        for section, actions in finding_pairs(message.blocks):
            assert actions["type"] == "actions"
            buttons = list(iter_buttons([actions]))
            [value] = {b["value"] for b in buttons}
            finding = by_id[value]
            shown.append(value)
            assert f"`{finding.resource_id}`" in section["text"]["text"]
            expected = [ACTION_REJECT, ACTION_SNOOZE]
            if (Provider(finding.provider), finding.kind) in ACTIONABLE:
                expected = [ACTION_APPROVE, *expected]
            assert [b["action_id"] for b in buttons] == expected, finding.id
        assert tuple(shown) == message.finding_ids
        seen += shown
    assert Counter(seen) == Counter(by_id.keys())
    assert seen == [f.id for f in findings], "largest savings first, in store order"

    header = messages[0].blocks[0]["text"]["text"]
    total = sum(f.monthly_savings_usd for f in findings)
    assert header == f"costbot: 500 findings, ${total:,.2f}/month to save"
    fields = "\n".join(f["text"] for f in messages[0].blocks[1]["fields"])
    for expected in ("Idle volume: 350", "Unused public IP: 100", "Oversized instance: 50"):
        assert expected in fields
    assert "AWS: 300" in fields and "GCP: 200" in fields


def test_every_text_respects_slack_limits(store: Store) -> None:
    findings = seed_500(store)
    long_one = make(
        Unit(Provider.AWS, "123456789012", "eu-west-1"),
        "vol-long",
        name="n" * 400,
        reason="& <" * 2000,
        recommendation="snapshot & delete " * 200,
    )
    scan(store, long_one.unit, [long_one])
    messages = summary_messages([store.get(long_one.id), *findings], actionable=ACTIONABLE, now=NOW)
    for message in messages:
        for block in message.blocks:
            if block["type"] == "header":
                assert len(block["text"]["text"]) <= SLACK_MAX_HEADER_TEXT
            if block["type"] == "section":
                if "text" in block:
                    assert len(block["text"]["text"]) <= SLACK_MAX_SECTION_TEXT
                assert len(block.get("fields", [])) <= 10
                for field in block.get("fields", []):
                    assert len(field["text"]) <= SLACK_MAX_FIELD_TEXT
            if "block_id" in block:
                assert len(block["block_id"]) <= SLACK_MAX_BLOCK_ID
            for button in iter_buttons([block]):
                assert len(button["text"]["text"]) <= SLACK_MAX_BUTTON_TEXT
                assert len(button["value"]) <= SLACK_MAX_BUTTON_VALUE
                if "confirm" in button:
                    assert len(button["confirm"]["text"]["text"]) <= SLACK_MAX_CONFIRM_TEXT
    section = messages[0].blocks[3]
    assert section["text"]["text"].startswith("*Idle volume* · `vol-long`")
    assert len(section["text"]["text"]) == SLACK_MAX_SECTION_TEXT
    assert section["text"]["text"].endswith("…")


def test_names_ids_and_reasons_are_escaped(store: Store) -> None:
    unit = Unit(Provider.AWS, "1234<5>&6", "us-east-1")
    nasty = make(
        unit,
        "vol-<x>&y",
        name="<b>db & co</b>",
        reason="idle <!channel> & <@U999|boss>",
        recommendation="delete <https://evil.example|this>",
    )
    scan(store, unit, [nasty])
    store.record_dry_run(nasty.id, ok=False, verdict="missing <perm> & more", actor="t", now=T0)
    finding = store.get(nasty.id)
    blocks = finding_blocks(finding, actionable=ACTIONABLE, now=NOW)
    all_text = [text for block in blocks for _, text in texts(block)]
    assert all_text
    for text in all_text:
        assert "<" not in text and ">" not in text, text
    section = blocks[0]["text"]["text"]
    assert "`vol-&lt;x&gt;&amp;y`" in section
    assert "_&lt;b&gt;db &amp; co&lt;/b&gt;_" in section
    assert "idle &lt;!channel&gt; &amp; &lt;@U999|boss&gt;" in section
    assert "1234&lt;5&gt;&amp;6" in section
    assert "Dry run: ⚠️ missing &lt;perm&gt; &amp; more" in section
    confirm = next(iter_buttons([blocks[1]]))["confirm"]["text"]["text"]
    assert "`vol-&lt;x&gt;&amp;y`" in confirm
    # The raw values still travel in the button value (it is data, not mrkdwn).
    assert {b["value"] for b in iter_buttons([blocks[1]])} == {nasty.id}


def decided(store: Store, to: Status, actor: str) -> StoredFinding:
    finding = make(AWS_EAST, f"vol-{to}", name="web-data")
    scan(store, AWS_EAST, [finding])
    until = NOW + timedelta(days=7) if to is Status.SNOOZED else None
    return store.transition(finding.id, to, actor=actor, now=NOW, snoozed_until=until)


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (Status.APPROVED, "✅ Approved by <@U123ABC> on 2026-11-05 09:00 UTC"),
        (Status.REJECTED, "🚫 Rejected by <@U123ABC> on 2026-11-05 09:00 UTC"),
        (Status.SNOOZED, "😴 Snoozed by <@U123ABC> on 2026-11-05 09:00 UTC until 2026-11-12"),
    ],
)
def test_decided_finding_shows_who_and_no_buttons(store: Store, status: Status, words: str) -> None:
    finding = decided(store, status, "U123ABC")
    decider = last_decider(store, finding.id, finding.status)
    assert decider == Decider("U123ABC", NOW)
    blocks = finding_blocks(finding, actionable=ACTIONABLE, now=NOW, decider=decider)
    assert [b["type"] for b in blocks] == ["section", "context"]
    assert not list(iter_buttons(blocks))
    assert blocks[1]["elements"][0]["text"].startswith(words)


def test_a_cli_actor_is_named_escaped_not_as_a_mention(store: Store) -> None:
    finding = decided(store, Status.REJECTED, "alice <ops@example.com>")
    decider = last_decider(store, finding.id, finding.status)
    assert decider == Decider("alice <ops@example.com>", NOW)
    blocks = finding_blocks(finding, actionable=ACTIONABLE, now=NOW, decider=decider)
    text = blocks[1]["elements"][0]["text"]
    assert "by alice &lt;ops@example.com&gt;" in text
    assert "<@" not in text


def test_resolved_and_failed_findings(store: Store) -> None:
    ok = make(AWS_EAST, "vol-ok")
    failed = make(AWS_EAST, "vol-failed")
    scan(store, AWS_EAST, [ok, failed])
    store.transition(failed.id, Status.APPROVED, actor="U123ABC", now=NOW)
    store.transition(failed.id, Status.FAILED, actor="costbot:cleanup", now=NOW)
    scan(store, AWS_EAST, [failed], NOW)  # vol-ok vanished -> resolved
    resolved = finding_blocks(store.get(ok.id), actionable=ACTIONABLE, now=NOW)
    assert not list(iter_buttons(resolved))
    assert resolved[1]["elements"][0]["text"] == "✔️ Resolved: no longer wasteful"
    again = finding_blocks(store.get(failed.id), actionable=ACTIONABLE, now=NOW)
    assert ACTION_APPROVE in [b["action_id"] for b in iter_buttons(again)]


def cleaned(store: Store) -> StoredFinding:
    finding = make(AWS_EAST, "vol-cleaned")
    scan(store, AWS_EAST, [finding])
    store.transition(finding.id, Status.APPROVED, actor="U123ABC", now=NOW)
    action = store.begin_action(
        finding.id, action="delete_volume", run_id="r1", params={}, actor="costbot:cleanup", now=NOW
    )
    store.finish_action(
        action,
        result="done",
        note="snapshot snap-1 & deleted",
        data={},
        to=Status.CLEANED,
        actor="costbot:cleanup",
        now=NOW,
    )
    return store.get(finding.id)


def test_cleaned_finding_shows_the_outcome_and_no_buttons(store: Store) -> None:
    finding = cleaned(store)
    decider = last_decider(store, finding.id, finding.status)
    blocks = finding_blocks(finding, actionable=ACTIONABLE, now=NOW, decider=decider)
    assert not list(iter_buttons(blocks))
    assert blocks[1]["elements"][0]["text"].startswith("🧹 Cleaned — snapshot snap-1 &amp; deleted")


def test_cleaned_finding_still_names_its_approver(store: Store) -> None:
    finding = cleaned(store)
    assert finding.approved_by == "U123ABC"
    blocks = message_blocks(
        [finding],
        thread=None,
        actionable=ACTIONABLE,
        now=NOW,
        deciders={
            f.id: d for f in [finding] if (d := last_decider(store, f.id, f.status)) is not None
        },
    )
    assert "<@U123ABC>" in blocks[1]["elements"][0]["text"]


def test_message_blocks_rebuild_a_root_with_its_threads_header(store: Store) -> None:
    findings = [make(AWS_EAST, f"vol-{n}", cost=10.0 + n) for n in range(3)]
    scan(store, AWS_EAST, findings)
    shown = store.findings()
    blocks = message_blocks(shown[:2], thread=shown, actionable=ACTIONABLE, now=NOW, deciders={})
    assert blocks[0]["type"] == "header"
    assert "3 findings" in blocks[0]["text"]["text"]
    assert len(finding_pairs(blocks)) == 2
    follow_up = message_blocks(shown[2:], thread=None, actionable=ACTIONABLE, now=NOW, deciders={})
    assert [b["type"] for b in follow_up] == ["section", "actions"]
    assert json.dumps(follow_up)  # plain JSON-serialisable data
