"""Behavioural features of each customer at a cutoff, for the churn model."""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir

from features.spec import FeatureSpec
from features.summary import days_until


def behaviour_features(days: ir.Table, cutoff: date, spec: FeatureSpec) -> ir.Table:
    """Counts and spend in trailing windows, recency, tenure, gaps between purchases, trend.

    Uses only purchase days on or before ``cutoff``. Undefined values (e.g. gap statistics of a
    one-time buyer) are NULL, which the churn model treats as missing.
    """
    d = days_until(days, cutoff)
    d = d.mutate(age=ibis.date(cutoff.isoformat()).delta(d.day, unit="day"))
    p = d.filter(d.purchase)
    p = p.mutate(
        gap=p.day.delta(p.day.lag().over(group_by="customer_id", order_by="day"), unit="day")
    )
    gaps = p.group_by("customer_id").aggregate(
        recency_days=p.age.min(),
        tenure_days=p.age.max(),
        purchase_days=p.count(),
        gaps=p.gap.count(),
        gap_sum=p.gap.sum(),
        gap_sq=(p.gap * p.gap).sum(),
        gap_max=p.gap.max(),
    )
    # mean and std from exact integer sums: parallel float aggregation would vary in the last bit
    n, total = gaps.gaps.cast("float64"), gaps.gap_sum.cast("float64")
    gaps = gaps.mutate(
        gap_mean=ibis.ifelse(gaps.gaps > 0, total / n, ibis.null("float64")),
        gap_std=ibis.ifelse(
            gaps.gaps > 1,
            ((gaps.gap_sq.cast("float64") - total * total / n) / (n - 1)).sqrt(),
            ibis.null("float64"),
        ),
    ).drop("gaps", "gap_sum", "gap_sq")
    tw = spec.trend_window_days
    metrics = {
        "lines": d.lines.sum(),
        "total_spend": d.spend.sum(),
        "max_day_spend": d.spend.max(),
        "total_quantity": d.quantity.sum(),
        "recent_spend": ibis.ifelse(d.age < tw, d.spend, 0.0).sum(),
        "prior_spend": ibis.ifelse((d.age >= tw) & (d.age < 2 * tw), d.spend, 0.0).sum(),
    }
    for w in spec.windows_days:
        metrics[f"purchases_{w}d"] = (d.purchase & (d.age < w)).cast("int64").sum()
        metrics[f"spend_{w}d"] = ibis.ifelse(d.age < w, d.spend, 0.0).sum()
    agg = gaps.join(d.group_by("customer_id").aggregate(**metrics), "customer_id")
    swing = agg.recent_spend.abs() + agg.prior_spend.abs()
    return agg.mutate(
        mean_day_spend=agg.total_spend / agg.purchase_days.cast("float64"),
        spend_trend=ibis.ifelse(swing > 0, (agg.recent_spend - agg.prior_spend) / swing, 0.0),
        overdue_ratio=agg.recency_days.cast("float64") / agg.gap_mean,
        purchase_rate=agg.purchase_days.cast("float64") / (agg.tenure_days + 1).cast("float64"),
    ).drop("recent_spend", "prior_spend")
