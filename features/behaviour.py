"""Behavioural features of each customer at a cutoff, for the churn model.

Counts and spend in trailing windows, recency, tenure, gaps between purchases and the spend
trend; the margin to date where the log has one. They use only the days on or before the
cutoff. Undefined values (e.g. gap statistics of a one-time buyer) are NULL, which the churn
model treats as missing.
"""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from features.spec import FeatureSpec
from features.summary import money_sum
from models.columns import MARGIN


def behaviour_aggregates(d: ir.Table, cutoff: date, spec: FeatureSpec) -> dict[str, ir.Value]:
    """Per-customer aggregates of the days ``d`` (up to ``cutoff``) beyond ``summary_aggregates``.

    Recency, tenure and the count and sum of the gaps follow from the summary's first and last
    purchase days and its occasions, so they cost no aggregate of their own.
    """
    age = ibis.date(cutoff.isoformat()).delta(d.day, unit="day")
    tw = spec.trend_window_days
    aggregates = {
        "gap_max": d.gap.max(),
        "gap_sq": (d.gap * d.gap).sum(),
        "lines": d.lines.sum(),
        "total_spend": money_sum(d.spend),
        "max_day_spend": d.spend.max(),
        "total_quantity": d.quantity.sum(),
        "recent_spend": money_sum(ibis.ifelse(age < tw, d.spend, 0.0)),
        "prior_spend": money_sum(ibis.ifelse((age >= tw) & (age < 2 * tw), d.spend, 0.0)),
    }
    for w in spec.windows_days:
        aggregates[f"purchases_{w}d"] = (d.purchase & (age < w)).cast("int64").sum()
        aggregates[f"spend_{w}d"] = money_sum(ibis.ifelse(age < w, d.spend, 0.0))
    if "margin" in d.columns:  # the log maps a margin column
        aggregates[MARGIN] = money_sum(d.margin)
    return aggregates


def behaviour_columns(agg: ir.Table, cutoff: date, spec: FeatureSpec) -> dict[str, ir.Value]:
    """The features, from ``summary_aggregates`` and ``behaviour_aggregates`` of customers with a
    purchase on or before ``cutoff``."""
    cut = ibis.date(cutoff.isoformat())
    recency, tenure = cut.delta(agg.last_day, unit="day"), cut.delta(agg.first_day, unit="day")
    # the gaps between consecutive purchase days add up to last - first: exact integer sums,
    # where parallel float aggregation would vary in the last bit
    n = (agg.occasions - 1).cast("float64")
    total = agg.last_day.delta(agg.first_day, unit="day").cast("float64")
    gap_mean = ibis.ifelse(n > 0, total / n, ibis.null("float64"))
    swing = agg.recent_spend.abs() + agg.prior_spend.abs()
    windows = [f"{kind}_{w}d" for w in spec.windows_days for kind in ("purchases", "spend")]
    return {
        "recency_days": recency,
        "tenure_days": tenure,
        "purchase_days": agg.occasions,
        "gap_max": agg.gap_max,
        "gap_mean": gap_mean,
        "gap_std": ibis.ifelse(
            n > 1,
            ((agg.gap_sq.cast("float64") - total * total / n) / (n - 1)).sqrt(),
            ibis.null("float64"),
        ),
        **{k: agg[k] for k in ("lines", "total_spend", "max_day_spend", "total_quantity")},
        **({MARGIN: agg[MARGIN]} if MARGIN in agg.columns else {}),
        **{k: agg[k] for k in windows},
        "mean_day_spend": agg.total_spend / agg.occasions.cast("float64"),
        "spend_trend": ibis.ifelse(swing > 0, (agg.recent_spend - agg.prior_spend) / swing, 0.0),
        "overdue_ratio": recency.cast("float64") / gap_mean,
        "purchase_rate": agg.occasions.cast("float64") / (tenure + 1).cast("float64"),
    }
