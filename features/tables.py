"""The per-customer tables the models use: calibration/holdout, scoring and churn training."""

from __future__ import annotations

from datetime import date, timedelta
from functools import reduce
from operator import add

import ibis
import ibis.expr.types as ir

from features.behaviour import behaviour_aggregates, behaviour_columns
from features.labels import attach_churn_label, attach_outcomes
from features.spec import FeatureSpec
from features.summary import days_until, summary_aggregates, summary_columns
from features.tracking import repeat_purchases_by_period


def customer_features(days: ir.Table, cutoff: date, spec: FeatureSpec) -> ir.Table:
    """BTYD summary and behavioural features of every customer known at ``cutoff``.

    One aggregation over the days up to the cutoff: a single pass over the log.
    """
    d = days_until(days, cutoff)
    aggregates = summary_aggregates(d) | behaviour_aggregates(d, cutoff, spec)
    agg = d.group_by("customer_id").aggregate(**aggregates)
    agg = agg.filter(agg.occasions > 0)
    return agg.select(
        "customer_id",
        **summary_columns(agg, cutoff, spec.unit_days),
        **behaviour_columns(agg, cutoff, spec),
        cutoff=ibis.date(cutoff.isoformat()),
    )


def calibration_table(
    days: ir.Table, cutoff: date, holdout_end: date, spec: FeatureSpec
) -> ir.Table:
    """Features at the calibration cutoff with the holdout outcomes and the churn label.

    ``holdout_purchases``/``holdout_spend`` cover (cutoff, holdout_end]; ``churned`` covers the
    churn horizon after the cutoff.
    """
    table = customer_features(days, cutoff, spec)
    table = attach_outcomes(table, days, cutoff, holdout_end, "holdout")
    return attach_churn_label(table, days, cutoff, spec.churn_horizon_days)


def training_cutoffs(anchor: date, first_day: date, spec: FeatureSpec) -> list[date]:
    """Past cutoffs whose churn window ends on or before ``anchor``, newest first.

    ``spec.train_cutoffs`` of them, ``train_cutoff_step_days`` apart from the latest; then
    ``spec.selection_cutoffs`` more whose churn windows end on or before the latest cutoff, so a
    model trained on them alone can be judged on the latest one as a model trained before the
    anchor is judged after it (no label window shared). Cutoffs before ``first_day`` (no
    customers yet) are left out.
    """
    horizon = timedelta(days=spec.churn_horizon_days)
    latest = anchor - horizon
    step = timedelta(days=spec.train_cutoff_step_days)

    def back_from(newest: date, count: int) -> set[date]:  # none before first_day (no overflow)
        fits = (newest - first_day) // step + 1 if newest >= first_day else 0
        return {newest - k * step for k in range(min(count, fits))}

    cutoffs = back_from(latest, spec.train_cutoffs) | back_from(
        latest - horizon, spec.selection_cutoffs
    )
    return sorted(cutoffs, reverse=True)


def training_table(days: ir.Table, cutoffs: list[date], spec: FeatureSpec) -> ir.Table:
    """Stacked features and churn labels at several past cutoffs, a row per customer and cutoff."""
    if not cutoffs:
        raise ValueError("no training cutoff: the history is shorter than the churn horizon")
    parts = [
        attach_churn_label(customer_features(days, c, spec), days, c, spec.churn_horizon_days)
        for c in cutoffs
    ]
    return ibis.union(*parts) if len(parts) > 1 else parts[0]


def stage_tables(
    days: ir.Table, dates: dict[str, date], first_day: date, spec: FeatureSpec
) -> dict[str, list[ir.Table]]:
    """Every table of the features stage, each as its parts in the order they are written.

    ``calibration`` (at ``dates["calibration_end"]``, outcomes up to ``dates["holdout_end"]``),
    ``scoring`` (at ``dates["scoring_date"]``), the stacked training tables before each of the
    two (one part per cutoff, oldest first, so an engine holds one cutoff's customers at a time)
    and ``repeats``, the repeat purchases per period since ``first_day`` (a tracking plot's
    actual side). Rows are in (cutoff, customer) order; ``repeats`` in period order.
    """
    order = ["cutoff", "customer_id"]
    cal, scoring = dates["calibration_end"], dates["scoring_date"]

    def stacked(anchor: date) -> list[ir.Table]:
        cutoffs = sorted(training_cutoffs(anchor, first_day, spec))
        return [training_table(days, [c], spec).order_by(order) for c in cutoffs]

    return {
        "calibration": [calibration_table(days, cal, dates["holdout_end"], spec).order_by(order)],
        "scoring": [customer_features(days, scoring, spec).order_by(order)],
        "train_calibration": stacked(cal),
        "train_scoring": stacked(scoring),
        "repeats": [repeat_purchases_by_period(days, first_day, spec.unit_days)],
    }


def customers_dropped_by_netting(days: ir.Table, cutoffs: dict[str, list[date]]) -> ir.Table:
    """One row: per table (name -> its cutoffs), the customers left out because every line they
    have up to a cutoff is a return (``rules.returns: net``), counted once per cutoff.

    :func:`customer_features` keeps customers with a purchase day up to the cutoff; one whose
    lines net to returns only is in the log but has none, and is not in the table.
    """
    seen = days.group_by("customer_id").aggregate(
        first_line=days.day.min(), first_purchase=days.day.min(where=days.purchase)
    )

    def dropped(cutoff: date) -> ir.IntegerScalar:
        cut = ibis.date(cutoff.isoformat())
        none_yet = seen.first_purchase.isnull() | (seen.first_purchase > cut)
        return ibis.ifelse((seen.first_line <= cut) & none_yet, 1, 0).sum()

    return seen.aggregate(
        **{name: reduce(add, map(dropped, dates)) for name, dates in cutoffs.items() if dates}
    )
