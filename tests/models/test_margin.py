"""Profit: the margin share, shrunk toward the population's, and the margin CLV the tiers, the
value at risk and the value matrix weigh where the log has margins; tiers of accounts by
frequency, amount and profit together."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.margin import margin_columns, margin_share
from models.scoring import PREDICTION_COLUMNS, SUMMARY_COLUMNS, population, scored_table
from models.segments import LifecycleRules, TierSettings, TierWeights
from models.value_views import weighted_score

POPULATION = pd.DataFrame(
    {  # 1,000 spent over 10 purchase days at a 30 % margin
        "total_spend": [600.0, 400.0],
        "total_margin": [180.0, 120.0],
        "purchase_days": [6, 4],
    }
)


def customers(margin: list[float], spend: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"total_margin": margin, "total_spend": spend})


def test_a_share_is_the_customer_s_own_weighed_against_the_population_s():
    # one purchase day of 100 at 60 %, three prior days of 100 at 30 %: (60 + 90) / (100 + 300)
    one = margin_share(customers([60.0], [100.0]), POPULATION, prior_days=3)
    assert one == pytest.approx([150 / 400])
    # many purchases keep nearly their own share; no prior keeps it exactly
    many = margin_share(customers([6000.0], [10_000.0]), POPULATION, prior_days=3)
    assert many[0] == pytest.approx(0.6, abs=0.01)
    assert margin_share(customers([60.0], [100.0]), POPULATION, 0) == pytest.approx([0.6])
    # nothing spent: the population's share (with or without a prior to weigh)
    assert margin_share(customers([0.0], [0.0]), POPULATION, 3) == pytest.approx([0.3])
    assert margin_share(customers([0.0], [0.0]), POPULATION, 0) == pytest.approx([0.3])


def test_the_margin_clv_is_the_clv_times_the_share_and_a_loss_keeps_its_interval_ordered():
    table = customers([60.0, -50.0], [100.0, 100.0]).assign(
        clv=[200.0, 200.0], clv_lower=[100.0, 100.0], clv_upper=[300.0, 300.0]
    )
    out = margin_columns(table, POPULATION, prior_days=0)
    assert out.margin_share.tolist() == pytest.approx([0.6, -0.5])
    assert out.margin_clv.tolist() == pytest.approx([120.0, -100.0])
    assert out.margin_clv_lower.tolist() == pytest.approx([60.0, -150.0])
    assert out.margin_clv_upper.tolist() == pytest.approx([180.0, -50.0])


def b2b_table(rows: list[int] | None = None, reference=None, by: str = "margin_clv", weights=None):
    """Twenty accounts, large orders, as many purchase days each: spend to date and revenue
    CLV rise with the row, margin to date falls with it (a big account buying at thin
    margins), so revenue and profit rank them apart."""
    n = 20
    features = pd.DataFrame({c: np.ones(n) for c in SUMMARY_COLUMNS})
    features["customer_id"] = [f"a{i:02d}" for i in range(n)]
    features["tenure_days"] = 400.0
    features["purchase_days"] = 12.0
    spend = np.linspace(20_000, 200_000, n)
    features["total_spend"] = spend
    features["total_margin"] = np.linspace(40_000, 2_000, n)
    predictions = pd.DataFrame({c: np.full(n, 0.5) for c in PREDICTION_COLUMNS})
    for suffix, factor in (("", 1.0), ("_lower", 0.8), ("_upper", 1.2)):
        predictions[f"clv{suffix}"] = spend * factor
    churn = np.linspace(0.1, 0.5, n)
    if rows is not None:
        features, predictions, churn = features.iloc[rows], predictions.iloc[rows], churn[rows]
    return scored_table(
        features,
        predictions,
        churn,
        TierSettings(by=by, weights=weights or TierWeights()),
        LifecycleRules(),
        {},
        date(2024, 1, 1),
        reference=reference,
    ).set_index("customer_id")


def test_accounts_are_tiered_by_the_profit_they_bring():
    by_profit, by_revenue = b2b_table(), b2b_table(by="clv")
    assert by_revenue.loc["a19", "value_tier"] == "platinum"
    assert by_profit.loc["a19", "value_tier"] == "bronze"  # the most revenue, the least profit
    best = by_profit.margin_clv.idxmax()
    assert by_profit.loc[best, "value_tier"] == "platinum" and best != "a19"
    # value to date, value at risk and the value matrix are in profit too
    assert by_profit.historical_value.tolist() == by_profit.total_margin.tolist()
    assert by_profit.value_at_risk.to_numpy() == pytest.approx(
        by_profit.margin_clv.to_numpy() * by_profit.churn_probability.to_numpy()
    )
    assert by_profit.loc[best, "value_segment"] == "stars"
    assert by_profit.loc["a19", "value_segment"] == "low_value"


def test_a_batch_gets_the_shares_and_tiers_of_the_full_table():
    full = b2b_table()
    reference = population(full.reset_index(), by="margin_clv")
    batch = b2b_table(rows=[0, 7, 19], reference=reference)
    for column in ("margin_share", "margin_clv", "value_tier", "value_segment"):
        assert batch[column].tolist() == full.loc[batch.index, column].tolist(), column
    alone = b2b_table(rows=[0, 7, 19])  # its own population: other shares
    assert alone.margin_share.tolist() != batch.margin_share.tolist()


def test_weighted_tiers_score_frequency_amount_and_profit_together():
    """B2B accounts: a score per count (the share of accounts below), averaged by the weights."""
    table = b2b_table(by="weighted")
    assert table.value_tier.tolist() != b2b_table(by="margin_clv").value_tier.tolist()
    # purchase days are equal: the score is amount and profit, which rank the accounts oppositely
    score = weighted_score(table, TierWeights(frequency=1, amount=1, profit=1))
    assert score.to_numpy() == pytest.approx(np.full(20, (0 + 19 / 20) / 3))
    by_profit = weighted_score(table, TierWeights(frequency=0, amount=0, profit=2))
    assert by_profit.sort_index().to_numpy() == pytest.approx(np.arange(19, -1, -1) / 20)
    with pytest.raises(
        ValueError, match="tiers.weights.profit is 1.0; the log has no total_margin"
    ):
        weighted_score(table.drop(columns="total_margin"), TierWeights())


def test_a_batch_gets_the_weighted_tiers_of_the_full_table():
    weights = TierWeights(frequency=0.5, amount=1, profit=2)
    full = b2b_table(by="weighted", weights=weights)
    reference = population(full.reset_index(), by="weighted", weights=weights)
    batch = b2b_table(rows=[0, 7, 19], reference=reference, by="weighted", weights=weights)
    assert batch.value_tier.tolist() == full.loc[batch.index, "value_tier"].tolist()
    assert full.loc["a00", "value_tier"] == "platinum"  # the most profit weighs most


def test_weights_are_checked():
    with pytest.raises(ValidationError, match="expected a weight above 0"):
        TierWeights(frequency=0, amount=0, profit=0)
    with pytest.raises(ValidationError, match=r"profit\n.*a number >= 0"):
        TierWeights(profit=-1)
