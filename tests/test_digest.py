"""The weekly cost digest: numbers checked against hand-computed expectations from small,
explicit row sets; ISO weeks and time zones; the anomaly rule; currency conversion; waste and
savings from the store; JSON / Markdown / text output and the chart through the real CLI; a
failing or unconfigured provider; posting to a local fake of Slack's Web API (including the
three calls of files.upload_v2).

Expected values are written out by hand in the comments next to them, never computed by the
code under test.
"""

from __future__ import annotations

import json
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from costbot.cli import cli
from costbot.config import Config
from costbot.costs import build_cost_sources
from costbot.digest import build_digest, post_digest
from costbot.digest.chart import render_chart
from costbot.digest.compute import (
    Digest,
    compute_digest,
    frame,
    last_complete_week,
    week_bounds,
)
from costbot.digest.render import digest_blocks, digest_markdown
from costbot.errors import ConfigError
from costbot.jobs import Jobs
from costbot.model import CostRow, Finding, Kind, Provider, Status, Unit
from costbot.store import Store
from tests.conftest import make_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
W46 = "2026-W46"  # Monday 2026-11-09 .. Sunday 2026-11-15; W45 is 2026-11-02 .. 2026-11-08
W46_START, W46_END = date(2026, 11, 9), date(2026, 11, 16)
W45_START = date(2026, 11, 2)
A1, A2 = "111111111111", "222222222222"
SUB = "33333333-3333-3333-3333-333333333333"
MON_AFTER_W46 = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)  # a Tuesday: W46 is the last week
JSON_KEYS = {
    "week",
    "start",
    "end",
    "currency",
    "total",
    "by_provider",
    "by_account",
    "top_services",
    "movers_up",
    "movers_down",
    "anomalies",
    "other_currencies",
    "missing",
    "freshness",
    "waste",
    "savings",
    "awaiting_approval",
    "daily",
    "cleanups",
}
CHANGE_KEYS = {"this_week", "last_week", "change", "change_pct"}


def change(this: float, last: float, diff: float, pct: float | None) -> dict[str, Any]:
    """The four numbers of every week-over-week comparison."""
    return {"this_week": this, "last_week": last, "change": diff, "change_pct": pct}


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=n) for n in range(count)]


def daily(
    provider: str,
    account: str,
    service: str,
    amount: float,
    on: Iterable[date],
    currency: str = "USD",
) -> list[CostRow]:
    return [CostRow(d, provider, account, service, amount, currency) for d in on]


def digest_of(rows: list[CostRow], week: str = W46, **kwargs: Any) -> Digest:
    options: dict[str, Any] = {
        "currency": "USD",
        "rates": {},
        "missing": {},
        "freshness": {},
        "now": MON_AFTER_W46,
    }
    options.update(kwargs)
    return compute_digest(frame(rows), [], {}, week=week, **options)


def seed_cache(store: Store, rows: list[CostRow], fetched_at: datetime) -> None:
    """Put rows in the daily cost cache as if fetched (and settled) at `fetched_at`."""
    by_provider: dict[str, list[CostRow]] = {}
    for row in rows:
        by_provider.setdefault(row.provider, []).append(row)
    for provider, mine in by_provider.items():
        store.replace_costs(provider, sorted({r.day for r in mine}), mine, fetched_at)


# -- the main row set: hand-computed totals, changes, top services, movers, accounts ------------
#
#   provider/account/service   W45 per day -> W46 per day   W45 -> W46 (change, %)
#   aws/A1/EC2                 100 -> 120                   700 -> 840  (+140, +20.0)
#   aws/A2/S3                   50 -> 40                    350 -> 280  (-70, -20.0)
#   aws/A1/Lambda                5 -> none                   35 -> 0    (-35, -100.0)
#   gcp/proj-a/BigQuery       none -> 30                      0 -> 210  (+210, None)
#   gcp/proj-a/Storage           5 -> 5                      35 -> 35   (0)
#   azure/SUB/VM                20 -> 20                    140 -> 140  (0)
#
#   total       W45 = 700 + 350 + 35 + 35 + 140 = 1260;  W46 = 840 + 280 + 210 + 35 + 140 = 1505
#               change +245, 245 / 1260 = 19.444..%  -> 19.44
#   aws         1085 -> 1120, +35, 35 / 1085 = 3.2258% -> 3.23
#   gcp           35 -> 245, +210, 600.0%
#   azure        140 -> 140, 0, 0.0%
#   aws/A1       735 -> 840, +105, 105 / 735 = 14.2857% -> 14.29
#   aws/A2       350 -> 280, -70, -20.0%


def main_rows() -> list[CostRow]:
    last, this = days(W45_START, 7), days(W46_START, 7)
    return [
        *daily("aws", A1, "EC2", 100, last),
        *daily("aws", A1, "EC2", 120, this),
        *daily("aws", A2, "S3", 50, last),
        *daily("aws", A2, "S3", 40, this),
        *daily("aws", A1, "Lambda", 5, last),
        *daily("gcp", "proj-a", "BigQuery", 30, this),
        *daily("gcp", "proj-a", "Storage", 5, last + this),
        *daily("azure", SUB, "VM", 20, last + this),
    ]


def test_totals_changes_top_services_movers_and_accounts() -> None:
    d = digest_of(main_rows())
    assert (d.week, d.start, d.end, d.currency) == (W46, W46_START, W46_END, "USD")
    assert d.total == change(1505.0, 1260.0, 245.0, 19.44)
    assert d.by_provider == [
        {"provider": "aws", **change(1120.0, 1085.0, 35.0, 3.23)},
        {"provider": "gcp", **change(245.0, 35.0, 210.0, 600.0)},
        {"provider": "azure", **change(140.0, 140.0, 0.0, 0.0)},
    ]
    assert d.by_account == [
        {"provider": "aws", "account": A1, **change(840.0, 735.0, 105.0, 14.29)},
        {"provider": "aws", "account": A2, **change(280.0, 350.0, -70.0, -20.0)},
        {"provider": "gcp", "account": "proj-a", **change(245.0, 35.0, 210.0, 600.0)},
        {"provider": "azure", "account": SUB, **change(140.0, 140.0, 0.0, 0.0)},
    ]
    assert d.top_services == [
        {"provider": "aws", "service": "EC2", "this_week": 840.0},
        {"provider": "aws", "service": "S3", "this_week": 280.0},
        {"provider": "gcp", "service": "BigQuery", "this_week": 210.0},
        {"provider": "azure", "service": "VM", "this_week": 140.0},
        {"provider": "gcp", "service": "Storage", "this_week": 35.0},
    ]
    assert d.movers_up == [
        {"provider": "gcp", "service": "BigQuery", **change(210.0, 0.0, 210.0, None)},
        {"provider": "aws", "service": "EC2", **change(840.0, 700.0, 140.0, 20.0)},
    ]
    assert d.movers_down == [
        {"provider": "aws", "service": "S3", **change(280.0, 350.0, -70.0, -20.0)},
        {"provider": "aws", "service": "Lambda", **change(0.0, 35.0, -35.0, -100.0)},
    ]
    assert d.other_currencies == {}
    # the chart series: the four weeks before the end, per day and provider, W45 + W46 here
    assert len(d.daily) == 14 * 3
    assert {"day": "2026-11-15", "provider": "aws", "amount": 160.0} in d.daily  # 120 + 40
    assert {"day": "2026-11-02", "provider": "aws", "amount": 155.0} in d.daily  # 100 + 50 + 5
    assert {"day": "2026-11-15", "provider": "gcp", "amount": 35.0} in d.daily  # 30 + 5


def test_rows_outside_the_two_weeks_do_not_count() -> None:
    rows = [
        *main_rows(),
        CostRow(date(2026, 11, 1), "aws", A1, "EC2", 1000.0, "USD"),  # W44 Sunday
        CostRow(date(2026, 11, 16), "aws", A1, "EC2", 1000.0, "USD"),  # W47 Monday
    ]
    d = digest_of(rows)
    assert d.total == change(1505.0, 1260.0, 245.0, 19.44)
    assert not any(r["day"] == "2026-11-16" for r in d.daily)


def test_top_services_lists_only_services_that_spent_this_week() -> None:
    rows = [
        *daily("aws", A1, "EC2", 100, days(W46_START, 7)),
        *daily("aws", A1, "Lambda", 5, days(W45_START, 7)),  # nothing this week
    ]
    d = digest_of(rows)
    assert d.top_services == [{"provider": "aws", "service": "EC2", "this_week": 700.0}]


@pytest.mark.parametrize(
    ("week_with_rows", "total"),
    [
        (W46_START, change(130.0, 0.0, 130.0, None)),
        (W45_START, change(0.0, 130.0, -130.0, -100.0)),
    ],
    ids=["only-W46", "only-W45"],
)
def test_one_week_without_rows_and_many_services(
    week_with_rows: date, total: dict[str, Any]
) -> None:
    # 130 services at 1.00 on one Monday, nothing in the other week: 130 against 0
    rows = [
        CostRow(week_with_rows, "gcp", "proj-a", f"service-{n:03d}", 1.0, "USD") for n in range(130)
    ]
    assert digest_of(rows).total == total


def test_one_week_without_rows_and_few_services() -> None:
    # the same with 126 services works: 126 against 0
    rows = [CostRow(W46_START, "gcp", "proj-a", f"service-{n:03d}", 1.0, "USD") for n in range(126)]
    d = digest_of(rows)
    assert d.total == change(126.0, 0.0, 126.0, None)
    assert len(d.movers_up) == 5 and d.movers_down == []


# -- a week with a missing day -------------------------------------------------------------------


def test_a_week_with_a_missing_day() -> None:
    # aws/A1/EC2 at 100 a day for the 28 days of history (2026-10-12 .. 11-08) and W46 except
    # Wednesday 2026-11-11, for which no row exists.
    history = days(date(2026, 10, 12), 28)
    this = [d for d in days(W46_START, 7) if d != date(2026, 11, 11)]
    d = digest_of(daily("aws", A1, "EC2", 100, history + this))
    # W46 = 6 * 100 = 600, W45 = 700: -100, -14.2857% -> -14.29
    assert d.total == change(600.0, 700.0, -100.0, -14.29)
    week_days = [r["day"] for r in d.daily if r["day"] >= "2026-11-09"]
    assert week_days == [
        "2026-11-09",
        "2026-11-10",
        "2026-11-12",
        "2026-11-13",
        "2026-11-14",
        "2026-11-15",
    ]
    # a missing day is not an anomaly (0 is below every threshold); the days after it, whose
    # history now holds the zero, have thresholds above 100, so nothing is flagged
    assert d.anomalies == []


# -- the anomaly rule: above mean + 3 sigma (population) of the 28 days before -----------------
#
# History 2026-10-12 .. 2026-11-08 alternates 90, 110 (14 of each): mean 100, population
# sigma exactly 10 (every deviation is +-10), so the threshold for Monday 2026-11-09 is 130.
# The sample sigma would be sqrt(2800 / 27) = 10.1835 and the threshold 130.55.


def anomaly_rows(monday: float, provider: str = "aws") -> list[CostRow]:
    history = days(date(2026, 10, 12), 28)
    rows = [
        CostRow(d, provider, A1, "EC2", 90.0 if n % 2 == 0 else 110.0, "USD")
        for n, d in enumerate(history)
    ]
    rows.append(CostRow(W46_START, provider, A1, "EC2", monday, "USD"))
    rows += daily(provider, A1, "EC2", 100.0, days(W46_START + timedelta(days=1), 6))
    return rows


@pytest.mark.parametrize(
    ("monday", "flagged"),
    [
        (130.4, True),  # above 130 (population), below 130.55 (sample): population sigma used
        (130.0, False),  # exactly on the threshold: not above it
        (129.99, False),
        (250.0, True),
    ],
)
def test_anomaly_threshold_is_mean_plus_3_population_sigma(monday: float, flagged: bool) -> None:
    d = digest_of(anomaly_rows(monday))
    if flagged:
        assert d.anomalies == [
            {"day": "2026-11-09", "provider": "aws", "amount": monday, "threshold": 130.0}
        ]
    else:
        assert d.anomalies == []


def test_anomalies_are_per_provider() -> None:
    # gcp gets the same history and a quiet Monday; only aws's 200 is flagged
    rows = anomaly_rows(200.0, "aws") + anomaly_rows(100.0, "gcp")
    d = digest_of(rows)
    assert d.anomalies == [
        {"day": "2026-11-09", "provider": "aws", "amount": 200.0, "threshold": 130.0}
    ]


def test_anomaly_later_in_the_week_uses_its_own_28_days() -> None:
    # 28 days of 100 before Sunday 2026-11-15 (2026-10-18 .. 11-14): sigma 0, threshold 100.
    # Sunday 100.5 is above it; Monday..Saturday at 100 are not.
    rows = daily("aws", A1, "EC2", 100.0, days(date(2026, 10, 12), 34))
    rows.append(CostRow(date(2026, 11, 15), "aws", A1, "EC2", 100.5, "USD"))
    d = digest_of(rows)
    assert d.anomalies == [
        {"day": "2026-11-15", "provider": "aws", "amount": 100.5, "threshold": 100.0}
    ]


# -- ISO weeks, year ends, last complete week, time zones ---------------------------------------


def test_years_with_53_iso_weeks() -> None:
    # an ISO year has 53 weeks when it starts on a Thursday (or on a Wednesday in a leap year)
    assert [y for y in range(2015, 2041) if date(y, 12, 28).isocalendar()[1] == 53] == [
        2015,
        2020,
        2026,
        2032,
        2037,
    ]


def test_week_bounds_across_the_year_end() -> None:
    assert week_bounds("2026-W53") == (date(2026, 12, 28), date(2027, 1, 4))
    assert week_bounds("2027-W01") == (date(2027, 1, 4), date(2027, 1, 11))
    assert week_bounds("2020-W53") == (date(2020, 12, 28), date(2021, 1, 4))
    assert week_bounds("2026-W01") == (date(2025, 12, 29), date(2026, 1, 5))
    assert week_bounds("2026-w46") == (W46_START, W46_END)
    for bad in ("2027-W53", "2021-W53", "2026-W00", "2026-W54", "2026W46", "last week"):
        with pytest.raises(ValueError):
            week_bounds(bad)


@pytest.mark.parametrize(
    ("today", "week"),
    [
        (date(2026, 11, 22), "2026-W46"),  # Sunday: W47 is not over yet
        (date(2026, 11, 23), "2026-W47"),  # Monday: W47 just ended
        (date(2027, 1, 3), "2026-W52"),  # Sunday of 2026-W53
        (date(2027, 1, 4), "2026-W53"),  # Monday of 2027-W01
        (date(2027, 1, 10), "2026-W53"),  # Sunday of 2027-W01
        (date(2027, 1, 11), "2027-W01"),  # Monday of 2027-W02
        (date(2026, 1, 5), "2026-W01"),  # Monday of 2026-W02; W01 began 2025-12-29
    ],
)
def test_last_complete_week(today: date, week: str) -> None:
    assert last_complete_week(today) == week


def test_a_week_spanning_the_year_end() -> None:
    # 2026-W52 = 12-21 .. 12-27 at 10 a day (70); 2026-W53 = 12-28 .. 2027-01-03 at 20 (140);
    # 999 on 12-20 (W51) and on 2027-01-04 (2027-W01) count in neither week
    rows = [
        *daily("aws", A1, "EC2", 10, days(date(2026, 12, 21), 7)),
        *daily("aws", A1, "EC2", 20, days(date(2026, 12, 28), 7)),
        CostRow(date(2026, 12, 20), "aws", A1, "EC2", 999.0, "USD"),
        CostRow(date(2027, 1, 4), "aws", A1, "EC2", 999.0, "USD"),
    ]
    d = digest_of(rows, week="2026-W53", now=datetime(2027, 1, 4, 9, tzinfo=UTC))
    assert (d.start, d.end) == (date(2026, 12, 28), date(2027, 1, 4))
    assert d.total == change(140.0, 70.0, 70.0, 100.0)
    week_days = sorted(r["day"] for r in d.daily if r["day"] >= "2026-12-28")
    assert week_days[0] == "2026-12-28" and week_days[-1] == "2027-01-03"
    assert len(week_days) == 7


def test_build_digest_on_the_monday_after_53_weeks(store: Store) -> None:
    d = build_digest(make_config(), store, [], {}, now=datetime(2027, 1, 4, 9, tzinfo=UTC))
    assert (d.week, d.start, d.end) == ("2026-W53", date(2026, 12, 28), date(2027, 1, 4))


@pytest.mark.parametrize(
    ("now", "timezone", "week"),
    [
        # Sunday 2026-11-22 23:30 UTC is already Monday 00:30 in Berlin
        (datetime(2026, 11, 22, 23, 30, tzinfo=UTC), "UTC", "2026-W46"),
        (datetime(2026, 11, 22, 23, 30, tzinfo=UTC), "Europe/Berlin", "2026-W47"),
        # Monday 2026-11-23 03:00 UTC is still Sunday 22:00 in New York
        (datetime(2026, 11, 23, 3, 0, tzinfo=UTC), "UTC", "2026-W47"),
        (datetime(2026, 11, 23, 3, 0, tzinfo=UTC), "America/New_York", "2026-W46"),
        # Sunday 2026-11-22 11:30 UTC is Monday 00:30 in Auckland (UTC+13 in November)
        (datetime(2026, 11, 22, 11, 30, tzinfo=UTC), "Pacific/Auckland", "2026-W47"),
        (datetime(2026, 11, 22, 10, 30, tzinfo=UTC), "Pacific/Auckland", "2026-W46"),
    ],
)
def test_digest_timezone_decides_which_week_is_last(
    store: Store, now: datetime, timezone: str, week: str
) -> None:
    config = make_config(f"digest:\n  timezone: {timezone}\n")
    assert build_digest(config, store, [], {}, now=now).week == week


def test_a_bad_week_is_a_config_error(store: Store) -> None:
    with pytest.raises(ConfigError, match="2027-W53"):
        build_digest(make_config(), store, [], {}, now=MON_AFTER_W46, week="2027-W53")


def test_week_is_normalised(store: Store) -> None:
    d = build_digest(make_config(), store, [], {}, now=MON_AFTER_W46, week="2026-w46")
    assert d.week == W46


# -- currency ---------------------------------------------------------------------------------
#
#   aws/A1/EC2         USD 100 a day, both weeks           700 -> 700
#   aws/A1/S3          EUR  50 a day, both weeks (x 1.1)   385 -> 385
#   azure/SUB/VM       EUR  20 a day, W46 only (x 1.1)       0 -> 154
#   gcp/proj-a/BQ      GBP  10 a day W45, 30 a day W46: no rate -> excluded, W46 = 210 GBP
#   gcp/proj-a/GCS     JPY 1000 on 2026-11-12 only: no rate -> excluded
#   total: 1085 -> 1239, +154, 154 / 1085 = 14.1935% -> 14.19


def currency_rows() -> list[CostRow]:
    last, this = days(W45_START, 7), days(W46_START, 7)
    return [
        *daily("aws", A1, "EC2", 100, last + this),
        *daily("aws", A1, "S3", 50, last + this, "EUR"),
        *daily("azure", SUB, "VM", 20, this, "EUR"),
        *daily("gcp", "proj-a", "BQ", 10, last, "GBP"),
        *daily("gcp", "proj-a", "BQ", 30, this, "GBP"),
        CostRow(date(2026, 11, 12), "gcp", "proj-a", "GCS", 1000.0, "JPY"),
    ]


def test_currency_rates_convert_and_unknown_currencies_are_reported_not_summed(
    store: Store,
) -> None:
    seed_cache(store, currency_rows(), datetime(2026, 11, 16, 12, tzinfo=UTC))
    config = make_config("digest:\n  rates: {EUR: 1.1}\n")
    d = build_digest(config, store, [], {}, now=MON_AFTER_W46, week=W46)
    assert d.currency == "USD"
    assert d.total == change(1239.0, 1085.0, 154.0, 14.19)
    assert d.other_currencies == {"GBP": 210.0, "JPY": 1000.0}
    assert [p["provider"] for p in d.by_provider] == ["aws", "azure"]  # gcp: nothing converted
    assert d.by_provider[0]["this_week"] == 1085.0
    assert d.by_provider[1] == {
        "provider": "azure",
        **change(154.0, 0.0, 154.0, None),
    }
    assert d.top_services == [
        {"provider": "aws", "service": "EC2", "this_week": 700.0},
        {"provider": "aws", "service": "S3", "this_week": 385.0},
        {"provider": "azure", "service": "VM", "this_week": 154.0},
    ]
    assert not any(r["provider"] == "gcp" for r in d.daily)
    text = digest_markdown(d, markdown=False)
    assert "not converted (no rate for GBP): 210.00 GBP" in text
    assert "not converted (no rate for JPY): 1,000.00 JPY" in text
    context = digest_blocks(d)[-1]["elements"][0]["text"]
    assert "not converted: 210.00 GBP, 1,000.00 JPY" in context


def test_digest_in_euros() -> None:
    # currency EUR, rates {USD: 0.9}: EC2 100 USD -> 90 EUR a day (630 a week); S3 350; VM 140
    # total 980 -> 1120, +140, 140 / 980 = 14.2857% -> 14.29; GBP and JPY still unconverted
    d = digest_of(currency_rows(), currency="EUR", rates={"USD": 0.9})
    assert d.total == change(1120.0, 980.0, 140.0, 14.29)
    assert d.other_currencies == {"GBP": 210.0, "JPY": 1000.0}


def test_a_rate_for_the_digest_currency_itself_is_ignored() -> None:
    rows = daily("aws", A1, "EC2", 100, days(W46_START, 7))
    d = digest_of(rows, rates={"USD": 2.0})
    assert d.total["this_week"] == 700.0


# -- waste and savings from the store ----------------------------------------------------------
#
# us-east-1 scanned 2026-10-20 08:00, eu-west-1 2026-11-12 08:00, gcp 2026-11-16 10:00;
# digest of W46 at 2026-11-17 09:00 (ages 28, 5 and 0 days).
#
#   vol-a  idle      40.00  open                                -> waste, awaiting (28 d)
#   vol-b  idle     100.00  cleaned 2026-11-11 10:00             -> realised this week
#   vol-c  idle      25.00  cleaned 2026-11-03 (W45)             -> since start only
#   i-d    oversize  60.00  rejected                             -> nowhere
#   eip-e  ip         3.65  snoozed                              -> waste only
#   eip-f  ip         7.30  notified (eu-west-1)                 -> waste, awaiting (5 d)
#   vol-g  idle      12.50  approved, not cleaned (eu-west-1)    -> waste only
#   vol-h  idle       9.00  cleaned 2026-11-16 01:00 (after W46) -> since start only
#   disk-i idle      20.00  open (gcp)                           -> waste, awaiting (0 d)
#
#   waste: 5 open findings, 40 + 3.65 + 7.30 + 12.50 + 20 = 83.45
#     aws idle_volume 2 (52.50), gcp idle_volume 1 (20.00), aws unattached_ip 2 (10.95)
#   savings: this week 100.00 (1); since start 100 + 25 + 9 = 134.00 (3)


def finding(unit: Unit, kind: Kind, resource_id: str, savings: float) -> Finding:
    return Finding(
        unit=unit,
        kind=kind,
        resource_id=resource_id,
        reason="test",
        monthly_cost_usd=savings,
        monthly_savings_usd=savings,
        price_source="bundled",
        price_date="2026-11-01",
        recommendation="delete it",
    )


def scan(store: Store, unit: Unit, at: datetime, findings: list[Finding]) -> dict[str, str]:
    store.record_scan(
        unit,
        run_id=f"run-{unit.region}",
        started_at=at,
        finished_at=at + timedelta(minutes=1),
        findings=findings,
        resource_counts={"volumes": len(findings)},
    )
    return {f.resource_id: f.id for f in findings}


def clean(store: Store, finding_id: str, at: datetime) -> None:
    store.transition(finding_id, Status.APPROVED, actor="U0APPROVER", now=at - timedelta(hours=1))
    action = store.begin_action(
        finding_id,
        action="delete_volume",
        run_id="cleanup-1",
        params={"snapshot": True},
        actor="costbot:cleanup",
        now=at - timedelta(minutes=1),
    )
    store.finish_action(
        action,
        result="ok",
        note="deleted",
        data={},
        to=Status.CLEANED,
        actor="costbot:cleanup",
        now=at,
    )


@pytest.fixture
def findings_store(store: Store) -> tuple[Store, dict[str, str]]:
    east = Unit(Provider.AWS, A1, "us-east-1")
    west = Unit(Provider.AWS, A1, "eu-west-1")
    gcp = Unit(Provider.GCP, "proj-aaaa", "us-central1-a")
    ids = scan(
        store,
        east,
        datetime(2026, 10, 20, 8, tzinfo=UTC),
        [
            finding(east, Kind.IDLE_VOLUME, "vol-a", 40.0),
            finding(east, Kind.IDLE_VOLUME, "vol-b", 100.0),
            finding(east, Kind.IDLE_VOLUME, "vol-c", 25.0),
            finding(east, Kind.OVERSIZED_INSTANCE, "i-d", 60.0),
            finding(east, Kind.UNATTACHED_IP, "eip-e", 3.65),
        ],
    )
    ids |= scan(
        store,
        west,
        datetime(2026, 11, 12, 8, tzinfo=UTC),
        [
            finding(west, Kind.UNATTACHED_IP, "eip-f", 7.3),
            finding(west, Kind.IDLE_VOLUME, "vol-g", 12.5),
            finding(west, Kind.IDLE_VOLUME, "vol-h", 9.0),
        ],
    )
    ids |= scan(
        store,
        gcp,
        datetime(2026, 11, 16, 10, tzinfo=UTC),
        [finding(gcp, Kind.IDLE_VOLUME, "disk-i", 20.0)],
    )
    clean(store, ids["vol-b"], datetime(2026, 11, 11, 10, tzinfo=UTC))
    clean(store, ids["vol-c"], datetime(2026, 11, 3, 10, tzinfo=UTC))
    clean(store, ids["vol-h"], datetime(2026, 11, 16, 1, tzinfo=UTC))
    at = datetime(2026, 11, 13, tzinfo=UTC)
    store.transition(ids["i-d"], Status.REJECTED, actor="U0APPROVER", now=at)
    store.transition(
        ids["eip-e"], Status.SNOOZED, actor="U0APPROVER", now=at, snoozed_until=at + timedelta(30)
    )
    store.transition(ids["eip-f"], Status.NOTIFIED, actor="costbot:notify", now=at)
    store.transition(ids["vol-g"], Status.APPROVED, actor="U0APPROVER", now=at)
    return store, ids


def test_waste_savings_and_awaiting_approval_from_the_store(
    findings_store: tuple[Store, dict[str, str]],
) -> None:
    store, ids = findings_store
    d = build_digest(make_config(), store, [], {}, now=MON_AFTER_W46, week=W46)
    assert d.waste == {
        "open_findings": 5,
        "monthly_savings_usd": 83.45,
        "by_provider_kind": [
            {"provider": "aws", "kind": "idle_volume", "count": 2, "monthly_savings_usd": 52.5},
            {"provider": "gcp", "kind": "idle_volume", "count": 1, "monthly_savings_usd": 20.0},
            {"provider": "aws", "kind": "unattached_ip", "count": 2, "monthly_savings_usd": 10.95},
        ],
    }
    assert d.savings == {
        "realised_this_week_monthly_usd": 100.0,
        "cleaned_this_week": 1,
        "realised_since_start_monthly_usd": 134.0,
        "cleaned_since_start": 3,
    }
    assert d.awaiting_approval == [
        {
            "id": ids["vol-a"],
            "resource_id": "vol-a",
            "name": "vol-a",
            "kind": "idle_volume",
            "monthly_savings_usd": 40.0,
            "age_days": 28,
        },
        {
            "id": ids["disk-i"],
            "resource_id": "disk-i",
            "name": "disk-i",
            "kind": "idle_volume",
            "monthly_savings_usd": 20.0,
            "age_days": 0,
        },
        {
            "id": ids["eip-f"],
            "resource_id": "eip-f",
            "name": "eip-f",
            "kind": "unattached_ip",
            "monthly_savings_usd": 7.3,
            "age_days": 5,
        },
    ]
    # cleanups marked on the chart: the four weeks before 2026-11-16
    assert sorted(d.cleanups, key=lambda c: c["day"]) == [
        {"day": "2026-11-03", "finding_id": ids["vol-c"]},
        {"day": "2026-11-11", "finding_id": ids["vol-b"]},
    ]
    text = digest_markdown(d)
    assert "- 5 findings, $83.45/month to save" in text
    assert "- this week: $100.00/month (1 cleaned)" in text
    assert "- since start: $134.00/month (3 cleaned)" in text
    assert "- vol-a (idle_volume): $40.00/month, 28 days old" in text
    assert "- disk-i (idle_volume): $20.00/month, 0 days old" in text
    blocks_text = json.dumps(digest_blocks(d))
    assert "Awaiting approval: 3 (oldest 28 days)" in blocks_text


# -- the CLI: JSON, Markdown, text, --chart, a failing or unconfigured provider -----------------


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "costbot.yaml"
    path.write_text(
        f"store:\n  path: {tmp_path / 'costbot.db'}\npricing:\n  source: bundled\n{body}",
        encoding="utf-8",
    )
    return path


def run_cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "digest", *args])


def recent_week() -> tuple[str, date]:
    """The last complete ISO week by the machine's clock (UTC), from the stdlib alone."""
    today = datetime.now(UTC).date()
    year, number, _ = (today - timedelta(days=7)).isocalendar()
    return f"{year}-W{number:02d}", date.fromisocalendar(year, number, 1)


def seed_cost_explorer(first: date, end: date, this_start: date) -> None:
    """One queued GetCostAndUsage answer for [first, end): EC2 on A1 at 100 a day throughout,
    S3 on A2 at 10 a day in the digest's week only."""
    periods = []
    for day in days(first, (end - first).days):
        groups = [("Amazon Elastic Compute Cloud - Compute", A1, "100")]
        if day >= this_start:
            groups.append(("Amazon Simple Storage Service", A2, "10"))
        periods.append(
            {
                "TimePeriod": {
                    "Start": day.isoformat(),
                    "End": (day + timedelta(days=1)).isoformat(),
                },
                "Total": {},
                "Groups": [
                    {"Keys": [s, a], "Metrics": {"UnblendedCost": {"Amount": v, "Unit": "USD"}}}
                    for s, a, v in groups
                ],
                "Estimated": False,
            }
        )
    answer = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results",
        json={"results": [{"ResultsByTime": periods, "DimensionValueAttributes": []}]},
        timeout=10,
    )
    assert answer.status_code == 201


def test_cli_json_shape_with_aws_from_moto_and_gcp_unconfigured(aws: None, tmp_path: Path) -> None:
    week, start = recent_week()
    seed_cost_explorer(start - timedelta(days=28), start + timedelta(days=7), start)
    config = write_config(
        tmp_path,
        "providers:\n  aws:\n    regions: [us-east-1]\n  gcp:\n    projects: [proj-aaaa]\n",
    )
    result = run_cli(config, "--week", week, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == JSON_KEYS
    assert doc["week"] == week
    assert doc["start"] == start.isoformat()
    assert doc["end"] == (start + timedelta(days=7)).isoformat()
    assert doc["currency"] == "USD"
    # this week 7 * (100 + 10) = 770, last week 700: +70, +10.0%
    assert doc["total"] == change(770.0, 700.0, 70.0, 10.0)
    assert [p["provider"] for p in doc["by_provider"]] == ["aws"]  # gcp is not a zero
    assert doc["missing"] == {
        "gcp": "no billing export configured (providers.gcp.billing_export_table)"
    }
    assert set(doc["freshness"]) == {"aws"}
    datetime.fromisoformat(doc["freshness"]["aws"])
    assert {tuple(sorted(a)) for a in doc["by_account"]} == {
        tuple(sorted({"provider", "account", *CHANGE_KEYS}))
    }
    assert [(a["account"], a["this_week"], a["last_week"]) for a in doc["by_account"]] == [
        (A1, 700.0, 700.0),
        (A2, 70.0, 0.0),
    ]
    assert doc["top_services"][0] == {
        "provider": "aws",
        "service": "Amazon Elastic Compute Cloud - Compute",
        "this_week": 700.0,
    }
    assert doc["movers_up"] == [
        {
            "provider": "aws",
            "service": "Amazon Simple Storage Service",
            **change(70.0, 0.0, 70.0, None),
        },
    ]
    assert doc["movers_down"] == []
    for anomaly in doc["anomalies"]:
        assert set(anomaly) == {"day", "provider", "amount", "threshold"}
    assert doc["other_currencies"] == {}
    assert set(doc["waste"]) == {"open_findings", "monthly_savings_usd", "by_provider_kind"}
    assert set(doc["savings"]) == {
        "realised_this_week_monthly_usd",
        "cleaned_this_week",
        "realised_since_start_monthly_usd",
        "cleaned_since_start",
    }
    assert doc["awaiting_approval"] == []
    assert len(doc["daily"]) == 28  # one aws point per day of the four weeks
    assert all(set(p) == {"day", "provider", "amount"} for p in doc["daily"])
    assert doc["cleanups"] == []


def test_cli_markdown_text_and_chart(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    store = Store(tmp_path / "costbot.db")
    seed_cache(store, main_rows(), datetime(2026, 11, 16, 12, tzinfo=UTC))
    chart = tmp_path / "out" / "digest.png"
    chart.parent.mkdir()

    result = run_cli(config, "--week", W46, "--format", "markdown", "--chart", str(chart))
    assert result.exit_code == 0, result.output
    md = result.stdout
    assert md.startswith("# costbot weekly digest 2026-W46 (2026-11-09 to 2026-11-15)\n")
    assert "**Total spend:** 1,505.00 USD vs 1,260.00 USD the week before (+245.00, +19.4%)" in md
    assert "- AWS: 1,120.00 USD (+35.00, +3.2%)" in md
    assert "- GCP: 245.00 USD (+210.00, +600.0%)" in md
    assert "- AZURE: 140.00 USD (+0.00, +0.0%)" in md
    for heading in (
        "By account",
        "Top services",
        "Movers up",
        "Movers down",
        "Anomalies (day above mean + 3 sigma of the 28 days before)",
        "Open waste",
        "Savings realised",
        "Awaiting approval",
    ):
        assert f"\n## {heading}\n" in md
    assert f"- aws {A2}: 280.00 USD (-70.00, -20.0%)" in md
    assert "- gcp BigQuery: +210.00\n" in md  # new service: no percentage
    assert "- aws Lambda: -35.00, -100.0%" in md
    assert md.rstrip().endswith("Data as of: no spend data")
    assert "chart written to" in result.stderr

    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000

    text = run_cli(config, "--week", W46).stdout
    assert text.startswith("costbot weekly digest 2026-W46 (2026-11-09 to 2026-11-15)\n")
    assert "Total spend: 1,505.00 USD" in text
    assert "#" not in text.replace("# costbot", "") and "**" not in text


def test_cli_bad_week_exits_2(tmp_path: Path) -> None:
    result = run_cli(write_config(tmp_path, ""), "--week", "2027-W53")
    assert result.exit_code == 2
    assert "2027-W53" in result.stderr


class DenyingCostExplorer:
    """A local Cost Explorer endpoint that refuses every call (IAM lacks ce:GetCostAndUsage)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps(
                    {
                        "__type": "AccessDeniedException",
                        "Message": "User is not authorized to perform: ce:GetCostAndUsage",
                    }
                ).encode()
                self.send_response(400)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def test_cli_a_failing_provider_is_listed_as_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, "providers:\n  aws: {}\n  gcp:\n    projects: [proj-aaaa]\n")
    store = Store(tmp_path / "costbot.db")
    # azure rows already in the cache: they still show although aws fails
    azure = [r for r in main_rows() if r.provider == "azure"]
    seed_cache(store, azure, datetime(2026, 11, 16, 12, tzinfo=UTC))
    with DenyingCostExplorer() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_COST_EXPLORER", url)
        text = run_cli(config, "--week", W46)
        result = run_cli(config, "--week", W46, "--format", "json")
    assert text.exit_code == 0, text.output
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc["missing"]) == {"aws", "gcp"}
    assert "AccessDeniedException" in doc["missing"]["aws"]
    assert [p["provider"] for p in doc["by_provider"]] == ["azure"]
    assert doc["total"]["this_week"] == 140.0
    assert "freshness" in doc and "aws" not in doc["freshness"]
    assert "- AWS: MISSING — ce:GetCostAndUsage: AccessDeniedException" in text.stdout
    assert "- GCP: MISSING — no billing export configured" in text.stdout
    assert "- AZURE: 140.00 USD" in text.stdout


def test_gcp_without_billing_table_is_missing_not_zero(store: Store) -> None:
    config = make_config("providers:\n  gcp:\n    projects: [proj-aaaa]\n")
    sources, unavailable = build_cost_sources(config)
    d = build_digest(config, store, sources, unavailable, now=MON_AFTER_W46, week=W46)
    assert d.missing == {"gcp": "no billing export configured (providers.gcp.billing_export_table)"}
    assert d.by_provider == []
    assert d.total["this_week"] == 0.0
    fields = digest_blocks(d)[1]["fields"]
    assert any("*GCP*" in f["text"] and "_missing_" in f["text"] for f in fields)


def test_chart_of_an_empty_digest_is_a_png(tmp_path: Path) -> None:
    d = digest_of([])
    path = render_chart(d, tmp_path / "empty.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)


# -- posting to Slack: a local fake that also speaks files.upload_v2 ---------------------------


@dataclass
class SlackCall:
    path: str
    params: dict[str, Any]
    authorization: str | None
    raw: bytes


class FakeSlackFiles:
    """chat.postMessage, files.getUploadURLExternal, the upload POST and
    files.completeUploadExternal (tests/slack/fake_slack.py answers only the first one)."""

    def __init__(self) -> None:
        self.calls: list[SlackCall] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                params: dict[str, Any] = {
                    k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()
                }
                ctype = self.headers.get("Content-Type", "")
                if raw and ctype.startswith("application/json"):
                    params.update(json.loads(raw))
                elif raw and url.path.startswith("/api/"):
                    form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
                    params.update({k: v[-1] for k, v in form.items()})
                call = SlackCall(url.path, params, self.headers.get("Authorization"), raw)
                with fake.lock:
                    fake.calls.append(call)
                status, body = fake.answer(call)
                data = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(status)
                self.send_header(
                    "Content-Type",
                    "application/json; charset=utf-8" if isinstance(body, dict) else "text/plain",
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, call: SlackCall) -> tuple[int, dict[str, Any] | bytes]:
        if call.path.startswith("/upload/"):
            return 200, f"OK - {len(call.raw)}".encode()
        if call.authorization != "Bearer xoxb-test":
            return 200, {"ok": False, "error": "invalid_auth"}
        method = call.path.removeprefix("/api/")
        if method == "chat.postMessage":
            return 200, {"ok": True, "channel": "C0DIGEST", "ts": "1700000000.000100"}
        if method == "files.getUploadURLExternal":
            return 200, {
                "ok": True,
                "upload_url": f"{self.base}/upload/F0CHART",
                "file_id": "F0CHART",
            }
        if method == "files.completeUploadExternal":
            files = json.loads(call.params["files"])
            return 200, {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in files]}
        return 200, {"ok": False, "error": "unknown_method"}

    def to(self, path: str) -> list[SlackCall]:
        with self.lock:
            return [c for c in self.calls if c.path == path]


@pytest.fixture
def fake_slack_files() -> Iterator[FakeSlackFiles]:
    fake = FakeSlackFiles()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        fake.thread.join(5)


def slack_config_text(fake: FakeSlackFiles) -> str:
    return (
        f"slack:\n  channel: '#costs'\n  api_base_url: {fake.base}/api/\n"
        "digest:\n  channel: C0DIGEST\n"
    )


def test_cli_post_sends_blocks_and_the_chart_in_a_thread(
    tmp_path: Path, fake_slack_files: FakeSlackFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    config = write_config(tmp_path, slack_config_text(fake_slack_files))
    seed_cache(Store(tmp_path / "costbot.db"), main_rows(), datetime(2026, 11, 16, tzinfo=UTC))
    chart = tmp_path / "chart.png"
    result = run_cli(config, "--week", W46, "--post", "--chart", str(chart))
    assert result.exit_code == 0, result.output
    assert "posted to Slack (1700000000.000100)" in result.stderr

    (post,) = fake_slack_files.to("/api/chat.postMessage")
    assert post.params["channel"] == "C0DIGEST"
    assert post.params["text"] == "Weekly cloud costs 2026-W46"
    blocks = post.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Weekly cloud costs 2026-W46"},
    }
    assert blocks[1]["fields"][0]["text"] == "*Total*\n1,505.00 USD\n+245.00, +19.4%"
    assert len(blocks[1]["fields"]) <= 10

    (url,) = fake_slack_files.to("/api/files.getUploadURLExternal")
    assert url.params["filename"] == "chart.png"
    assert int(url.params["length"]) == chart.stat().st_size
    (upload,) = fake_slack_files.to("/upload/F0CHART")
    assert upload.raw == chart.read_bytes()
    assert upload.raw.startswith(PNG_SIGNATURE)
    (done,) = fake_slack_files.to("/api/files.completeUploadExternal")
    assert done.params["channel_id"] == "C0DIGEST"
    assert done.params["thread_ts"] == "1700000000.000100"
    assert json.loads(done.params["files"])[0]["id"] == "F0CHART"


def posted_digest(tmp_path: Path, fake: FakeSlackFiles) -> tuple[Config, Digest]:
    config = make_config(slack_config_text(fake))
    store = Store(tmp_path / "post.db")
    seed_cache(store, main_rows(), datetime(2026, 11, 16, tzinfo=UTC))
    return config, build_digest(config, store, [], {}, now=MON_AFTER_W46, week=W46)


def test_post_without_chart_leaves_no_temporary_files(
    tmp_path: Path, fake_slack_files: FakeSlackFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    from costbot.slack.notify import web_client

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    config, d = posted_digest(tmp_path, fake_slack_files)
    assert config.slack is not None
    ts = post_digest(config, web_client(config.slack, token="xoxb-test"), d, None)
    assert ts == "1700000000.000100"
    (url,) = fake_slack_files.to("/api/files.getUploadURLExternal")
    assert url.params["filename"] == "costbot-2026-W46.png"
    assert list(scratch.iterdir()) == []


def test_chart_title_names_the_last_day(tmp_path: Path, fake_slack_files: FakeSlackFiles) -> None:
    from costbot.slack.notify import web_client

    config, d = posted_digest(tmp_path, fake_slack_files)
    assert config.slack is not None
    chart = render_chart(d, tmp_path / "c.png")
    post_digest(config, web_client(config.slack, token="xoxb-test"), d, chart)
    (done,) = fake_slack_files.to("/api/files.completeUploadExternal")
    assert json.loads(done.params["files"])[0]["title"] == "Daily spend, 4 weeks to 2026-11-15"


def test_digest_job_posts_last_week(
    tmp_path: Path, fake_slack_files: FakeSlackFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the job's chart goes here
    config = make_config(slack_config_text(fake_slack_files))
    result = Jobs(config, Store(tmp_path / "job.db"), lambda c: {}).run("digest")
    week, _ = recent_week()
    assert result.ok, result.summary
    assert result.summary == {
        "week": week,
        "total": 0.0,
        "currency": "USD",
        "missing": [],
        "slack_ts": "1700000000.000100",
    }
    (upload,) = fake_slack_files.to("/upload/F0CHART")
    assert upload.raw.startswith(PNG_SIGNATURE)
