"""The value views follow their documented rules, on small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.segments import LIFECYCLE_STAGES, TierSettings, assign_tiers
from models.value_views import (
    ActionTable,
    ValueMatrix,
    ValueViewSettings,
    historical_value,
    quantile_level,
    recommended_action,
    retention_priority,
    segment_summary,
    tier_value,
    value_at_risk,
    value_columns,
    value_segment,
)

TERCILES = ValueMatrix(
    cuts=(1 / 3, 2 / 3),  # exact, so that 3 of 9 customers below is a third
    levels=("low", "mid", "high"),
    names={
        h: {c: f"{h}_hist_{c}_clv" for c in ("low", "mid", "high")} for h in ("low", "mid", "high")
    },
)


def scored(n: int = 8, spend: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A scored table (the columns the views read) and its features, ``n`` customers."""
    rng = np.random.default_rng(7)
    features = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "total_spend": rng.uniform(10, 500, n) if spend else np.full(n, np.nan),
        }
    )
    clv = rng.uniform(0, 300, n) if spend else np.full(n, np.nan)
    table = pd.DataFrame(
        {
            "customer_id": features["customer_id"],
            "clv": clv,
            "expected_purchases": rng.uniform(0, 5, n),
            "churn_probability": rng.uniform(0, 1, n),
            "value_tier": assign_tiers(pd.Series(clv if spend else np.arange(n)), TierSettings()),
            "lifecycle_stage": pd.Categorical(
                [LIFECYCLE_STAGES[i % 5] for i in range(n)], categories=LIFECYCLE_STAGES
            ),
        }
    )
    return table, features


def test_value_at_risk_is_clv_times_churn_probability():
    at_risk = value_at_risk(pd.Series([100.0, 50.0, 0.0]), pd.Series([0.2, 1.0, 0.9]))
    assert at_risk.tolist() == pytest.approx([20.0, 50.0, 0.0])


def test_retention_priority_is_dense_and_breaks_ties_by_customer_id():
    at_risk = pd.Series([5.0, 10.0, 5.0, 0.0, 10.0])
    ids = pd.Series(["b", "z", "a", "c", "y"])
    rank = retention_priority(at_risk, ids)
    # 10 (y before z), then 5 (a before b), then 0
    assert rank.tolist() == [4, 2, 3, 5, 1]
    assert sorted(rank) == list(range(1, 6))
    # the same customers in another order get the same ranks
    shuffled = retention_priority(
        at_risk[::-1].reset_index(drop=True), ids[::-1].reset_index(drop=True)
    )
    assert shuffled.tolist() == rank[::-1].tolist()


def test_retention_priority_without_amounts_ranks_the_fallback():
    nothing = pd.Series([np.nan, np.nan, np.nan])
    rank = retention_priority(nothing, pd.Series(["a", "b", "c"]), pd.Series([0.1, 0.9, 0.5]))
    assert rank.tolist() == [3, 1, 2]


def test_quadrants_split_at_the_median_and_name_each_cell():
    history = pd.Series([1.0, 2.0, 3.0, 4.0])
    clv = pd.Series([40.0, 10.0, 30.0, 20.0])
    cells = value_segment(history, clv, ValueMatrix())
    # low hist: c0 (high clv), c1 (low clv); high hist: c2 (high clv), c3 (low clv)
    assert cells.tolist() == ["rising", "low_value", "stars", "fading"]
    assert list(cells.cat.categories) == ["stars", "fading", "rising", "low_value"]


def test_terciles_cut_both_axes_in_three():
    history = pd.Series(np.arange(9, dtype=float))
    clv = pd.Series(np.arange(9, dtype=float)[::-1])
    assert quantile_level(history, TERCILES.cuts).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    cells = value_segment(history, clv, TERCILES)
    assert cells.iloc[0] == "low_hist_high_clv"
    assert cells.iloc[4] == "mid_hist_mid_clv"
    assert cells.iloc[8] == "high_hist_low_clv"
    assert cells.value_counts().gt(0).sum() == 3  # an anti-diagonal


def test_equal_values_share_a_level_and_missing_values_have_none():
    levels = quantile_level(pd.Series([5.0, 5.0, 1.0, 1.0, np.nan]), (0.5,))
    assert levels.tolist() == [1, 1, 0, 0, -1]
    # a level opens where the share of customers strictly below reaches the cut: ties stay low
    assert quantile_level(pd.Series([5.0, 5.0, 5.0, 1.0]), (0.5,)).tolist() == [0, 0, 0, 0]
    cells = value_segment(pd.Series([np.nan, 1.0]), pd.Series([1.0, 1.0]), ValueMatrix())
    assert pd.isna(cells.iloc[0]) and cells.iloc[1] == "low_value"


def test_a_batch_is_placed_in_the_matrix_of_its_population():
    population = pd.DataFrame({"historical_value": np.arange(100.0), "clv": np.arange(100.0)})
    history, clv = pd.Series([10.0, 90.0, 95.0]), pd.Series([90.0, 10.0, 95.0])
    cells = value_segment(history, clv, ValueMatrix(), population)
    assert cells.tolist() == ["rising", "fading", "stars"]
    # among themselves, the same three customers split otherwise
    assert value_segment(history, clv, ValueMatrix()).tolist() != cells.tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cuts": (0.5,), "levels": ("low", "mid", "high")}, "one level more than"),
        ({"cuts": (0.7, 0.3), "levels": ("a", "b", "c")}, "cuts"),
        (
            {"names": {"high": {"high": "x", "low": "y"}, "low": {"high": "z"}}},
            "names.low is {'high': 'z'}; expected a name for each CLV level",
        ),
        (
            {"names": {"high": {"high": "x", "low": "y"}, "low": {"high": "x", "low": "w"}}},
            "a different name for each cell",
        ),
    ],
)
def test_bad_matrices_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ValueMatrix(**kwargs)


def test_actions_come_from_the_table_else_the_default():
    actions = ActionTable(table={"platinum": {"at_risk": "call"}}, default="mail")
    tier = pd.Series(["platinum", "platinum", "bronze"], dtype="category")
    stage = pd.Series(["at_risk", "loyal", "at_risk"], dtype="category")
    assert recommended_action(tier, stage, actions).tolist() == ["call", "mail", "mail"]


def test_the_default_actions_retain_platinum_at_risk_personally():
    tier = pd.Series(["platinum", "bronze"])
    stage = pd.Series(["at_risk", "active"])
    out = recommended_action(tier, stage, ActionTable())
    assert out.tolist() == ["retain: personal outreach", "serve: standard low-cost contact"]


def test_an_action_for_an_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="sleeping"):
        ActionTable(table={"gold": {"sleeping": "wake"}})


def test_tiers_rank_what_tiers_by_names():
    table = pd.DataFrame({"clv": [10.0, 20.0, 30.0], "expected_purchases": [1.0, 1.0, 1.0]})
    features = pd.DataFrame({"total_spend": [300.0, 200.0, 100.0]})
    assert tier_value(table, features, "clv").tolist() == [10.0, 20.0, 30.0]
    assert tier_value(table, features, "historical_value").tolist() == [300.0, 200.0, 100.0]


def test_value_to_date_is_the_margin_to_date_where_the_features_carry_it():
    features = pd.DataFrame({"total_spend": [100.0, 100.0, 0.0], "total_margin": [50.0, 10.0, 0.0]})
    assert historical_value(features).tolist() == [50.0, 10.0, 0.0]
    assert historical_value(features.drop(columns="total_margin")).tolist() == [100, 100, 0]


def test_without_amounts_the_views_have_no_money_but_a_priority_and_an_action():
    table, features = scored(10, spend=False)
    views = value_columns(table, features, ValueViewSettings())
    assert views["historical_value"].isna().all() and views["value_at_risk"].isna().all()
    assert views["value_segment"].isna().all()
    expected_at_risk = table.expected_purchases * table.churn_probability
    assert views["retention_priority"].iloc[int(expected_at_risk.idxmax())] == 1
    assert views["recommended_action"].notna().all()
    # the tiers rank expected purchases; value to date cannot be ranked
    assert tier_value(table, features, "clv", value_per_purchase=2.0).equals(
        table.expected_purchases * 2.0
    )
    with pytest.raises(ValueError, match="amounts"):
        tier_value(table, features, "historical_value")
    summary = segment_summary(pd.concat([table, views], axis=1))
    assert set(summary["view"]) == {"tier_lifecycle"}
    assert summary["total_clv"].isna().all() and summary["customers"].sum() == len(table)


def test_the_segment_summary_adds_up_to_the_table_in_each_view():
    table, features = scored(40)
    full = pd.concat([table, value_columns(table, features, ValueViewSettings())], axis=1)
    summary = segment_summary(full)
    assert set(summary["view"]) == {"tier_lifecycle", "value_matrix"}
    for _, rows in summary.groupby("view"):
        assert rows["customers"].sum() == len(full)
        assert rows["total_clv"].sum() == pytest.approx(full["clv"].sum())
        assert rows["total_value_at_risk"].sum() == pytest.approx(full["value_at_risk"].sum())
        assert rows["expected_purchases"].sum() == pytest.approx(full["expected_purchases"].sum())
        assert rows["total_margin_clv"].isna().all()  # no margin column
    margins = segment_summary(full.assign(margin_clv=full["clv"] * 0.3))
    for _, rows in margins.groupby("view"):
        assert rows["total_margin_clv"].sum() == pytest.approx(0.3 * full["clv"].sum())
    # every tier x stage pair is listed, empty ones too; every matrix cell once
    pairs = summary[summary["view"] == "tier_lifecycle"]
    assert len(pairs) == 4 * 5
    cells = summary[summary["view"] == "value_matrix"]
    assert cells["value_segment"].tolist() == ValueMatrix().cell_names()
    stars = full[full["value_segment"] == "stars"]
    row = cells[cells["value_segment"] == "stars"].iloc[0]
    assert row["customers"] == len(stars)
    assert row["mean_clv"] == pytest.approx(stars["clv"].mean())
    assert row["mean_churn_probability"] == pytest.approx(stars["churn_probability"].mean())


def test_the_settings_survive_a_json_round_trip():
    import json
    from dataclasses import asdict

    settings = ValueViewSettings(matrix=TERCILES, actions=ActionTable(default="mail"))
    back = ValueViewSettings(**json.loads(json.dumps(asdict(settings))))
    assert back == settings


def _scored_with(
    by: str, spend: bool = True, rows: list[int] | None = None, reference=None
) -> pd.DataFrame:
    """The scored table of 20 hand-made customers (or of those at ``rows``), tiers ranking
    ``by``: CLV rises with the row, spend to date falls with it."""
    from datetime import date

    from models.scoring import PREDICTION_COLUMNS, SUMMARY_COLUMNS, scored_table
    from models.segments import LifecycleRules

    n = 20
    features = pd.DataFrame({c: np.ones(n) for c in SUMMARY_COLUMNS})
    features["customer_id"] = [f"c{i:02d}" for i in range(n)]
    features["tenure_days"] = 400.0
    features["total_spend"] = np.arange(n, 0, -1, dtype=float) * 10 if spend else np.nan
    predictions = pd.DataFrame({c: np.full(n, 0.5) for c in PREDICTION_COLUMNS})
    predictions["clv"] = np.arange(n, dtype=float) if spend else np.nan
    predictions["expected_purchases"] = np.arange(n, dtype=float)
    churn = np.linspace(0.1, 0.5, n)
    if rows is not None:
        features, predictions, churn = features.iloc[rows], predictions.iloc[rows], churn[rows]
    tiers = TierSettings(by=by)
    return scored_table(
        features,
        predictions,
        churn,
        tiers,
        LifecycleRules(),
        {},
        date(2024, 1, 1),
        reference=reference,
    )


@pytest.mark.parametrize("by", ["clv", "historical_value"])
def test_a_batch_scored_against_the_population_gets_the_labels_of_the_full_table(by):
    from models.scoring import population

    full = _scored_with(by).set_index("customer_id")
    reference = population(full.reset_index(), by=by)
    batch = _scored_with(by, rows=[0, 9, 19], reference=reference).set_index("customer_id")
    for column in ("value_tier", "value_segment", "recommended_action", "historical_value"):
        assert batch[column].tolist() == full.loc[batch.index, column].tolist(), column
    # among themselves the three would split otherwise
    alone = _scored_with(by, rows=[0, 9, 19]).set_index("customer_id")
    assert alone["value_tier"].tolist() != batch["value_tier"].tolist()


def test_scored_table_tiers_follow_tiers_by():
    by_clv = _scored_with("clv").set_index("customer_id")
    by_history = _scored_with("historical_value").set_index("customer_id")
    assert by_clv.loc["c19", "value_tier"] == "platinum"
    assert by_clv.loc["c00", "value_tier"] == "bronze"
    assert by_history.loc["c00", "value_tier"] == "platinum"
    assert by_history.loc["c19", "value_tier"] == "bronze"
    # the views are there, and the table is sorted by CLV whatever the tiers rank
    assert set(by_clv.columns) >= {
        "historical_value",
        "value_at_risk",
        "retention_priority",
        "value_segment",
        "recommended_action",
    }
    assert _scored_with("historical_value")["clv"].is_monotonic_decreasing
    assert by_clv.loc["c19", "value_at_risk"] == pytest.approx(19 * 0.5)
    assert by_clv["retention_priority"].idxmin() == "c19"


def test_a_purchase_only_table_cannot_tier_by_value_to_date():
    table = _scored_with("clv", spend=False)
    assert table["historical_value"].isna().all() and table["value_segment"].isna().all()
    with pytest.raises(ValueError, match="amounts"):
        _scored_with("historical_value", spend=False)


def test_unknown_tier_basis_is_refused():
    with pytest.raises(
        ValidationError, match="'clv', 'margin_clv', 'historical_value' or 'weighted'"
    ):
        TierSettings(by="spend")
    with pytest.raises(ValueError, match="margin column"):  # a table without margins
        _scored_with("margin_clv")
