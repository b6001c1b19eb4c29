"""`notify` through the real slack_sdk WebClient (costbot's own factory, retry handlers
included) against the fake Slack Web API: root message + threaded follow-ups, what is stored,
what is posted again, and that nothing is lost when Slack refuses or rate-limits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from slack_sdk import WebClient

from cleaners import build_cleaners
from costbot.cleanup import CleanupLine, CleanupReport, Stage
from costbot.cli import cli
from costbot.config import SlackConfig
from costbot.errors import ConfigError
from costbot.model import Status
from costbot.slack.notify import ACTOR, NotifyReport, notify, post_outcomes, web_client
from costbot.store import Store
from tests.conftest import make_config
from tests.slack.conftest import TOKEN
from tests.slack.fake_slack import CHANNEL_ID, Call, FakeSlack, iter_buttons
from tests.slack.seed import AWS_EAST, GCP_CENTRAL, T0, make, scan, volumes

NOW = T0 + timedelta(hours=1)


def posts(fake: FakeSlack) -> list[Call]:
    return fake.calls_to("chat.postMessage")


def shown_ids(call: Call) -> list[str]:
    """The finding ids a posted message carries, from its buttons, in order."""
    ids: list[str] = []
    for button in iter_buttons(call.blocks):
        if button["value"] not in ids:
            ids.append(button["value"])
    return ids


def ok_posts(fake: FakeSlack) -> list[Call]:
    return [c for c in posts(fake) if c.answer and c.answer.get("ok")]


def test_root_then_threaded_follow_ups_and_what_is_stored(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    ids = scan(store, AWS_EAST, volumes(AWS_EAST, 60))

    report = notify(slack_config, store, client, {}, now=NOW)

    assert report == NotifyReport(findings=60, messages=3)
    root, *follow_ups = posts(fake_slack)
    assert len(follow_ups) == 2
    assert root.answer is not None
    root_ts = root.answer["ts"]
    assert "thread_ts" not in root.params
    assert root.blocks[0]["type"] == "header"
    for call in follow_ups:
        assert call.params["thread_ts"] == root_ts
        assert call.blocks[0]["type"] == "section"
    for call in posts(fake_slack):
        assert call.params["channel"] == "#costs"
        assert (call.params["unfurl_links"], call.params["unfurl_media"]) == (False, False)
        assert len(call.blocks) <= 50
        assert call.params["text"]
    assert all(c.authorization == f"Bearer {TOKEN}" for c in fake_slack.calls)
    assert sorted(i for call in posts(fake_slack) for i in shown_ids(call)) == sorted(ids)
    for call in posts(fake_slack):
        assert call.answer is not None
        for fid in shown_ids(call):
            finding = store.get(fid)
            assert finding.status is Status.NOTIFIED
            assert finding.slack_channel == CHANNEL_ID
            assert finding.slack_ts == call.answer["ts"]
            assert finding.slack_thread_ts == root_ts
            assert finding.notified_at == NOW
            assert finding.notified_cost_usd == finding.monthly_cost_usd
            last = store.events(fid)[-1]
            assert (last.actor, last.from_status, last.to_status) == (ACTOR, "open", "notified")
            assert last.data == {"channel": CHANNEL_ID, "ts": call.answer["ts"]}

    again = notify(slack_config, store, client, {}, now=NOW + timedelta(hours=1))
    assert again == NotifyReport(0, 0)
    assert len(posts(fake_slack)) == 3


def test_a_finding_whose_cost_rises_is_posted_again(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    rising, steady, nudged = (
        make(AWS_EAST, "vol-rising", cost=100.0),
        make(AWS_EAST, "vol-steady", cost=50.0),
        make(AWS_EAST, "vol-nudged", cost=80.0),
    )
    scan(store, AWS_EAST, [rising, steady, nudged])
    notify(slack_config, store, client, {}, now=NOW)
    first_ts = store.get(rising.id).slack_ts
    steady_ts = store.get(steady.id).slack_ts

    later = T0 + timedelta(days=1)
    scan(
        store,
        AWS_EAST,
        [
            make(AWS_EAST, "vol-rising", cost=150.0),
            make(AWS_EAST, "vol-steady", cost=50.0),
            make(AWS_EAST, "vol-nudged", cost=80.4),  # +0.5 %: below the repost threshold
        ],
        later,
    )
    report = notify(slack_config, store, client, {}, now=later)

    assert report == NotifyReport(1, 1)
    assert shown_ids(posts(fake_slack)[-1]) == [rising.id]
    reposted = store.get(rising.id)
    assert reposted.status is Status.NOTIFIED
    assert reposted.slack_ts != first_ts
    assert reposted.slack_ts == posts(fake_slack)[-1].answer["ts"]  # type: ignore[index]
    assert reposted.notified_cost_usd == 150.0
    assert store.get(steady.id).slack_ts == steady_ts
    assert notify(slack_config, store, client, {}, now=later) == NotifyReport(0, 0)


def test_a_snoozed_finding_that_comes_back_open_is_posted_again(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    finding = make(AWS_EAST, "vol-sleepy")
    scan(store, AWS_EAST, [finding])
    notify(slack_config, store, client, {}, now=NOW)
    store.transition(
        finding.id, Status.SNOOZED, actor="U1", now=NOW, snoozed_until=NOW + timedelta(days=7)
    )

    scan(store, AWS_EAST, [finding], T0 + timedelta(days=3))
    assert notify(slack_config, store, client, {}) == NotifyReport(0, 0)

    back = T0 + timedelta(days=8)
    scan(store, AWS_EAST, [finding], back)
    assert store.get(finding.id).status is Status.OPEN
    assert notify(slack_config, store, client, {}, now=back) == NotifyReport(1, 1)
    assert [shown_ids(c) for c in posts(fake_slack)] == [[finding.id], [finding.id]]
    again = store.get(finding.id)
    assert again.status is Status.NOTIFIED
    assert again.slack_ts == posts(fake_slack)[-1].answer["ts"]  # type: ignore[index]


def test_channel_not_found_reports_and_keeps_findings_unposted(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    ids = scan(store, AWS_EAST, volumes(AWS_EAST, 3))
    fake_slack.fail("chat.postMessage", "channel_not_found")

    report = notify(slack_config, store, client, {}, now=NOW)

    assert (report.findings, report.messages) == (0, 0)
    assert report.error is not None
    assert "channel_not_found" in report.error
    assert "#costs" in report.error
    assert "3 findings stay unposted" in report.error
    for fid in ids:
        finding = store.get(fid)
        assert (finding.status, finding.slack_ts, finding.notified_at) == (Status.OPEN, None, None)

    assert notify(slack_config, store, client, {}, now=NOW) == NotifyReport(3, 1)
    assert all(store.get(fid).status is Status.NOTIFIED for fid in ids)


def test_a_failure_mid_thread_keeps_the_rest_for_the_next_notify(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    ids = scan(store, AWS_EAST, volumes(AWS_EAST, 30))
    fake_slack.fail("chat.postMessage", "channel_not_found", after=1)

    report = notify(slack_config, store, client, {}, now=NOW)

    [posted] = ok_posts(fake_slack)
    first = shown_ids(posted)
    assert (report.findings, report.messages) == (len(first), 1)
    assert report.error and f"{30 - len(first)} findings stay unposted" in report.error
    rest = [fid for fid in ids if fid not in first]
    assert {store.get(fid).status for fid in first} == {Status.NOTIFIED}
    assert {store.get(fid).status for fid in rest} == {Status.OPEN}

    assert notify(slack_config, store, client, {}, now=NOW) == NotifyReport(len(rest), 1)
    last = ok_posts(fake_slack)[-1]
    assert sorted(shown_ids(last)) == sorted(rest)
    assert {store.get(fid).status for fid in ids} == {Status.NOTIFIED}


def test_a_rate_limit_is_retried_after_retry_after(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    ids = scan(store, AWS_EAST, volumes(AWS_EAST, 2))
    fake_slack.ratelimit("chat.postMessage", retry_after=0)

    report = notify(slack_config, store, client, {}, now=NOW)

    assert report == NotifyReport(2, 1)
    assert [c.status for c in posts(fake_slack)] == [429, 200]
    assert {store.get(fid).status for fid in ids} == {Status.NOTIFIED}


def test_rate_limited_for_good_reports_and_loses_nothing(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    ids = scan(store, AWS_EAST, volumes(AWS_EAST, 2))
    fake_slack.ratelimit("chat.postMessage", times=None, retry_after=0)

    report = notify(slack_config, store, client, {}, now=NOW)

    assert report.error is not None and "ratelimited" in report.error
    assert report.findings == 0
    assert [c.status for c in posts(fake_slack)] == [429] * 4  # 1 try + 3 retries
    assert {store.get(fid).status for fid in ids} == {Status.OPEN}

    fake_slack.clear_failures()
    assert notify(slack_config, store, client, {}, now=NOW) == NotifyReport(2, 1)


def test_a_refused_token_is_reported(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig
) -> None:
    ids = scan(store, AWS_EAST, volumes(AWS_EAST, 1))
    report = notify(slack_config, store, web_client(slack_config, token="xoxp-user"), {})
    assert report.error is not None and "invalid_auth" in report.error
    assert store.get(ids[0]).status is Status.OPEN


def test_web_client_needs_a_token(
    slack_config: SlackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN is not set"):
        web_client(slack_config)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-env")
    assert web_client(slack_config).token == "xoxb-from-env"


@pytest.mark.usefixtures("aws")
def test_notify_dry_runs_first_and_posts_the_verdicts(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    config = make_config("providers:\n  aws:\n    regions: [us-east-1]\n")
    cleaners = build_cleaners(config)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    volume = ec2.create_volume(Size=100, AvailabilityZone="us-east-1a", VolumeType="gp3")
    real = make(AWS_EAST, volume["VolumeId"], cost=8.0)
    gone = make(AWS_EAST, "vol-0000000000000dead", cost=4.0)
    advisory = make(GCP_CENTRAL, "disk-1", cost=2.0)
    scan(store, AWS_EAST, [real, gone])
    scan(store, GCP_CENTRAL, [advisory])

    assert notify(slack_config, store, client, cleaners, now=NOW) == NotifyReport(3, 1)

    [call] = posts(fake_slack)
    sections = {
        b["block_id"]: b["text"]["text"] for b in call.blocks if b.get("block_id", "")[:2] == "f:"
    }
    by_resource = {
        rid: next(t for t in sections.values() if f"`{rid}`" in t)
        for rid in (real.resource_id, gone.resource_id, advisory.resource_id)
    }
    assert (
        f"Dry run: ✅ would snapshot {real.resource_id} (100 GiB gp3) then delete it"
        in (by_resource[real.resource_id])
    )
    assert "(EC2 dry run passed)" in by_resource[real.resource_id]
    assert f"Dry run: ⚠️ {gone.resource_id} no longer exists" in by_resource[gone.resource_id]
    assert "Dry run" not in by_resource[advisory.resource_id]
    approvable = {
        b["value"] for b in iter_buttons(call.blocks) if b["action_id"].endswith("approve")
    }
    assert advisory.id not in approvable
    assert real.id in approvable
    stored = store.get(real.id)
    assert (stored.dry_run_ok, stored.dry_run_at) == (True, NOW)
    assert ec2.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"]  # untouched


# -- cleanup outcomes ------------------------------------------------------------------------


def clean(store: Store, finding_id: str, note: str) -> CleanupLine:
    """Approve from Slack, then record a finished cleanup, as CleanupRun would."""
    store.transition(finding_id, Status.APPROVED, actor="UALICE", data={"via": "slack"})
    action = store.begin_action(
        finding_id, action="delete_volume", run_id="r", params={}, actor="costbot:cleanup", now=NOW
    )
    store.finish_action(
        action, result="done", note=note, data={}, to=Status.CLEANED, actor="c", now=NOW
    )
    finding = store.get(finding_id)
    return CleanupLine(
        finding_id, finding.resource_id, str(finding.kind), Stage.CLEANED, note, 10.0
    )


def test_post_outcomes_replies_in_the_thread_and_updates_the_message(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    done, waiting = scan(
        store, AWS_EAST, [make(AWS_EAST, "vol-a", cost=9.0), make(AWS_EAST, "vol-b")]
    )
    notify(slack_config, store, client, {}, now=NOW)
    [never_posted] = scan(store, GCP_CENTRAL, [make(GCP_CENTRAL, "disk-1")])
    root_ts = store.get(done).slack_ts
    report = CleanupReport(
        "r",
        True,
        (
            clean(store, done, "snapshot snap-1 taken, vol-a deleted"),
            CleanupLine(waiting, "vol-b", "idle_volume", Stage.HELD, "outside the window"),
            CleanupLine(never_posted, "disk-1", "idle_volume", Stage.FAILED, "not on Slack"),
        ),
    )
    before = len(posts(fake_slack))

    post_outcomes(store, client, report, set())

    [reply] = posts(fake_slack)[before:]  # nothing for the held line or the unposted finding
    assert reply.params["channel"] == CHANNEL_ID
    assert reply.params["thread_ts"] == root_ts
    assert reply.params["text"] == "🧹 `vol-a`: cleaned — snapshot snap-1 taken, vol-a deleted"
    [update] = fake_slack.calls_to("chat.update")
    assert update.params["ts"] == root_ts
    contexts = [b["elements"][0]["text"] for b in update.blocks if b["type"] == "context"]
    assert any(c.startswith("🧹 Cleaned — snapshot snap-1 taken, vol-a deleted") for c in contexts)
    assert waiting in {b["value"] for b in iter_buttons(update.blocks)}


def test_post_outcomes_escapes_the_outcome_text(
    store: Store, fake_slack: FakeSlack, slack_config: SlackConfig, client: WebClient
) -> None:
    [fid] = scan(store, AWS_EAST, [make(AWS_EAST, "vol-a")])
    notify(slack_config, store, client, {}, now=NOW)
    line = clean(store, fid, "VolumeInUse: <!channel> look & <https://x.example|fix>")

    post_outcomes(store, client, [line], set())

    text = posts(fake_slack)[-1].params["text"]
    assert "<!channel>" not in text
    assert "&lt;!channel&gt; look &amp; &lt;https://x.example|fix&gt;" in text


# -- the command -----------------------------------------------------------------------------


def write_config(tmp_path: Path, fake: FakeSlack) -> Path:
    path = tmp_path / "costbot.yaml"
    path.write_text(
        f"store:\n  path: {tmp_path / 'cli.db'}\n"
        "pricing:\n  source: bundled\n"
        f'slack:\n  channel: "#costs"\n  api_base_url: "{fake.url}"\n',
        encoding="utf-8",
    )
    return path


def run_notify(path: Path, env: dict[str, Any]) -> Any:
    return CliRunner().invoke(cli, ["--config", str(path), "notify"], env=env)


def test_cli_notify_posts_and_exits_0(tmp_path: Path, fake_slack: FakeSlack) -> None:
    path = write_config(tmp_path, fake_slack)
    cli_store = Store(tmp_path / "cli.db")
    ids = scan(cli_store, AWS_EAST, volumes(AWS_EAST, 3))

    result = run_notify(path, {"SLACK_BOT_TOKEN": TOKEN})

    assert result.exit_code == 0, result.output
    assert "Posted 3 findings in 1 messages to #costs." in result.stdout
    [call] = posts(fake_slack)
    assert call.authorization == f"Bearer {TOKEN}"
    assert sorted(shown_ids(call)) == sorted(ids)
    assert {cli_store.get(fid).status for fid in ids} == {Status.NOTIFIED}


def test_cli_notify_exits_1_naming_the_problem(tmp_path: Path, fake_slack: FakeSlack) -> None:
    path = write_config(tmp_path, fake_slack)
    cli_store = Store(tmp_path / "cli.db")
    ids = scan(cli_store, AWS_EAST, volumes(AWS_EAST, 2))
    fake_slack.fail("chat.postMessage", "channel_not_found")

    result = run_notify(path, {"SLACK_BOT_TOKEN": TOKEN})

    assert result.exit_code == 1, result.output
    assert "channel_not_found" in result.stderr
    assert "#costs" in result.stderr
    assert {cli_store.get(fid).status for fid in ids} == {Status.OPEN}


def test_cli_notify_without_a_token_is_a_config_error(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    path = write_config(tmp_path, fake_slack)
    result = run_notify(path, {"SLACK_BOT_TOKEN": ""})
    assert result.exit_code == 2
    assert "SLACK_BOT_TOKEN is not set" in result.stderr
    assert posts(fake_slack) == []
