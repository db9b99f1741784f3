"""Small SVG line charts of a KPI over the published tables (inline in the page: no script, no
image files)."""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
import pandas as pd

WIDTH, HEIGHT = 300, 150
LEFT, RIGHT, TOP, BOTTOM = 10, 10, 34, 24  # margins around the plot area


def line_chart(dates: pd.Series, values: pd.Series, title: str, show: Callable) -> str:
    """One KPI over time: a line through its value at each scoring date (gaps where it has
    none, e.g. the first table's retention), the latest value in the title, the first and last
    dates under the axis."""
    days = pd.to_datetime(dates).reset_index(drop=True)
    y = pd.to_numeric(values, errors="coerce").reset_index(drop=True).to_numpy(dtype=float)
    known = ~np.isnan(y)
    latest = show(y[known][-1]) if known.any() else show(None)
    parts = [
        f'<text x="{LEFT}" y="14" class="title">{html.escape(title)}</text>',
        f'<text x="{LEFT}" y="29" class="value">{html.escape(latest)}</text>',
    ]
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + height
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{LEFT + width}" y2="{base}" class="axis"/>')
    if known.any():
        span = (days.iloc[-1] - days.iloc[0]).days or 1
        xs = LEFT + width * ((days - days.iloc[0]).dt.days.to_numpy() / span)
        if len(days) == 1:
            xs = np.array([LEFT + width / 2])
        low, high = np.nanmin(y), np.nanmax(y)
        pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
        ys = TOP + height * (1 - (y - low) / (high - low))
        for run in _runs(known):
            points = " ".join(f"{xs[i]:.1f},{ys[i]:.1f}" for i in run)
            parts.append(f'<polyline points="{points}" class="line"/>')
        for i in np.flatnonzero(known):
            label = f"{days.iloc[i].date()}: {show(y[i])}"
            parts.append(
                f'<circle cx="{xs[i]:.1f}" cy="{ys[i]:.1f}" r="3" class="dot">'
                f"<title>{html.escape(label)}</title></circle>"
            )
    first, last = days.iloc[0].date(), days.iloc[-1].date()
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" class="tick">{first}</text>')
    if last != first:
        parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" class="tick end">{last}</text>')
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{html.escape(title)}">{"".join(parts)}</svg>'
    )


def _runs(known: np.ndarray) -> list[list[int]]:
    """The stretches of consecutive known values (a line is not drawn across a gap)."""
    runs, current = [], []
    for i, ok in enumerate(known):
        if ok:
            current.append(i)
        elif current:
            runs.append(current)
            current = []
    return [*runs, current] if current else runs


STYLE = """
svg .title { font: bold 12px sans-serif; fill: #333; }
svg .value { font: 12px sans-serif; fill: #1f5fa8; }
svg .tick { font: 10px sans-serif; fill: #666; } svg .end { text-anchor: end; }
svg .axis { stroke: #bbb; } svg .line { fill: none; stroke: #1f5fa8; stroke-width: 2; }
svg .dot { fill: #1f5fa8; }
"""
