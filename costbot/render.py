"""How findings and scan results look on a terminal (rich tables) and to scripts (JSON, CSV).
Nothing here computes: it only formats what the store and the scan returned.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from costbot.cleanup import CleanupReport
from costbot.model import short_id
from costbot.scan import ScanReport
from costbot.slack.blocks import Message
from costbot.store import Event, StoredFinding

KIND_LABELS = {
    "idle_volume": "idle volume",
    "unattached_ip": "unused IP",
    "oversized_instance": "oversized VM",
}
CSV_FIELDS = (
    "id",
    "provider",
    "account",
    "region",
    "kind",
    "resource_id",
    "name",
    "status",
    "reason",
    "monthly_cost_usd",
    "monthly_savings_usd",
    "price_source",
    "price_date",
    "recommendation",
    "first_seen",
    "last_seen",
)


def usd(amount: float) -> str:
    """Dollars for display: $1,234.56."""
    return f"${amount:,.2f}"


def findings_table(findings: Sequence[StoredFinding], title: str = "Findings") -> Table:
    """A rich table of findings with a savings total in the caption."""
    accounts = {f.account for f in findings}
    table = Table(title=title, title_justify="left", caption_justify="left")
    table.add_column("Finding", no_wrap=True)
    table.add_column("Where", no_wrap=True)
    table.add_column("Why / what to do")
    table.add_column("Cost/mo", justify="right", no_wrap=True)
    table.add_column("Saves/mo", justify="right", style="green", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for f in findings:
        label = KIND_LABELS.get(str(f.kind), str(f.kind))
        short = short_id(f.resource_id)
        name = f" [dim]{escape(f.name)}[/dim]" if f.name and f.name != short else ""
        where = f"{f.provider} {f.region}" + (f"\n{f.account}" if len(accounts) > 1 else "")
        table.add_row(
            f"{label}\n{escape(short)}{name}",
            where,
            f"{escape(f.reason)}\n[cyan]→ {escape(f.recommendation)}[/cyan]",
            usd(f.monthly_cost_usd),
            usd(f.monthly_savings_usd),
            str(f.status),
        )
    total = sum(f.monthly_savings_usd for f in findings)
    table.caption = f"{len(findings)} findings, {usd(total)}/month to save ({usd(total * 12)}/year)"
    return table


def console(*, stderr: bool = False) -> Console:
    """A console that is wide enough for the findings table even when output is piped."""
    probe = Console(stderr=stderr)
    return probe if probe.is_terminal else Console(stderr=stderr, width=150)


def findings_json(findings: Sequence[StoredFinding]) -> str:
    """A JSON array of findings (see StoredFinding.to_json for the fields)."""
    return json.dumps([f.to_json() for f in findings], indent=2, default=str)


def findings_csv(findings: Sequence[StoredFinding]) -> str:
    """CSV with one row per finding and the main fields as columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for f in findings:
        writer.writerow(f.to_json())
    return out.getvalue()


def print_scan_summary(console: Console, report: ScanReport) -> None:
    """Per-unit outcome lines, failures first, and any pricing notes."""
    for unit in report.failed:
        console.print(f"[red]FAILED[/red] {unit.unit}: {escape(unit.error or '')}", soft_wrap=True)
    ok = [u for u in report.units if u.ok]
    resources = sum(sum(u.resources.values()) for u in ok)
    new = sum(u.new for u in ok)
    resolved = sum(u.resolved for u in ok)
    console.print(
        f"Scanned {len(ok)}/{len(report.units)} account-regions, {resources} resources: "
        f"{len(report.findings)} findings ({new} new, {resolved} resolved)."
    )
    skipped: dict[str, int] = {}
    for u in ok:
        for reason, n in u.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    for reason, n in sorted(skipped.items()):
        console.print(f"[dim]  not judged: {n} x {escape(reason)}[/dim]")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True)


def scan_json(report: ScanReport) -> dict[str, Any]:
    """Machine-readable unit outcomes (for logs and `--format json` stderr summaries)."""
    return {
        "run_id": report.run_id,
        "units": [
            {
                "unit": str(u.unit),
                "ok": u.ok,
                "error": u.error,
                "resources": dict(u.resources),
                "findings": len(u.findings),
                "seconds": round(u.seconds, 3),
            }
            for u in report.units
        ],
        "notes": list(report.notes),
    }


STAGE_STYLES = {
    "cleaned": "green",
    "would_clean": "cyan",
    "held": "yellow",
    "failed": "red",
    "refused": "red",
    "expired": "yellow",
    "resolved": "dim",
    "skipped": "dim",
}


def cleanup_table(report: CleanupReport) -> Table:
    """One row per finding the cleanup run looked at."""
    mode = "EXECUTE" if report.execute else "dry run"
    table = Table(title=f"Cleanup ({mode})", title_justify="left", caption_justify="left")
    table.add_column("Finding", no_wrap=True)
    table.add_column("Outcome", no_wrap=True)
    table.add_column("What")
    table.add_column("Saves/mo", justify="right", no_wrap=True)
    for line in report.lines:
        style = STAGE_STYLES.get(str(line.stage), "")
        table.add_row(
            f"{KIND_LABELS.get(line.kind, line.kind)}\n{escape(short_id(line.resource_id))}",
            f"[{style}]{line.stage}[/{style}]" if style else str(line.stage),
            escape(line.text),
            usd(line.monthly_savings_usd),
        )
    cleaned = [line for line in report.lines if str(line.stage) == "cleaned"]
    planned = [line for line in report.lines if str(line.stage) == "would_clean"]
    saved = sum(line.monthly_savings_usd for line in cleaned)
    table.caption = (
        f"{len(cleaned)} cleaned ({usd(saved)}/month saved), {len(planned)} ready to clean"
    )
    return table


def history_table(finding_id: str, events: Sequence[Event]) -> Table:
    """A finding's audit trail."""
    table = Table(title=f"History of {finding_id}", title_justify="left")
    for column in ("Time (UTC)", "Actor", "Type", "Status", "Note"):
        table.add_column(column)
    for e in events:
        move = f"{e.from_status or '-'} → {e.to_status}" if e.to_status else ""
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"), escape(e.actor), e.type, move, escape(e.note)
        )
    return table


def slack_preview(messages: Sequence[Message], limit: int = 3) -> str:
    """A plain-text rendering of the first findings of a Slack summary, buttons in brackets."""
    if not messages:
        return "(nothing to post)"
    out: list[str] = []
    shown = 0
    for block in messages[0].blocks:
        if block["type"] == "header":
            out.append(f"== {block['text']['text']} ==")
        elif block["type"] == "section" and "text" in block:
            if shown == limit:
                break
            shown += 1
            out.append("")
            out.extend("  " + line for line in block["text"]["text"].splitlines())
        elif block["type"] == "actions" and shown <= limit:
            out.append("  " + " ".join(f"[{e['text']['text']}]" for e in block["elements"]))
    total = sum(len(m.finding_ids) for m in messages)
    out.append(f"\n… {total - shown} more findings in {len(messages)} message(s) (threaded)")
    return html.unescape("\n".join(out))
