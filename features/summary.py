"""Purchase occasions and the BTYD summary (x, t_x, T, mean repeat spend) at a cutoff."""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir


def purchase_days(txn: ir.Table) -> ir.Table:
    """One row per customer and calendar day: net spend, lines, quantity, purchase flag.

    Transactions on the same day merge into one purchase occasion. A day whose lines are all
    returns (negative amounts) is not a purchase occasion, but its spend still nets against the
    customer's repeat spend.
    """
    return txn.group_by(customer_id=txn.customer_id, day=txn.timestamp.date()).aggregate(
        spend=txn.amount.sum(),
        lines=txn.count(),
        quantity=txn.quantity.sum(),
        purchase=(txn.amount >= 0).any(),
    )


def days_until(days: ir.Table, cutoff: date) -> ir.Table:
    """Purchase days up to and including ``cutoff`` (nothing after it is visible)."""
    return days.filter(days.day <= ibis.date(cutoff.isoformat()))


def btyd_summary(days: ir.Table, cutoff: date, unit_days: int) -> ir.Table:
    """``frequency``, ``recency``, ``T`` (in units of ``unit_days``) and ``monetary_value``.

    ``frequency`` counts repeat purchase days, ``recency`` is the age at the last purchase and
    ``T`` the age at the cutoff, both from the first purchase; ``monetary_value`` is the mean net
    spend of the repeat purchase days (0 without repeats). Customers whose first purchase is after
    the cutoff are absent.
    """
    d = days_until(days, cutoff)
    first = ibis.ifelse(d.purchase, d.day, ibis.null("date")).min().over(group_by="customer_id")
    d = d.mutate(first_day=first)
    agg = d.group_by("customer_id").aggregate(
        first_day=d.first_day.max(),
        last_day=ibis.ifelse(d.purchase, d.day, ibis.null("date")).max(),
        occasions=d.purchase.cast("int64").sum(),
        repeat_spend=ibis.ifelse(d.day > d.first_day, d.spend, 0.0).sum(),
    )
    agg = agg.filter(agg.occasions > 0)
    frequency = agg.occasions - 1
    monetary = ibis.ifelse(
        frequency > 0, ibis.greatest(agg.repeat_spend, 0.0) / frequency.cast("float64"), 0.0
    )
    cut = ibis.date(cutoff.isoformat())
    return agg.select(
        "customer_id",
        frequency=frequency,
        recency=agg.last_day.delta(agg.first_day, unit="day").cast("float64") / unit_days,
        T=cut.delta(agg.first_day, unit="day").cast("float64") / unit_days,
        monetary_value=monetary,
    )
