"""Prometheus text exposition for /metrics, computed from the store on each scrape (so every
replica reports the same truth) plus this process's job counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from costbot.jobs import Jobs
from costbot.model import ACTIVE_STATUSES, Status
from costbot.store import Store

Sample = tuple[Mapping[str, str], float]


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    escaped = (
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in sorted(labels.items())
    )
    return "{" + ",".join(escaped) + "}"


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(labels)} {float(value)!r}" for labels, value in samples]
    return lines


def _epoch(text: str | None) -> float:
    return datetime.fromisoformat(text).timestamp() if text else 0.0


def render_metrics(store: Store, jobs: Jobs | None = None) -> str:
    """The whole /metrics page."""
    stats = store.stats()
    findings = stats["findings"]
    active = {str(s) for s in ACTIVE_STATUSES}

    def by_kind(rows: Iterable[dict[str, Any]], value: str) -> list[Sample]:
        totals: dict[tuple[str, str], float] = {}
        for r in rows:
            key = (r["provider"], r["kind"])
            totals[key] = totals.get(key, 0.0) + float(r[value] or 0)
        return [({"provider": p, "kind": k}, v) for (p, k), v in sorted(totals.items())]

    open_rows = [r for r in findings if r["status"] in active]
    cleaned = [r for r in findings if r["status"] == Status.CLEANED]
    lines: list[str] = []
    lines += _family(
        "costbot_findings_open",
        "gauge",
        "Findings still describing live waste, by provider and kind.",
        by_kind(open_rows, "n"),
    )
    lines += _family(
        "costbot_findings",
        "gauge",
        "All findings by provider, kind and status.",
        [
            ({"provider": r["provider"], "kind": r["kind"], "status": r["status"]}, r["n"])
            for r in findings
        ],
    )
    lines += _family(
        "costbot_monthly_savings_open_usd",
        "gauge",
        "Monthly savings of open findings (USD).",
        by_kind(open_rows, "savings"),
    )
    lines += _family(
        "costbot_monthly_savings_realised_usd",
        "gauge",
        "Monthly savings of cleaned findings (USD).",
        by_kind(cleaned, "savings"),
    )
    unit = ("provider", "account", "region")
    lines += _family(
        "costbot_last_successful_scan_timestamp_seconds",
        "gauge",
        "When each account/region was last scanned successfully (Unix time).",
        [({k: r[k] for k in unit}, _epoch(r["finished_at"])) for r in stats["last_success"]],
    )
    lines += _family(
        "costbot_scan_duration_seconds",
        "gauge",
        "Duration of the latest scan of each account/region.",
        [
            ({k: r[k] for k in unit}, _epoch(r["finished_at"]) - _epoch(r["started_at"]))
            for r in stats["latest_scans"]
        ],
    )
    lines += _family(
        "costbot_scan_up",
        "gauge",
        "1 if the latest scan of the account/region succeeded, else 0.",
        [({k: r[k] for k in unit}, r["ok"]) for r in stats["latest_scans"]],
    )
    lines += _family(
        "costbot_scan_errors_total",
        "counter",
        "Failed scans (API errors) by provider and region.",
        [
            ({"provider": r["provider"], "region": r["region"]}, r["n"])
            for r in stats["scan_errors"]
        ],
    )
    lines += _family(
        "costbot_cleanup_actions_total",
        "counter",
        "Cleanup actions by action and result.",
        [({"action": r["action"], "result": r["result"]}, r["n"]) for r in stats["actions"]],
    )
    if jobs is not None:
        lines += _family(
            "costbot_job_runs_total",
            "counter",
            "Job runs in this process.",
            [({"job": j, "outcome": o}, n) for (j, o), n in sorted(jobs.runs.items())],
        )
        lines += _family(
            "costbot_job_last_success_timestamp_seconds",
            "gauge",
            "When each job last succeeded in this process (Unix time).",
            [({"job": j}, t) for j, t in sorted(jobs.last_success.items())],
        )
    return "\n".join(lines) + "\n"
