"""Figures as the report writes them: money with the currency, probabilities and shares as
percentages, counts with thousands separators, and HTML tables of such cells."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import pandas as pd

from models.report.settings import ReportSettings

MISSING = "–"  # a figure the table does not hold (a log without amounts has no money)


def _missing(value) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value))


class Formats:
    """The cell formats of one report."""

    def __init__(self, settings: ReportSettings) -> None:
        self.settings = settings

    def money(self, value) -> str:
        if _missing(value):
            return MISSING
        s = self.settings
        figure = f"{abs(value):,.{s.money_decimals}f}"
        sign = "−" if value < 0 and figure.strip("0.,") else ""
        if not s.currency:
            return sign + figure
        return f"{sign}{figure} {s.currency}" if s.currency_after else f"{sign}{s.currency}{figure}"

    def percent(self, value) -> str:
        """A share or probability (0.182) as a percentage (18.2 %)."""
        if _missing(value):
            return MISSING
        return f"{100 * value:.{self.settings.percent_decimals}f} %"

    def points(self, value) -> str:
        """A change of a share, in percentage points (+1.2 pt)."""
        if _missing(value):
            return MISSING
        return f"{100 * value:+.{self.settings.percent_decimals}f} pt"

    def change(self, now, before) -> str:
        """A relative change (+4.1 %), or nothing to compare with."""
        if _missing(now) or _missing(before) or before == 0:
            return MISSING
        return f"{100 * (now / before - 1):+.{self.settings.percent_decimals}f} %"

    @staticmethod
    def count(value) -> str:
        return MISSING if _missing(value) else f"{int(value):,}"

    @staticmethod
    def number(value, decimals: int = 1) -> str:
        return MISSING if _missing(value) else f"{value:,.{decimals}f}"


def text(value) -> str:
    return MISSING if _missing(value) else html.escape(str(value))


def table(
    rows: pd.DataFrame,
    columns: Sequence[tuple[str, str, Callable]],
    css: str = "",
) -> str:
    """An HTML table of ``rows``: ``columns`` are (column, heading, cell format) triples; text
    cells are left-aligned, figures right-aligned."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = []
    for _, row in rows.iterrows():
        cells = []
        for column, _, show in columns:
            kind = "txt" if show is text else "num"
            cells.append(f'<td class="{kind}">{show(row[column])}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    attr = f' class="{css}"' if css else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
