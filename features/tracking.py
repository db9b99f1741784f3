"""Repeat purchases per period since the start of the log: the actual side of a tracking plot."""

from __future__ import annotations

from datetime import date

import ibis
import ibis.expr.types as ir


def repeat_purchases_by_period(days: ir.Table, start: date, unit_days: int) -> ir.Table:
    """``period`` (0-based, ``unit_days`` long, from ``start``) and its ``repeats``.

    A repeat purchase is any purchase day of a customer after their first one.
    """
    first = (
        ibis.ifelse(days.purchase, days.day, ibis.null("date")).min().over(group_by="customer_id")
    )
    d = days.mutate(first_day=first)
    repeats = d.filter(d.purchase & (d.day > d.first_day))
    period = repeats.day.delta(ibis.date(start.isoformat()), unit="day") // unit_days
    return repeats.group_by(period=period).aggregate(repeats=repeats.count()).order_by("period")
