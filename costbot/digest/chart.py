"""The digest chart: daily spend per provider over the last four weeks, cleanups marked,
drawn with matplotlib's Agg canvas (no display, no pyplot global state)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from costbot.digest.compute import Digest

COLORS = {"aws": "#ff9900", "gcp": "#4285f4", "azure": "#0078d4"}


def render_chart(digest: Digest, path: Path) -> Path:
    """Write the PNG and return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 4), dpi=110)
    FigureCanvasAgg(figure)
    axes: Any = figure.subplots()
    providers = sorted({row["provider"] for row in digest.daily})
    for provider in providers:
        points = sorted(
            (date.fromisoformat(r["day"]), r["amount"])
            for r in digest.daily
            if r["provider"] == provider
        )
        axes.plot(
            [d for d, _ in points],
            [a for _, a in points],
            marker="o",
            markersize=3,
            label=provider.upper(),
            color=COLORS.get(provider),
        )
    marked = sorted({date.fromisoformat(c["day"]) for c in digest.cleanups})
    for n, day in enumerate(marked):
        axes.axvline(
            day, color="#2b6b3f", linestyle="--", linewidth=1, label="cleanup" if n == 0 else None
        )
    axes.axvspan(digest.start, digest.end, color="#eeeeee", zorder=0, label=digest.week)
    axes.set_title(f"Daily spend per provider ({digest.currency}), last 4 weeks")
    axes.set_ylabel(digest.currency)
    axes.grid(alpha=0.3)
    if providers or marked:
        axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
