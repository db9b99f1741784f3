"""Profit: each customer's margin share of spend and the margin CLV it makes of the CLV.

The CLV forecasts spend. Where the log has a margin column, a customer's profit to come is their
CLV times the share of their spend that was margin. One purchase at 60 % says little about the
next ones, so the share is a credibility average: the customer's margin and spend to date, plus
``prior_days`` purchase days at the population's mean spend per day and its margin share. A
customer with many purchases keeps their own share; a new one starts near the population's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.columns import MARGIN

MARGIN_COLUMNS = ("margin_share", "margin_clv", "margin_clv_lower", "margin_clv_upper")


def margin_share(
    customers: pd.DataFrame, population: pd.DataFrame, prior_days: float
) -> np.ndarray:
    """Each customer's margin share of spend (``total_margin`` / ``total_spend``), shrunk
    toward ``population``'s (``total_margin``, ``total_spend``, ``purchase_days`` summed) by
    ``prior_days`` purchase days at its mean spend per day. A customer with no spend to weigh
    (no prior, nothing spent) gets the population's share."""
    spend = float(population["total_spend"].sum())
    share = float(population[MARGIN].sum()) / spend if spend > 0 else np.nan
    weight = prior_days * spend / float(population["purchase_days"].sum())
    own_margin = customers[MARGIN].to_numpy(dtype=float)
    own_spend = customers["total_spend"].to_numpy(dtype=float)
    base = own_spend + weight
    with np.errstate(divide="ignore", invalid="ignore"):
        shrunk = (own_margin + weight * share) / base
    return np.where(base > 0, shrunk, share)


def margin_columns(
    table: pd.DataFrame, population: pd.DataFrame, prior_days: float
) -> pd.DataFrame:
    """:data:`MARGIN_COLUMNS` of a scored ``table`` (its ``clv`` and interval, and the margin
    and spend to date): the share (:func:`margin_share`) and the CLV times it, the interval's
    ends too (swapped where the share is negative: a loss-making customer)."""
    share = margin_share(table, population, prior_days)
    ends = np.stack([table[c].to_numpy(dtype=float) * share for c in ("clv_lower", "clv_upper")])
    return pd.DataFrame(
        {
            "margin_share": share,
            "margin_clv": table["clv"].to_numpy(dtype=float) * share,
            "margin_clv_lower": ends.min(axis=0),
            "margin_clv_upper": ends.max(axis=0),
        },
        index=table.index,
    )
