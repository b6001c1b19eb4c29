"""The digest in words: plain text / Markdown for terminals and files, Block Kit for Slack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from costbot.digest.compute import Digest
from costbot.slack.blocks import escape


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def _pct(change: dict[str, Any]) -> str:
    pct = change["change_pct"]
    sign = "+" if change["change"] >= 0 else "-"
    return f"{sign}{abs(change['change']):,.2f}" + (f", {pct:+.1f}%" if pct is not None else "")


def digest_markdown(d: Digest, *, markdown: bool = True) -> str:
    """The whole digest as Markdown (or plain text with markdown=False)."""
    h = "## " if markdown else ""
    b = "**" if markdown else ""
    c = d.currency
    last_day = d.end - timedelta(days=1)
    title = f"costbot weekly digest {d.week} ({d.start} to {last_day})"
    lines = [f"{'# ' if markdown else ''}{title}", ""]
    lines.append(
        f"{b}Total spend:{b} {_money(d.total['this_week'], c)} vs "
        f"{_money(d.total['last_week'], c)} the week before ({_pct(d.total)})"
    )
    for p in d.by_provider:
        lines.append(f"- {p['provider'].upper()}: {_money(p['this_week'], c)} ({_pct(p)})")
    for provider, why in d.missing.items():
        lines.append(f"- {provider.upper()}: MISSING — {why}")
    for cur, amount in d.other_currencies.items():
        lines.append(f"- not converted (no rate for {cur}): {amount:,.2f} {cur}")
    sections = [
        (
            "By account",
            [
                f"- {a['provider']} {a['account']}: {_money(a['this_week'], c)} ({_pct(a)})"
                for a in d.by_account[:10]
            ],
        ),
        (
            "Top services",
            [
                f"- {s['provider']} {s['service']}: {_money(s['this_week'], c)}"
                for s in d.top_services
            ],
        ),
        ("Movers up", [f"- {m['provider']} {m['service']}: {_pct(m)}" for m in d.movers_up]),
        ("Movers down", [f"- {m['provider']} {m['service']}: {_pct(m)}" for m in d.movers_down]),
        (
            "Anomalies (day above mean + 3 sigma of the 28 days before)",
            [
                f"- {a['day']} {a['provider']}: {_money(a['amount'], c)} "
                f"(threshold {_money(a['threshold'], c)})"
                for a in d.anomalies
            ]
            or ["- none"],
        ),
        (
            "Open waste",
            [
                f"- {d.waste['open_findings']} findings, "
                f"${d.waste['monthly_savings_usd']:,.2f}/month to save"
            ]
            + [
                f"  - {w['provider']} {w['kind']}: {w['count']} "
                f"(${w['monthly_savings_usd']:,.2f}/month)"
                for w in d.waste["by_provider_kind"]
            ],
        ),
        (
            "Savings realised",
            [
                f"- this week: ${d.savings['realised_this_week_monthly_usd']:,.2f}/month "
                f"({d.savings['cleaned_this_week']} cleaned)",
                f"- since start: ${d.savings['realised_since_start_monthly_usd']:,.2f}/month "
                f"({d.savings['cleaned_since_start']} cleaned)",
            ],
        ),
        (
            "Awaiting approval",
            [
                f"- {a.get('name') or a['resource_id']} ({a['kind']}): "
                f"${a['monthly_savings_usd']:,.2f}/month, {a['age_days']} days old"
                for a in d.awaiting_approval
            ]
            or ["- none"],
        ),
    ]
    for title, body in sections:
        if body:
            lines += ["", f"{h}{title}", *body]
    fresh = ", ".join(f"{p} {t[:16]}" for p, t in d.freshness.items()) or "no spend data"
    lines += ["", f"Data as of: {fresh}"]
    return "\n".join(lines) + "\n"


def digest_blocks(d: Digest) -> list[dict[str, Any]]:
    """Block Kit: header, totals as fields, the sections, and a context line with freshness."""
    c = d.currency
    fields = [
        {"type": "mrkdwn", "text": f"*Total*\n{_money(d.total['this_week'], c)}\n{_pct(d.total)}"}
    ]
    fields += [
        {
            "type": "mrkdwn",
            "text": f"*{p['provider'].upper()}*\n{_money(p['this_week'], c)}\n{_pct(p)}",
        }
        for p in d.by_provider[:8]
    ]
    fields += [
        {"type": "mrkdwn", "text": f"*{p.upper()}*\n_missing_: {escape(why)[:150]}"}
        for p, why in d.missing.items()
    ][: 10 - len(fields)]

    def section(title: str, rows: list[str]) -> dict[str, Any]:
        text = f"*{title}*\n" + ("\n".join(rows) if rows else "none")
        return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Weekly cloud costs {d.week}"[:150]},
        },
        {"type": "section", "fields": fields[:10]},
        section(
            "Top services",
            [
                f"• {escape(s['provider'])} {escape(s['service'])}: {_money(s['this_week'], c)}"
                for s in d.top_services
            ],
        ),
        section(
            "Movers",
            [f"↑ {escape(m['service'])}: {_pct(m)}" for m in d.movers_up[:3]]
            + [f"↓ {escape(m['service'])}: {_pct(m)}" for m in d.movers_down[:3]],
        ),
        section(
            "Anomalies",
            [f"⚠️ {a['day']} {a['provider']}: {_money(a['amount'], c)}" for a in d.anomalies],
        ),
        section(
            "Waste and savings",
            [
                f"Open: {d.waste['open_findings']} findings, "
                f"*${d.waste['monthly_savings_usd']:,.2f}/month* to save",
                f"Realised this week: ${d.savings['realised_this_week_monthly_usd']:,.2f}/month · "
                f"since start: ${d.savings['realised_since_start_monthly_usd']:,.2f}/month",
                f"Awaiting approval: {len(d.awaiting_approval)}"
                + (
                    f" (oldest {max(a['age_days'] for a in d.awaiting_approval)} days)"
                    if d.awaiting_approval
                    else ""
                ),
            ],
        ),
    ]
    fresh = ", ".join(f"{p} {t[:16].replace('T', ' ')}" for p, t in d.freshness.items())
    context = f"{d.start} to {d.end - timedelta(days=1)} (ISO week, {c})"
    context += f" · data as of {fresh}" if fresh else ""
    if d.other_currencies:
        context += " · not converted: " + ", ".join(
            f"{v:,.2f} {k}" for k, v in d.other_currencies.items()
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]})
    return blocks
