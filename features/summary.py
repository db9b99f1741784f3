"""Purchase occasions and the BTYD summary (x, t_x, T, mean repeat spend) at a cutoff."""

from __future__ import annotations

import math
from datetime import date

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

# money is added up as exact decimals: a float sum depends on the order the engine's threads add
# in, and the same log must give the same bytes (amounts are kept to 6 decimal places)
MONEY = dt.Decimal(38, 6)


def money_sum(values: ir.NumericColumn) -> ir.FloatingScalar:
    """The sum of the amounts ``values``, exact to 6 decimal places, as a float."""
    return values.cast(MONEY).sum().cast("float64")


def purchase_days(txn: ir.Table, margin: bool = False) -> ir.Table:
    """One row per customer and calendar day: net spend, lines, quantity, purchase flag, the
    customer's first purchase day and the days since their previous purchase day (``gap``);
    with ``margin`` (the log maps a margin column), the day's net margin too.

    Transactions on the same day merge into one purchase occasion. A day whose lines are all
    returns (negative amounts) is not a purchase occasion, but its spend still nets against the
    customer's repeat spend. ``first_day`` and ``gap`` look only backwards from a purchase day,
    so every cutoff reads them as they are: the per-cutoff tables need no window of their own.
    """
    days = txn.group_by(customer_id=txn.customer_id, day=txn.timestamp.date()).aggregate(
        spend=money_sum(txn.amount),
        lines=txn.count(),
        quantity=txn.quantity.sum(),
        purchase=(txn.amount.fill_null(0.0) >= 0).any(),  # a purchase-only log: every line
        **({"margin": money_sum(txn.margin)} if margin else {}),
    )
    purchase_day = ibis.ifelse(days.purchase, days.day, ibis.null("date"))
    history = {"group_by": "customer_id", "order_by": "day"}
    previous = purchase_day.max().over(ibis.window(**history, preceding=(None, 1)))
    return days.mutate(
        first_day=purchase_day.min().over(ibis.window(**history, preceding=None, following=None)),
        gap=ibis.ifelse(days.purchase, days.day.delta(previous, unit="day"), ibis.null("int64")),
    )


def days_until(days: ir.Table, cutoff: date) -> ir.Table:
    """Purchase days up to and including ``cutoff`` (nothing after it is visible)."""
    return days.filter(days.day <= ibis.date(cutoff.isoformat()))


def summary_aggregates(d: ir.Table) -> dict[str, ir.Value]:
    """Per-customer aggregates of the days ``d`` (up to a cutoff) the BTYD summary is made of."""
    return {
        "first_day": d.first_day.max(),
        "last_day": d.day.max(where=d.purchase),
        "occasions": d.purchase.cast("int64").sum(),
        "repeat_spend": money_sum(ibis.ifelse(d.day > d.first_day, d.spend, 0.0)),
        # in integer nanounits, so the sum does not depend on the order it is taken in
        "log_gaps": (d.gap.cast("float64").ln() * 1e9).round().cast("int64").sum().coalesce(0),
    }


def summary_columns(agg: ir.Table, cutoff: date, unit_days: int) -> dict[str, ir.Value]:
    """``frequency``, ``recency``, ``T``, ``monetary_value`` and ``log_gap_sum`` (the sum of
    the logs of the times between consecutive purchases, in units of ``unit_days``: what
    MBG/CNBD-k's regularity is chosen by) from ``summary_aggregates``."""
    frequency = agg.occasions - 1
    monetary = ibis.ifelse(
        frequency > 0, ibis.greatest(agg.repeat_spend, 0.0) / frequency.cast("float64"), 0.0
    )
    cut = ibis.date(cutoff.isoformat())
    return {
        "frequency": frequency,
        "recency": agg.last_day.delta(agg.first_day, unit="day").cast("float64") / unit_days,
        "T": cut.delta(agg.first_day, unit="day").cast("float64") / unit_days,
        "monetary_value": monetary,
        "log_gap_sum": agg.log_gaps.cast("float64") / 1e9
        - frequency.cast("float64") * math.log(unit_days),
    }


def btyd_summary(days: ir.Table, cutoff: date, unit_days: int) -> ir.Table:
    """``frequency``, ``recency``, ``T`` (in units of ``unit_days``), ``monetary_value`` and
    ``log_gap_sum``.

    ``frequency`` counts repeat purchase days, ``recency`` is the age at the last purchase and
    ``T`` the age at the cutoff, both from the first purchase; ``monetary_value`` is the mean net
    spend of the repeat purchase days (0 without repeats). Customers whose first purchase is after
    the cutoff are absent.
    """
    d = days_until(days, cutoff)
    agg = d.group_by("customer_id").aggregate(**summary_aggregates(d))
    agg = agg.filter(agg.occasions > 0)
    return agg.select("customer_id", **summary_columns(agg, cutoff, unit_days))
