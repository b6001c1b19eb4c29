"""The schedule and the jobs of `costbot serve`: APScheduler jobs and cron triggers built from
config.schedule, Jobs.run turning every failure into a JobResult (one failing job never stops
the others, in a real running scheduler too), and the token-bucket RateLimiter.

Everything is real: a real store in tmp_path, the real cleaners factory, a real (paused, then
resumed) BackgroundScheduler. Nothing sleeps for a fixed time; waits are bounded by deadlines.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from cleaners import build_cleaners
from costbot.config import Config, ScheduleConfig
from costbot.jobs import JOB_NAMES, JobResult, Jobs
from costbot.ratelimit import RateLimiter
from costbot.scheduler import build_scheduler
from costbot.store import Store
from tests.conftest import make_config

pytestmark = pytest.mark.timeout(60)


# -- the scheduler built from config -----------------------------------------------------------


@pytest.fixture
def started() -> Iterator[list[BackgroundScheduler]]:
    """Schedulers a test started (paused); every one is shut down afterwards."""
    schedulers: list[BackgroundScheduler] = []
    yield schedulers
    for scheduler in schedulers:
        if scheduler.running:
            scheduler.shutdown(wait=False)


def start_paused(scheduler: BackgroundScheduler, started: list[BackgroundScheduler]) -> None:
    """Start without running anything: jobs get their defaults and next run times."""
    started.append(scheduler)
    scheduler.start(paused=True)


def fields(job: Any) -> dict[str, str]:
    return {f.name: str(f) for f in job.trigger.fields}


def record(name: str) -> None:
    """A stand-in for Jobs.run that the paused scheduler never calls."""


def test_one_job_per_configured_expression_with_cron_fields_and_timezone(
    started: list[BackgroundScheduler],
) -> None:
    cron = dict.fromkeys(JOB_NAMES, "0 12 * * sun") | {
        "scan": "15 5 * * *",
        "notify": "30 6 * * mon-fri",
        "cleanup": "*/10 * * * *",
    }
    schedule = ScheduleConfig(timezone="Europe/Berlin", misfire_grace_seconds=120, **cron)
    scheduler = build_scheduler(schedule, record)
    start_paused(scheduler, started)

    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == set(JOB_NAMES)
    assert str(scheduler.timezone) == "Europe/Berlin"
    for name, job in jobs.items():
        assert job.name == f"costbot {name}"
        assert job.args == (name,)
        assert job.func is record
        assert str(job.trigger.timezone) == "Europe/Berlin"
        # the job defaults: coalesced, one instance at a time, the configured grace period
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time == 120
    assert fields(jobs["scan"]) == {
        "year": "*",
        "month": "*",
        "day": "*",
        "week": "*",
        "day_of_week": "*",
        "hour": "5",
        "minute": "15",
        "second": "0",
    }
    assert (fields(jobs["notify"])["day_of_week"], fields(jobs["notify"])["hour"]) == (
        "mon-fri",
        "6",
    )
    assert fields(jobs["cleanup"])["minute"] == "*/10"


def test_cron_times_are_read_in_the_configured_timezone() -> None:
    scheduler = build_scheduler(ScheduleConfig(timezone="Europe/Berlin", scan="0 6 * * *"), record)
    scan = next(job for job in scheduler.get_jobs() if job.id == "scan")
    summer = scan.trigger.get_next_fire_time(None, datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
    winter = scan.trigger.get_next_fire_time(None, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    # 06:00 in Berlin is 04:00 UTC in summer (CEST) and 05:00 UTC in winter (CET)
    assert summer.astimezone(UTC) == datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
    assert winter.astimezone(UTC) == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert summer.tzinfo is not None
    assert summer.utcoffset() == ZoneInfo("Europe/Berlin").utcoffset(summer.replace(tzinfo=None))


def test_numeric_day_of_week_means_what_crontab_means() -> None:
    scheduler = build_scheduler(ScheduleConfig(scan="0 6 * * 1"), record)
    scan = next(job for job in scheduler.get_jobs() if job.id == "scan")
    sunday = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert sunday.strftime("%a") == "Sun"
    fire = scan.trigger.get_next_fire_time(None, sunday)
    assert fire.strftime("%a %H:%M") == "Mon 06:00"


def none_but(**kept: str) -> ScheduleConfig:
    """A schedule with every job off except the ones given."""
    return ScheduleConfig(**dict.fromkeys(JOB_NAMES) | kept)


def test_a_job_set_to_null_is_not_scheduled(started: list[BackgroundScheduler]) -> None:
    scheduler = build_scheduler(none_but(notify="30 6 * * *"), record)
    start_paused(scheduler, started)
    assert [job.id for job in scheduler.get_jobs()] == ["notify"]

    empty = build_scheduler(none_but(), record)
    start_paused(empty, started)
    assert empty.get_jobs() == []


def test_defaults_from_the_config_file_schedule_every_job(
    started: list[BackgroundScheduler],
) -> None:
    config = make_config("schedule:\n  notify: null\n  misfire_grace_seconds: 60\n")
    scheduler = build_scheduler(config.schedule, record)
    start_paused(scheduler, started)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == set(JOB_NAMES) - {"notify"}
    assert fields(jobs["scan"])["hour"] == "6"
    assert fields(jobs["cleanup"])["minute"] == "*/15"
    assert {job.misfire_grace_time for job in jobs.values()} == {60}
    assert str(scheduler.timezone) == "UTC"


# -- Jobs.run: failures are results, never exceptions ------------------------------------------


NO_PROVIDERS = "store:\n  path: {path}\n"


def jobs_for(tmp_path: Path, extra: str = "", **kwargs: Any) -> Jobs:
    path = tmp_path / "jobs.db"
    config = make_config(NO_PROVIDERS.format(path=path) + extra)
    return Jobs(config, Store(path), kwargs.pop("factory", build_cleaners), **kwargs)


def test_scan_without_providers_fails_and_cleanup_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = jobs_for(tmp_path)
    caplog.set_level(logging.INFO, logger="costbot.jobs")

    scan = jobs.run("scan")
    cleanup = jobs.run("cleanup")

    assert isinstance(scan, JobResult)
    assert (scan.job, scan.ok, scan.exit_code) == ("scan", False, 1)
    assert "no provider is configured" in scan.summary["error"]
    assert (cleanup.job, cleanup.ok, cleanup.exit_code) == ("cleanup", True, 0)
    assert cleanup.summary == {"execute": False}
    assert jobs.runs == {("scan", "failed"): 1, ("cleanup", "ok"): 1}
    assert set(jobs.last_success) == {"cleanup"}

    finished = [r for r in caplog.records if r.getMessage() == "job finished"]
    assert [(r.job, r.ok, r.levelname) for r in finished] == [  # type: ignore[attr-defined]
        ("scan", False, "ERROR"),
        ("cleanup", True, "INFO"),
    ]


def test_notify_without_a_slack_section_is_skipped_and_ok(tmp_path: Path) -> None:
    jobs = jobs_for(tmp_path)
    result = jobs.run("notify")
    assert (result.ok, result.exit_code) == (True, 0)
    assert "no slack section" in result.summary["skipped"]
    assert jobs.runs == {("notify", "ok"): 1}


def test_counters_accumulate_across_runs(tmp_path: Path) -> None:
    jobs = jobs_for(tmp_path)
    for _ in range(3):
        jobs.run("scan")
    jobs.run("notify")
    jobs.run("notify")
    assert jobs.runs == {("scan", "failed"): 3, ("notify", "ok"): 2}
    assert set(jobs.last_success) == {"notify"}


class Boom(RuntimeError):
    """Not a CostbotError: what an unexpected bug looks like."""


def exploding_factory(config: Config) -> Any:
    raise Boom("the cleaners factory blew up")


def test_run_never_raises_even_for_an_unexpected_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = jobs_for(tmp_path, factory=exploding_factory)
    caplog.set_level(logging.INFO, logger="costbot.jobs")

    cleanup = jobs.run("cleanup")
    unknown = jobs.run("no-such-job")
    notify = jobs.run("notify")  # does not need the cleaners: still fine

    assert (cleanup.ok, cleanup.exit_code) == (False, 1)
    assert cleanup.summary["error"] == "Boom: the cleaners factory blew up"
    assert (unknown.ok, unknown.exit_code) == (False, 1)
    assert unknown.summary["error"].startswith("KeyError")
    assert notify.ok
    crashed = [r for r in caplog.records if r.getMessage() == "job crashed"]
    assert len(crashed) == 2
    assert all(r.exc_info is not None for r in crashed)
    assert jobs.runs[("cleanup", "failed")] == 1


def test_a_failing_job_does_not_stop_the_running_scheduler(
    tmp_path: Path, started: list[BackgroundScheduler]
) -> None:
    """A real scheduler: scan (fails) and cleanup (ok) are both due now; both run, the
    scheduler keeps running and schedules them again."""
    jobs = jobs_for(tmp_path)
    done: dict[str, JobResult] = {}
    all_done = threading.Event()
    lock = threading.Lock()

    def run(name: str) -> JobResult:
        result = jobs.run(name)
        with lock:
            done[name] = result
            if set(done) == {"scan", "cleanup"}:
                all_done.set()
        return result

    scheduler = build_scheduler(none_but(scan="0 0 1 1 *", cleanup="0 0 1 1 *"), run)
    start_paused(scheduler, started)
    now = datetime.now(UTC)
    for name in ("scan", "cleanup"):
        scheduler.modify_job(name, next_run_time=now)
    scheduler.resume()

    assert all_done.wait(timeout=20), f"jobs did not both run: {done}"
    assert (done["scan"].ok, done["cleanup"].ok) == (False, True)
    assert scheduler.running
    assert jobs.runs == {("scan", "failed"): 1, ("cleanup", "ok"): 1}
    assert {job.id for job in scheduler.get_jobs()} == {"scan", "cleanup"}


# -- the rate limiter --------------------------------------------------------------------------


def test_the_burst_is_free_and_the_rest_waits_about_the_deficit() -> None:
    """Rate 5/s with a burst of 5: 15 tokens in one thread. The first 5 never wait, and the
    10 after them wait at most 1/rate each, so the seconds wait() returns sum to at most 2 s
    (a hard bound) and, unless sleeps overshoot wildly, well over 1 s."""
    rate = 5
    limiter = RateLimiter({"ec2": rate})
    waits = [limiter.wait("ec2") for _ in range(3 * rate)]
    assert waits[:rate] == [0.0] * rate
    assert all(0 <= w <= 1 / rate + 1e-9 for w in waits[rate:])
    assert sum(waits) <= 2 * rate / rate + 1e-9
    assert sum(waits) >= 1.0


def test_several_threads_share_one_bucket() -> None:
    """15 tokens of a 5/s bucket from 3 threads: every call that looked before the 5th grant
    found a token (at least 5 free calls), and the threads together wait at least the 2 s the
    bucket needs to refill 10 tokens, less the sleeps' overshoot."""
    rate, threads, each = 5, 3, 5
    limiter = RateLimiter({"ec2": rate})
    waits: list[float] = []
    lock = threading.Lock()
    go = threading.Barrier(threads)

    def take() -> None:
        go.wait(timeout=10)
        for _ in range(each):
            waited = limiter.wait("ec2")
            with lock:
                waits.append(waited)

    workers = [threading.Thread(target=take) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    assert len(waits) == threads * each
    assert sum(1 for w in waits if w == 0.0) >= rate
    assert sum(waits) >= 1.0


def test_services_have_separate_buckets_and_unlisted_services_are_free() -> None:
    limiter = RateLimiter({"ec2": 2, "sts": 1})
    # drain ec2's burst through botocore's event name, as registered on sessions
    limiter.before_call(event_name="before-call.ec2.DescribeVolumes")
    limiter.before_call(event_name="before-call.ec2.DescribeAddresses")
    assert limiter.wait("sts") == 0.0  # sts's own burst is untouched
    assert limiter.wait("s3") == 0.0  # no rate configured: never limited
    assert [limiter.wait("s3") for _ in range(100)] == [0.0] * 100
    assert limiter.wait("ec2") > 0.0  # ec2's burst was taken by the two before-call events


def test_an_event_name_without_a_service_takes_nothing() -> None:
    limiter = RateLimiter({"ec2": 1})
    limiter.before_call(event_name="before-call")
    limiter.before_call()
    assert limiter.wait("ec2") == 0.0


def test_a_rate_below_one_per_second_still_lets_calls_through() -> None:
    assert make_config("scan:\n  rate_limits: {ec2: 0.5}\n").scan.rate_limits == {"ec2": 0.5}
    code = "from costbot.ratelimit import RateLimiter; RateLimiter({'ec2': 0.5}).wait('ec2')"
    try:
        done = subprocess.run([sys.executable, "-c", code], timeout=5, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("wait() with a rate of 0.5/s did not return within 5 s")
    assert done.returncode == 0
