"""APScheduler 3.x jobs from config.schedule: one cron trigger per job, coalesced, never two
instances of a job at once, a misfire grace period; a job that fails is logged by Jobs.run
and the scheduler keeps going."""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from costbot.config import ScheduleConfig, cron_trigger
from costbot.jobs import JOB_NAMES


def build_scheduler(schedule: ScheduleConfig, run: Callable[[str], object]) -> BackgroundScheduler:
    """A (not yet started) scheduler with one job per configured cron expression."""
    scheduler = BackgroundScheduler(
        timezone=schedule.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": schedule.misfire_grace_seconds,
        },
    )
    for name in JOB_NAMES:
        expression = getattr(schedule, name)
        if expression is None:
            continue
        scheduler.add_job(
            run,
            cron_trigger(expression, schedule.timezone),
            args=[name],
            id=name,
            name=f"costbot {name}",
        )
    return scheduler
