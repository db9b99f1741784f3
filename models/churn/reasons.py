"""Reasons for each customer's churn score, in words a CRM agent can read.

A score is a base value plus one part per feature on the log-odds scale
(:meth:`models.churn.classifier.ChurnModel.contributions`). A customer's reasons are the parts
that moved their score furthest from the base in the direction it went: towards churn for a
score above the base, away from it for one below. Each is phrased with the customer's own
value ("last purchase 210 days ago", "usually 45 days between purchases").
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd

from models.btyd.family import AGEING
from models.churn.classifier import PRIOR_PART, ChurnModel, prior_of

REASON_COLUMNS = ("churn_reason_1", "churn_reason_2", "churn_reason_3")
MIN_PART = 1e-6  # a part smaller than this (log-odds) moved nothing: not a reason
DAYS_PER_MONTH = 365.25 / 12

Phrase = Callable[[pd.DataFrame], list[str]]


def _each(template: str, column: str, missing: str | None = None, scale: float = 1.0) -> Phrase:
    """``template`` filled with each row's ``column`` (times ``scale``); ``missing`` for a null
    (default: the column is not known)."""
    unknown = missing or f"{column} not known"

    def phrase(rows: pd.DataFrame) -> list[str]:
        values = pd.to_numeric(rows[column], errors="coerce").astype(float) * scale
        return [unknown if np.isnan(v) else template.format(v) for v in values]

    return phrase


def _active_span(rows: pd.DataFrame) -> list[str]:
    span = rows["tenure_days"].astype(float) - rows["recency_days"].astype(float)
    return [f"{v:,.0f} days from first to last purchase" for v in span]


NO_REPEAT = "no repeat purchase yet"
PHRASES: dict[str, Phrase] = {
    "recency_days": _each("last purchase {:,.0f} days ago", "recency_days"),
    "tenure_days": _each("first purchase {:,.0f} days ago", "tenure_days"),
    "T": _each("first purchase {:,.0f} days ago", "tenure_days"),
    "recency": _active_span,
    "frequency": _each("{:,.0f} repeat purchases", "frequency"),
    "purchase_days": _each("{:,.0f} purchase days in all", "purchase_days"),
    "monetary_value": _each("{:,.2f} per repeat purchase on average", "monetary_value"),
    "gap_max": _each("longest gap between purchases {:,.0f} days", "gap_max", NO_REPEAT),
    "gap_mean": _each("usually {:,.0f} days between purchases", "gap_mean", NO_REPEAT),
    "gap_std": _each(
        "gaps between purchases vary by {:,.0f} days", "gap_std", "too few purchases for a rhythm"
    ),
    "lines": _each("{:,.0f} order lines in all", "lines"),
    "total_spend": _each("{:,.2f} spent in all", "total_spend"),
    "total_margin": _each("{:,.2f} margin in all", "total_margin"),
    "max_day_spend": _each("largest day's spend {:,.2f}", "max_day_spend"),
    "total_quantity": _each("{:,.0f} items in all", "total_quantity"),
    "mean_day_spend": _each("{:,.2f} spent per purchase day", "mean_day_spend"),
    "spend_trend": _each(
        "spend trend {:+.2f} (recent against earlier spend, from -1 to +1)", "spend_trend"
    ),
    "overdue_ratio": _each(
        "silent for {:,.1f} times the usual gap between purchases", "overdue_ratio", NO_REPEAT
    ),
    "purchase_rate": _each("{:,.2f} purchase days a month", "purchase_rate", scale=DAYS_PER_MONTH),
    "recency_share": _each(
        "silent for {:.0%} of the time since the first purchase", "recency_share"
    ),
    "btyd_p_no_purchase": _each(
        "purchase model: {:.0%} chance of no purchase in the churn window", "btyd_p_no_purchase"
    ),
    "btyd_expected_purchases": _each(
        "purchase model: {:,.1f} purchases expected in the churn window",
        "btyd_expected_purchases",
    ),
    "btyd_p_alive": _each("purchase model: {:.0%} chance still a customer", "btyd_p_alive"),
    PRIOR_PART: _each(
        "purchase model: {:.0%} chance of no purchase in the churn window", PRIOR_PART
    ),
}
WINDOWED = {
    "purchases": "{:,.0f} purchases in the last {} days",
    "spend": "{:,.2f} spent in the last {} days",
}


def phrase_of(name: str) -> Phrase:
    """How the part ``name`` (a feature, or :data:`PRIOR_PART`) reads for a set of rows."""
    if name in PHRASES:
        return PHRASES[name]
    windowed = re.fullmatch(r"(purchases|spend)_(\d+)d", name)
    if windowed:
        kind, days = windowed.groups()
        return _each(WINDOWED[kind].replace("{}", days), name)

    def as_is(rows: pd.DataFrame) -> list[str]:  # a customer attribute or covariate
        return [f"{name} not known" if pd.isna(v) else f"{name}: {_text(v)}" for v in rows[name]]

    return as_is


def prior_phrase(shape: dict | None) -> Phrase:
    """How the prior's part reads: the CLV model's P(no purchase), or another purchase model's
    (:mod:`models.churn.level`) named by what it knows (its ageing, season or regularity, else
    its name), so that it does not read as the CLV model's own ``btyd_p_no_purchase``."""
    if shape is None:
        return PHRASES[PRIOR_PART]
    fit = shape["fit"]
    knows = [
        ("ageing", fit["model"] in AGEING),
        ("seasonal", fit["season"]["a"] != 0 or fit["season"]["b"] != 0),
        ("regular", fit["regularity"] > 1),
    ]
    label = " and ".join(name for name, known in knows if known) or fit["model"]
    return _each(
        f"{label} purchase model: {{:.0%}} chance of no purchase in the churn window", PRIOR_PART
    )


def _text(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(value)
    return f"{value:g}" if isinstance(value, int | float | np.number) else str(value)


def churn_reasons(model: ChurnModel, frame: pd.DataFrame, k: int = len(REASON_COLUMNS)):
    """The ``k`` reasons of each row's churn score (columns ``churn_reason_1`` ...), strongest
    first; null where fewer parts moved the score. ``frame``: what :meth:`ChurnModel.predict`
    reads."""
    _, parts = model.contributions(frame)  # the base is every row's: it ranks nothing
    prior = model.settings.calibration_prior
    if PRIOR_PART in parts.columns and model.prior_shape is None and prior in parts.columns:
        parts[prior] += parts.pop(PRIOR_PART)  # a feature that is the prior too: one reason
    rows = frame.reset_index(drop=True)
    if PRIOR_PART in parts.columns:  # phrased with the prior's own probability
        rows = rows.assign(**{PRIOR_PART: prior_of(frame, model.settings, model.prior_shape)})
    values = parts.to_numpy(dtype=float)
    toward = np.where(values.sum(axis=1) >= 0, 1.0, -1.0)[:, None]  # the score's way from base
    signed = values * toward
    order = np.argsort(-signed, axis=1, kind="stable")[:, :k]
    out = pd.DataFrame(index=rows.index, columns=list(REASON_COLUMNS[:k]), dtype="str")
    names = list(parts.columns)
    for rank, column in enumerate(out.columns):
        chosen = order[:, rank]
        moved = np.take_along_axis(signed, chosen[:, None], axis=1)[:, 0] > MIN_PART
        for j in np.unique(chosen[moved]):
            where = moved & (chosen == j)
            name = names[j]
            phrase = prior_phrase(model.prior_shape) if name == PRIOR_PART else phrase_of(name)
            out.loc[where, column] = phrase(rows[where])
    return out
