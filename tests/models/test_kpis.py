"""KPIs over time: the snapshot of a scored table, the retention since the previous one and the
migration between tiers, on tables whose answers are counted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.kpis import GONE, NEW, appended, migration, snapshot


def table(as_of: str, rows: list[tuple]) -> pd.DataFrame:
    """Rows of (customer, tier, stage, clv, churn probability, days since the last purchase)."""
    frame = pd.DataFrame(
        rows,
        columns=[
            "customer_id",
            "value_tier",
            "lifecycle_stage",
            "clv",
            "churn_probability",
            "recency_days",
        ],
    )
    return frame.assign(
        value_at_risk=frame.clv * frame.churn_probability,
        value_segment=np.where(frame.clv > 50, "stars", "low_value"),
        as_of_date=pd.Timestamp(as_of),
    )


WEEK1 = table(
    "2024-01-07",
    [
        ("a", "gold", "active", 100.0, 0.2, 3),
        ("b", "gold", "at_risk", 80.0, 0.6, 40),
        ("c", "silver", "active", 30.0, 0.3, 10),
        ("d", "silver", "lost", 10.0, 0.9, 200),
    ],
)
# a week later: a and c bought since (recency below 7 days), b and d did not; e is new
WEEK2 = table(
    "2024-01-14",
    [
        ("a", "gold", "active", 110.0, 0.1, 2),
        ("b", "silver", "at_risk", 40.0, 0.7, 47),
        ("c", "gold", "active", 60.0, 0.2, 1),
        ("d", "silver", "lost", 5.0, 0.95, 207),
        ("e", "silver", "new", 20.0, 0.5, 0),
    ],
)


def row(snap: pd.DataFrame, dimension: str, group: str) -> pd.Series:
    found = snap[(snap.dimension == dimension) & (snap.group == group)]
    assert len(found) == 1
    return found.iloc[0]


def test_a_first_snapshot_has_the_kpis_and_no_retention():
    snap = snapshot(WEEK1)
    everyone = row(snap, "all", "all")
    assert everyone.customers == 4 and everyone.clv == 220.0
    assert everyone.value_at_risk == pytest.approx(20 + 48 + 9 + 9)
    assert everyone.expected_churn_rate == pytest.approx(0.5)
    assert pd.isna(everyone.retention_rate) and pd.isna(everyone.previous_customers)
    gold = row(snap, "value_tier", "gold")
    assert gold.customers == 2 and gold.clv == 180.0
    assert set(snap.dimension) == {"all", "value_tier", "lifecycle_stage", "value_segment"}
    assert snap.margin_clv.isna().all()  # no margin column: no profit to total


def test_with_margins_a_snapshot_totals_the_profit_too():
    snap = snapshot(WEEK1.assign(margin_clv=WEEK1.clv * 0.25))
    assert row(snap, "all", "all").margin_clv == 55.0
    assert row(snap, "value_tier", "gold").margin_clv == 45.0


def test_retention_counts_who_bought_since_as_the_previous_table_grouped_them():
    snap = snapshot(WEEK2, WEEK1)
    assert row(snap, "all", "all").retention_rate == pytest.approx(2 / 4)
    gold = row(snap, "value_tier", "gold")  # last week's gold: a bought, b did not
    assert gold.previous_customers == 2 and gold.retention_rate == pytest.approx(0.5)
    assert gold.customers == 2  # this week's gold: a and c
    assert row(snap, "lifecycle_stage", "active").retention_rate == 1.0  # a and c
    assert row(snap, "lifecycle_stage", "lost").retention_rate == 0.0
    new = row(snap, "lifecycle_stage", "new")  # no one was new last week
    assert new.customers == 1 and new.previous_customers == 0 and pd.isna(new.retention_rate)
    assert (snap.previous_as_of_date == pd.Timestamp("2024-01-07")).all()


def test_migration_moves_every_customer_once():
    moves = migration(WEEK2, WEEK1)
    tiers = moves[moves.dimension == "value_tier"].set_index(["from_group", "to_group"]).customers
    assert tiers.to_dict() == {
        ("gold", "gold"): 1,
        ("gold", "silver"): 1,
        ("silver", "gold"): 1,
        ("silver", "silver"): 1,
        (NEW, "silver"): 1,
    }
    for dimension in ("value_tier", "lifecycle_stage"):
        assert moves[moves.dimension == dimension].customers.sum() == 5
    gone = migration(WEEK1, WEEK2)  # the other way round: e leaves
    assert ("silver", GONE) in set(zip(gone.from_group, gone.to_group, strict=True))


def test_a_log_without_amounts_has_null_money_not_zero():
    purchase_only = WEEK1.assign(clv=np.nan, value_at_risk=np.nan, value_segment=None)
    snap = snapshot(purchase_only)
    assert snap.clv.isna().all() and snap.value_at_risk.isna().all()
    assert "value_segment" not in set(snap.dimension)


def test_the_history_grows_by_date_and_a_day_scored_again_replaces_its_rows():
    first = snapshot(WEEK1)
    history = appended(None, first)
    history = appended(history, snapshot(WEEK2, WEEK1))
    assert history.as_of_date.nunique() == 2 and history.as_of_date.is_monotonic_increasing
    again = appended(history, snapshot(WEEK2.assign(clv=WEEK2.clv * 2), WEEK1))
    assert len(again) == len(history)
    assert row(again[again.as_of_date == "2024-01-14"], "all", "all").clv == 2 * 235.0
