"""Value tiers, lifecycle stages and RFM segments follow their documented rules."""

import itertools

import numpy as np
import pandas as pd
import pytest

from models.segments import (
    RFM_SEGMENTS,
    LifecycleRules,
    TierSettings,
    assign_tiers,
    lifecycle_stage,
    quintile_score,
    rfm_scores,
)


def test_quantile_tiers_split_customers_by_clv_rank():
    clv = pd.Series(np.arange(100, dtype=float))  # 0..99
    tiers = assign_tiers(clv, TierSettings())
    counts = tiers.value_counts()
    assert counts["platinum"] == 5 and counts["gold"] == 15
    assert counts["silver"] == 30 and counts["bronze"] == 50
    assert tiers.iloc[99] == "platinum" and tiers.iloc[0] == "bronze"
    assert tiers.cat.ordered and list(tiers.cat.categories)[0] == "platinum"


def test_equal_clv_shares_a_tier():
    clv = pd.Series([0.0] * 60 + [5.0] * 40)
    tiers = assign_tiers(clv, TierSettings())
    assert tiers[clv == 0].nunique() == 1 and tiers[clv == 5].nunique() == 1
    assert set(tiers[clv == 0]) == {"bronze"}


def test_threshold_tiers_use_absolute_bounds():
    settings = TierSettings(method="threshold", names=("high", "mid", "low"), bounds=(100, 10))
    tiers = assign_tiers(pd.Series([150.0, 100.0, 99.9, 10.0, 0.0]), settings)
    assert tiers.tolist() == ["high", "high", "mid", "mid", "low"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "kmeans"}, "'quantile' or 'threshold'"),
        ({"names": ("a", "b")}, "one name more than tiers.bounds"),
        ({"bounds": (0.5, 0.8, 0.95)}, "strictly decreasing"),
        ({"bounds": (1.5, 0.8, 0.5)}, r"quantiles in \(0, 1\)"),
    ],
)
def test_bad_tier_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TierSettings(**kwargs)


def test_lifecycle_rules_in_their_documented_order():
    rules = LifecycleRules()
    customers = pd.DataFrame(
        {
            "tenure_days": [30, 400, 400, 400, 400, 400, 400],
            "frequency": [0, 10, 1, 1, 5, 1, 10],
            "p_alive": [0.1, 0.1, 0.95, 0.4, 0.9, 0.9, 0.9],
            "churn_probability": [0.95, 0.1, 0.95, 0.1, 0.1, 0.2, 0.7],
        }
    )
    stages = lifecycle_stage(customers, rules).tolist()
    assert stages == ["new", "lost", "lost", "at_risk", "loyal", "active", "at_risk"]


def test_rfm_grid_covers_every_cell_once():
    cells = [(r, f) for _, rs, fs in RFM_SEGMENTS for r, f in itertools.product(rs, fs)]
    assert sorted(cells) == sorted(itertools.product(range(1, 6), range(1, 6)))


def test_rfm_scores_rank_recency_backwards():
    customers = pd.DataFrame(
        {
            "recency_days": [1, 10, 100, 200, 300],
            "purchase_days": [9, 7, 5, 3, 1],
            "total_spend": [500.0, 400.0, 300.0, 200.0, 100.0],
        }
    )
    rfm = rfm_scores(customers)
    assert rfm.rfm_recency.tolist() == [5, 4, 3, 2, 1]
    assert rfm.rfm_frequency.tolist() == [5, 4, 3, 2, 1]
    assert rfm.rfm_score.tolist() == [555, 444, 333, 222, 111]
    assert rfm.rfm_segment.tolist() == [
        "rfm_champions",
        "rfm_champions",
        "rfm_need_attention",
        "rfm_hibernating",
        "rfm_lost",
    ]


def test_quintile_ties_share_a_score():
    scores = quintile_score(pd.Series([1, 1, 1, 1, 2, 3, 4, 5, 6, 7]))
    assert scores.iloc[:4].nunique() == 1
