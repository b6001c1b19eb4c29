"""Benchmark: Slack time-to-ack of costbot's HTTP mode (`costbot serve --http`).

Slack gives an interactive request 3 seconds; the issue's target is p99 < 100 ms from the
request to the HTTP answer. This runs the real stack on 127.0.0.1, in three processes:

- costbot (this process): its bolt App (build_app, the default process_before_response=False,
  request signing on) behind its threaded WSGI server (http_server), a temporary SQLite store
  whose findings were posted by costbot's own notify();
- a fake Slack Web API (tests/slack/fake_slack.py) for the App's WebClient (auth.test,
  chat.postMessage, chat.update, chat.postEphemeral), in its own process so its work does not
  count as costbot's;
- the load generator: N correctly signed block_actions clicks (approve / reject / snooze in
  turn, each on a different finding, by configured approvers), C at a time from a thread pool,
  each timed from just before the request to the full HTTP answer (time-to-ack).

Warm-up clicks go first and are not counted. Afterwards it waits for the listeners (decision +
chat.update, which run after the ack) and checks every clicked finding changed status once.

Run: python bench/slack_ack.py [--clicks 200] [--concurrency 20] [--warmup 10]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECRET = "bench-signing-secret-0123456789ab"
APPROVERS = ["UALICE", "UBOB", "UCAROL", "UDAVE"]
Click = tuple[str, str, str, str]
"""(action_id, finding id, user id, message ts)"""


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def run_fake(conn: Connection) -> None:
    """Child process: serve the fake Slack Web API until told to stop, then report counts."""
    from tests.slack.fake_slack import FakeSlack

    with FakeSlack() as fake:
        conn.send(fake.url)
        while True:
            message = conn.recv()
            if message == "stop":
                break
            conn.send(Counter(c.method for c in fake.calls if c.answer))
        conn.send(Counter(c.method for c in fake.calls if c.answer))


def run_clicks(
    url: str, response_url: str, batches: list[list[Click]], concurrency: int
) -> list[list[tuple[int | str, float]]]:
    """Child process: send each batch of signed clicks, `concurrency` at a time; each result is
    (HTTP status, or the connection error's name; seconds)."""
    from tests.slack.fake_slack import block_actions_payload, http, signed_request

    def click(job: Click) -> tuple[int | str, float]:
        action_id, fid, user, ts = job
        payload = block_actions_payload(
            action_id=action_id, value=fid, user_id=user, message_ts=ts, response_url=response_url
        )
        body, headers = signed_request(SECRET, payload)
        start = time.perf_counter()
        try:
            reply = http(url, body=body, headers=headers, timeout=30)
        except OSError as exc:
            return type(exc).__name__, time.perf_counter() - start
        return reply.status, reply.seconds

    with ThreadPoolExecutor(concurrency) as pool:
        return [list(pool.map(click, batch)) for batch in batches]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--target-p99-ms", type=float, default=100.0)
    args = parser.parse_args()

    from costbot.config import SlackConfig
    from costbot.model import Status
    from costbot.slack.app import build_app
    from costbot.slack.blocks import ACTION_APPROVE, ACTION_REJECT, ACTION_SNOOZE
    from costbot.slack.notify import notify, web_client
    from costbot.slack.server import http_server
    from costbot.store import Store
    from tests.slack.fake_slack import wait_until
    from tests.slack.seed import ACTIONABLE, AWS_EAST, make, scan

    total = args.warmup + args.clicks
    actions = [ACTION_APPROVE, ACTION_REJECT, ACTION_SNOOZE]
    expected = {
        ACTION_APPROVE: Status.APPROVED,
        ACTION_REJECT: Status.REJECTED,
        ACTION_SNOOZE: Status.SNOOZED,
    }
    spawn = multiprocessing.get_context("spawn")
    fake_end, here = spawn.Pipe()
    fake = spawn.Process(target=run_fake, args=(fake_end,), daemon=True)
    fake.start()
    fake_url = here.recv()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        findings = [make(AWS_EAST, f"vol-{n:05d}", cost=1000.0 - n) for n in range(total)]
        ids = scan(store, AWS_EAST, findings, datetime.now(UTC))
        config = SlackConfig(channel="#costs", approvers=APPROVERS, api_base_url=fake_url)
        client = web_client(config, token="xoxb-bench")
        posted = notify(config, store, client, {})
        jobs: list[Click] = [
            (actions[n % 3], fid, APPROVERS[n % len(APPROVERS)], store.get(fid).slack_ts or "")
            for n, fid in enumerate(ids)
        ]

        approved: list[str] = []
        app = build_app(
            config,
            store,
            client,
            actionable=ACTIONABLE,
            on_approved=approved.append,
            signing_secret=SECRET,
        )
        server = http_server(app, "127.0.0.1", 0)
        serving = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        serving.start()
        url = f"http://127.0.0.1:{server.server_port}/slack/events"
        response_url = fake_url.replace("/api/", "/respond/T111/bench")

        def updates_done() -> int:
            here.send("count")
            return int(here.recv()["chat.update"])

        try:
            start = time.perf_counter()
            with spawn.Pool(1) as pool:
                batches = [jobs[: args.warmup], jobs[args.warmup :]]
                warm, measured = pool.apply(
                    run_clicks, (url, response_url, batches, args.concurrency)
                )
            delivered = sum(1 for status, _ in warm + measured if status == 200)

            def decided_all() -> bool:
                return all(
                    store.get(fid).status is expected[actions[n % 3]] for n, fid in enumerate(ids)
                )

            wait_until(decided_all, timeout=300, what="the decisions")
            settled = -1  # message updates are coalesced per message: wait until they stop
            while (seen := updates_done()) != settled:
                settled = seen
                time.sleep(0.5)
            drained = time.perf_counter() - start
        finally:
            server.shutdown()
            server.server_close()
            here.send("stop")
            calls = here.recv()
            fake.join(10)

        statuses = Counter(status for status, _ in warm + measured)
        acks = sorted(seconds * 1000 for status, seconds in measured if status == 200)
        wrong = [
            fid
            for n, fid in enumerate(ids)
            if store.get(fid).status is not expected[actions[n % 3]]
        ]
        decided = sum(
            1
            for fid in ids
            for e in store.events(fid)
            if e.type == "status" and e.to_status in {"approved", "rejected", "snoozed"}
        )

    p50, p99 = statistics.median(acks), percentile(acks, 99)
    print(
        f"costbot Slack HTTP mode, time-to-ack on 127.0.0.1 ({sys.platform}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]})"
    )
    print(f"findings posted by notify(): {posted.findings} in {posted.messages} messages")
    print(
        f"clicks: {args.clicks} measured (+{args.warmup} warm-up), {args.concurrency} concurrent, "
        "process_before_response=False; load generator and fake Slack in their own processes"
    )
    print(f"answers: {dict(sorted(statuses.items(), key=str))}")
    print(
        f"time-to-ack ms: p50 {p50:.1f}  p90 {percentile(acks, 90):.1f}  p99 {p99:.1f}  "
        f"max {acks[-1]:.1f}  (min {acks[0]:.1f}, mean {statistics.fmean(acks):.1f})"
    )
    slow = [a for a in acks if a >= 1000]
    print(f"acks >= 1 s: {len(slow)} (time-to-ack counts answered clicks only)")
    print(
        f"all {delivered} decisions recorded and their messages updated "
        f"({calls.get('chat.update', 0)} coalesced chat.update calls) {drained:.2f} s after the "
        "first click"
    )
    print(
        f"store: {total - len(wrong)}/{total} findings in the expected status, {decided} decision "
        f"events, {len(approved)} approvals queued; fake Slack answered "
        f"{dict(sorted(calls.items()))}"
    )
    ok = p99 < args.target_p99_ms and not wrong and statuses == Counter({200: total})
    print(f"target p99 < {args.target_p99_ms:g} ms: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
