"""Outcomes in a window after a cutoff: holdout purchases and spend, and the churn label."""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import ibis.expr.types as ir

from features.summary import money_sum


def window_outcomes(days: ir.Table, start: date, end: date, prefix: str) -> ir.Table:
    """``{prefix}_purchases`` (purchase days) and ``{prefix}_spend`` in the window (start, end]."""
    w = days.filter(
        (days.day > ibis.date(start.isoformat())) & (days.day <= ibis.date(end.isoformat()))
    )
    return w.group_by("customer_id").aggregate(
        **{
            f"{prefix}_purchases": w.purchase.cast("int64").sum(),
            f"{prefix}_spend": money_sum(w.spend),
        }
    )


def attach_outcomes(
    customers: ir.Table, days: ir.Table, start: date, end: date, prefix: str
) -> ir.Table:
    """Left-join window outcomes onto ``customers``; no activity in the window gives zeros."""
    out = window_outcomes(days, start, end, prefix)
    joined = customers.left_join(out, "customer_id").drop("customer_id_right")
    return joined.mutate(
        **{
            f"{prefix}_purchases": joined[f"{prefix}_purchases"].fill_null(0),
            f"{prefix}_spend": joined[f"{prefix}_spend"].fill_null(0.0),
        }
    )


def attach_churn_label(
    customers: ir.Table, days: ir.Table, cutoff: date, horizon_days: int
) -> ir.Table:
    """``churned``: no purchase in the ``horizon_days`` days after ``cutoff``."""
    end = cutoff + timedelta(days=horizon_days)
    labelled = attach_outcomes(customers, days, cutoff, end, "next")
    return labelled.mutate(churned=labelled.next_purchases == 0)
