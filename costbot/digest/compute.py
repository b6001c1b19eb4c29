"""The weekly digest's numbers, computed with pandas (the only pandas importer in costbot):
week-over-week totals by provider and account, top services and movers, anomalous days,
currency handling, and the waste/savings figures from the store."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from costbot.model import ACTIVE_STATUSES, CostRow, Status, short_id
from costbot.store import StoredFinding

TOP = 5
ANOMALY_SIGMAS = 3.0
ANOMALY_HISTORY_DAYS = 28
CHART_WEEKS = 4


def week_bounds(week: str) -> tuple[date, date]:
    """'2026-W46' -> (Monday, next Monday)."""
    year, _, number = week.upper().partition("-W")
    start = date.fromisocalendar(int(year), int(number), 1)
    return start, start + timedelta(days=7)


def normal_week(week: str) -> str:
    """'2026-w46' -> '2026-W46' (ValueError if it is not an ISO week)."""
    year, number, _ = week_bounds(week)[0].isocalendar()
    return f"{year}-W{number:02d}"


def last_complete_week(today: date) -> str:
    """The ISO week before the one `today` is in."""
    year, number, _ = (today - timedelta(days=7)).isocalendar()
    return f"{year}-W{number:02d}"


@dataclass(frozen=True)
class Digest:
    """Everything the digest shows, as plain data (JSON-ready via to_json)."""

    week: str
    start: date
    end: date
    currency: str
    total: dict[str, Any]
    by_provider: list[dict[str, Any]]
    by_account: list[dict[str, Any]]
    top_services: list[dict[str, Any]]
    movers_up: list[dict[str, Any]]
    movers_down: list[dict[str, Any]]
    anomalies: list[dict[str, Any]]
    other_currencies: dict[str, float]
    missing: dict[str, str]
    freshness: dict[str, str]
    waste: dict[str, Any]
    savings: dict[str, Any]
    awaiting_approval: list[dict[str, Any]]
    daily: list[dict[str, Any]] = field(default_factory=list)
    cleanups: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `costbot digest --format json` document."""
        out = dict(self.__dict__)
        out["start"], out["end"] = self.start.isoformat(), self.end.isoformat()
        return out


def frame(rows: Sequence[CostRow] | Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """A cost DataFrame from CostRow objects or from column lists (the fast path)."""
    if isinstance(rows, Mapping):
        data = pd.DataFrame(dict(rows))
    else:
        data = pd.DataFrame(
            {
                "day": [r.day for r in rows],
                "provider": [r.provider for r in rows],
                "account": [r.account for r in rows],
                "service": [r.service for r in rows],
                "amount": [r.amount for r in rows],
                "currency": [r.currency for r in rows],
            }
        )
    data["day"] = pd.to_datetime(data["day"])
    for column in ("provider", "account", "service", "currency"):
        data[column] = data[column].astype("category")
    data["amount"] = data["amount"].astype("float64")
    return data


def _convert(data: pd.DataFrame, currency: str, rates: Mapping[str, float]) -> pd.DataFrame:
    factors = {currency: 1.0, **{c: float(r) for c, r in rates.items() if c != currency}}
    factor = data["currency"].map(factors).astype("float64")
    converted = data.assign(value=data["amount"] * factor)
    return converted


def _change(this: float, last: float) -> dict[str, Any]:
    pct = None if last == 0 else round((this - last) / abs(last) * 100, 2)
    return {
        "this_week": round(this, 2),
        "last_week": round(last, 2),
        "change": round(this - last, 2),
        "change_pct": pct,
    }


def _compare(data: pd.DataFrame, keys: list[str], start: pd.Timestamp) -> list[dict[str, Any]]:
    flagged = data.assign(this=data["day"] >= start)
    both = (
        flagged.groupby([*keys, "this"], observed=True)["value"]
        .sum()
        .unstack("this", fill_value=0.0)
        .reindex(columns=[True, False], fill_value=0.0)
    )
    both = both[(both[True] != 0) | (both[False] != 0)]
    out = []
    for key, row in both.iterrows():
        labels = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        out.append({**labels, **_change(float(row[True]), float(row[False]))})
    return out


def compute_digest(
    data: pd.DataFrame,
    findings: Sequence[StoredFinding],
    cleaned_at: Mapping[str, datetime],
    *,
    week: str,
    currency: str,
    rates: Mapping[str, float],
    missing: Mapping[str, str],
    freshness: Mapping[str, datetime],
    now: datetime,
) -> Digest:
    """The digest for ISO `week` from daily cost rows (which must cover the 4 weeks before it)."""
    start, end = week_bounds(week)
    t_start, t_end = pd.Timestamp(start), pd.Timestamp(end)
    data = _convert(data, currency, rates)
    unconverted = data[data["value"].isna()]
    in_week = (unconverted["day"] >= t_start) & (unconverted["day"] < t_end)
    other = unconverted[in_week].groupby("currency", observed=True)["amount"].sum()
    data = data.dropna(subset=["value"])
    two_weeks = data[(data["day"] >= t_start - pd.Timedelta(days=7)) & (data["day"] < t_end)]
    week_rows = two_weeks[two_weeks["day"] >= t_start]
    this_total = float(week_rows["value"].sum())
    last_total = float(two_weeks["value"].sum()) - this_total
    services = _compare(two_weeks, ["provider", "service"], t_start)
    top = sorted((r for r in services if r["this_week"] > 0), key=lambda r: -r["this_week"])[:TOP]
    movers = sorted(services, key=lambda r: -r["change"])
    return Digest(
        week=week,
        start=start,
        end=end,
        currency=currency,
        total=_change(this_total, last_total),
        by_provider=sorted(
            _compare(two_weeks, ["provider"], t_start), key=lambda r: -r["this_week"]
        ),
        by_account=sorted(
            _compare(two_weeks, ["provider", "account"], t_start), key=lambda r: -r["this_week"]
        ),
        top_services=[{k: r[k] for k in ("provider", "service", "this_week")} for r in top],
        movers_up=[r for r in movers if r["change"] > 0][:TOP],
        movers_down=[r for r in reversed(movers) if r["change"] < 0][:TOP],
        anomalies=_anomalies(data, t_start, t_end),
        other_currencies={str(c): round(float(v), 2) for c, v in other.items() if v},
        missing=dict(missing),
        freshness={p: t.isoformat() for p, t in freshness.items()},
        waste=_waste(findings),
        savings=_savings(findings, cleaned_at, start, end),
        awaiting_approval=_awaiting(findings, now),
        daily=_daily(data, t_end),
        cleanups=[
            {"day": t.date().isoformat(), "finding_id": fid}
            for fid, t in cleaned_at.items()
            if t_end - pd.Timedelta(weeks=CHART_WEEKS) <= pd.Timestamp(t.date()) < t_end
        ],
    )


def _anomalies(data: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> list[dict[str, Any]]:
    """Days of the week whose provider total is above mean + 3 sigma of the 28 days before."""
    window = data[
        (data["day"] >= start - pd.Timedelta(days=ANOMALY_HISTORY_DAYS)) & (data["day"] < end)
    ]
    daily = window.groupby(["provider", "day"], observed=True)["value"].sum().unstack(0).fillna(0.0)
    full = pd.date_range(
        start - pd.Timedelta(days=ANOMALY_HISTORY_DAYS), end - pd.Timedelta(days=1)
    )
    daily = daily.reindex(full, fill_value=0.0)
    out = []
    for provider in daily.columns:
        series = daily[provider]
        for day in pd.date_range(start, end - pd.Timedelta(days=1)):
            history = series[
                (series.index >= day - pd.Timedelta(days=ANOMALY_HISTORY_DAYS))
                & (series.index < day)
            ]
            mean, sigma = float(history.mean()), float(history.std(ddof=0))
            value = float(series.get(day, 0.0))
            threshold = mean + ANOMALY_SIGMAS * sigma
            if len(history) and value > threshold and not math.isclose(value, threshold):
                out.append(
                    {
                        "day": day.date().isoformat(),
                        "provider": str(provider),
                        "amount": round(value, 2),
                        "threshold": round(threshold, 2),
                    }
                )
    return out


def _daily(data: pd.DataFrame, end: pd.Timestamp) -> list[dict[str, Any]]:
    recent = data[(data["day"] >= end - pd.Timedelta(weeks=CHART_WEEKS)) & (data["day"] < end)]
    totals = recent.groupby(["day", "provider"], observed=True)["value"].sum()
    return [
        {"day": d.date().isoformat(), "provider": str(p), "amount": round(float(v), 2)}
        for (d, p), v in totals.items()
    ]


def _waste(findings: Sequence[StoredFinding]) -> dict[str, Any]:
    active = [f for f in findings if f.status in ACTIVE_STATUSES]
    by: dict[tuple[str, str], list[float]] = {}
    for f in active:
        by.setdefault((f.provider, str(f.kind)), []).append(f.monthly_savings_usd)
    return {
        "open_findings": len(active),
        "monthly_savings_usd": round(sum(f.monthly_savings_usd for f in active), 2),
        "by_provider_kind": [
            {"provider": p, "kind": k, "count": len(v), "monthly_savings_usd": round(sum(v), 2)}
            for (p, k), v in sorted(by.items(), key=lambda item: -sum(item[1]))
        ],
    }


def _savings(
    findings: Sequence[StoredFinding], cleaned_at: Mapping[str, datetime], start: date, end: date
) -> dict[str, Any]:
    cleaned = {f.id: f for f in findings if f.status is Status.CLEANED}
    this_week = [
        f
        for fid, f in cleaned.items()
        if fid in cleaned_at and start <= cleaned_at[fid].date() < end
    ]
    return {
        "realised_this_week_monthly_usd": round(sum(f.monthly_savings_usd for f in this_week), 2),
        "cleaned_this_week": len(this_week),
        "realised_since_start_monthly_usd": round(
            sum(f.monthly_savings_usd for f in cleaned.values()), 2
        ),
        "cleaned_since_start": len(cleaned),
    }


def _awaiting(findings: Sequence[StoredFinding], now: datetime) -> list[dict[str, Any]]:
    waiting = [f for f in findings if f.status in (Status.OPEN, Status.NOTIFIED)]
    waiting.sort(key=lambda f: -f.monthly_savings_usd)
    return [
        {
            "id": f.id,
            "resource_id": f.resource_id,
            "name": short_id(f.resource_id),
            "kind": str(f.kind),
            "monthly_savings_usd": round(f.monthly_savings_usd, 2),
            "age_days": max(0, (now - f.first_seen).days),
        }
        for f in waiting[:10]
    ]
