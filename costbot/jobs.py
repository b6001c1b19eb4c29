"""The jobs costbot runs, once (`costbot run JOB`) or on a schedule (`costbot serve`): scan,
notify and cleanup. Each returns a JobResult with the exit code a scheduler should see, and
logs one structured summary line; the process-wide counters feed /metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from costbot.cleanup import Cleaners, CleanupRun, Stage
from costbot.config import Config
from costbot.errors import CostbotError
from costbot.scan import run_scan
from costbot.store import Store

log = logging.getLogger("costbot.jobs")
JOB_NAMES = ("scan", "notify", "cleanup", "digest")


@dataclass(frozen=True, slots=True)
class JobResult:
    """How one job run ended: ok, partly failed (exit 1), with a summary for logs."""

    job: str
    ok: bool
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when everything succeeded, 1 on any failure (configuration errors exit before)."""
        return 0 if self.ok else 1


class Jobs:
    """Builds and runs jobs against one config and store; thread-safe counters for metrics."""

    def __init__(
        self,
        config: Config,
        store: Store,
        cleaners_factory: Callable[[Config], Cleaners],
        *,
        execute: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self._cleaners_factory = cleaners_factory
        self.execute = execute
        self.runs: Counter[tuple[str, str]] = Counter()
        self.last_success: dict[str, float] = {}
        self._lock = threading.Lock()

    def run(self, job: str) -> JobResult:
        """Run one job by name; its failures become a JobResult, never an exception."""
        started = time.monotonic()
        try:
            jobs = {
                "scan": self.scan,
                "notify": self.notify,
                "cleanup": self.cleanup,
                "digest": self.digest,
            }
            result = jobs[job]()
        except CostbotError as exc:
            result = JobResult(job, False, {"error": str(exc)})
        except Exception as exc:  # a job that raises must not stop the scheduler
            log.exception("job crashed", extra={"job": job})
            result = JobResult(job, False, {"error": f"{type(exc).__name__}: {exc}"})
        seconds = round(time.monotonic() - started, 3)
        with self._lock:
            self.runs[(job, "ok" if result.ok else "failed")] += 1
            if result.ok:
                self.last_success[job] = time.time()
        level = logging.INFO if result.ok else logging.ERROR
        log.log(
            level,
            "job finished",
            extra={"job": job, "ok": result.ok, "seconds": seconds, **result.summary},
        )
        return result

    def scan(self) -> JobResult:
        """Scan every configured provider and store the findings."""
        from costbot.providers import build_price_books, build_providers

        report = run_scan(
            self.config,
            self.store,
            build_providers(self.config),
            build_price_books(self.config, self.store),
        )
        for unit in report.failed:
            log.error(
                "scan unit failed",
                extra={
                    "job": "scan",
                    "provider": str(unit.unit.provider),
                    "account": unit.unit.account,
                    "region": unit.unit.region,
                    "error": unit.error,
                },
            )
        return JobResult(
            "scan",
            not report.failed,
            {
                "run_id": report.run_id,
                "units": len(report.units),
                "failed_units": len(report.failed),
                "findings": len(report.findings),
                "monthly_savings_usd": round(
                    sum(f.monthly_savings_usd for f in report.findings), 2
                ),
            },
        )

    def notify(self) -> JobResult:
        """Post new findings to Slack (nothing to do without a slack section)."""
        if self.config.slack is None:
            return JobResult("notify", True, {"skipped": "no slack section in the config"})
        from costbot.slack.notify import notify, web_client

        report = notify(
            self.config.slack,
            self.store,
            web_client(self.config.slack),
            self._cleaners_factory(self.config),
        )
        summary: dict[str, Any] = {"findings": report.findings, "messages": report.messages}
        if report.error:
            summary["error"] = report.error
        return JobResult("notify", report.error is None, summary)

    def cleanup(self) -> JobResult:
        """Take approved findings through the rails; outcomes reach Slack when configured."""
        cleaners = self._cleaners_factory(self.config)
        report = CleanupRun(self.config, self.store, cleaners, execute=self.execute).run()
        for line in report.lines:
            log.info(
                "cleanup outcome",
                extra={
                    "job": "cleanup",
                    "finding_id": line.finding_id,
                    "stage": str(line.stage),
                    "note": line.text,
                },
            )
        if self.config.slack is not None and report.lines:
            from costbot.slack.notify import post_outcomes, web_client

            try:
                post_outcomes(self.store, web_client(self.config.slack), report, set(cleaners))
            except CostbotError as exc:
                log.warning("slack not updated", extra={"job": "cleanup", "error": str(exc)})
        stages = Counter(str(line.stage) for line in report.lines)
        return JobResult(
            "cleanup", not stages.get(str(Stage.FAILED)), {"execute": report.execute, **stages}
        )

    def digest(self) -> JobResult:
        """Build last week's cost digest and post it to Slack (with its chart) when configured."""
        from costbot.costs import build_cost_sources
        from costbot.digest import build_digest, post_digest
        from costbot.store import utcnow

        sources, unavailable = build_cost_sources(self.config)
        digest = build_digest(self.config, self.store, sources, unavailable, now=utcnow())
        summary: dict[str, Any] = {
            "week": digest.week,
            "total": digest.total["this_week"],
            "currency": digest.currency,
            "missing": sorted(digest.missing),
        }
        if self.config.slack is not None:
            from costbot.slack.notify import web_client

            summary["slack_ts"] = post_digest(
                self.config, web_client(self.config.slack), digest, None
            )
        return JobResult("digest", True, summary)
