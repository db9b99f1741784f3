"""Hand-computed checks of the value and churn metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.evaluation import metrics

# --------------------------------------------------------------------------------------------
# value metrics
# --------------------------------------------------------------------------------------------


def test_gini_perfect_and_reversed_ordering() -> None:
    actual = np.array([0.0, 1.0, 3.0, 10.0])
    assert metrics.normalised_gini(actual, actual) == pytest.approx(1.0)
    assert metrics.normalised_gini(actual, -actual) == pytest.approx(-1.0)
    # any increasing transform of the prediction ranks the same
    assert metrics.normalised_gini(actual, np.exp(actual)) == pytest.approx(1.0)


def test_gini_hand_computed() -> None:
    # actual [1, 2, 3], total 6. Predicted order (desc) 3, 2, 1 -> shares 3/6, 5/6, 6/6,
    # gini = (1/3) * ((0.5 - 1/3) + (5/6 - 2/3) + (1 - 1)) = 1/9
    assert metrics.gini([1, 2, 3], [1, 2, 3]) == pytest.approx(1 / 9)
    # predicted [1, 3, 2] orders the actuals 2, 3, 1: shares 2/6, 5/6, 1
    # gini = (1/3) * ((1/3 - 1/3) + (5/6 - 2/3) + 0) = 1/18 -> normalised 1/2
    assert metrics.gini([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 18)
    assert metrics.normalised_gini([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # predicted [2, 3, 1] orders them 2, 1, 3: shares 2/6, 3/6, 1 -> gini -1/18
    assert metrics.gini([1, 2, 3], [2, 3, 1]) == pytest.approx(-1 / 18)


def test_gini_ties_are_order_independent() -> None:
    # a constant prediction carries no ranking information: gini 0 whatever the row order
    assert metrics.normalised_gini([5, 0, 0, 1], [1, 1, 1, 1]) == pytest.approx(0.0)
    assert metrics.normalised_gini([0, 0, 1, 5], [1, 1, 1, 1]) == pytest.approx(0.0)


def test_value_metrics_hand_computed() -> None:
    actual = pd.Series([0.0, 10.0, 20.0, 30.0], index=[7, 3, 9, 1])
    predicted = np.array([2.0, 8.0, 24.0, 30.0])
    m = metrics.value_metrics(actual, predicted)
    # errors 2, -2, 4, 0
    assert m["mae"] == pytest.approx(2.0)
    assert m["rmse"] == pytest.approx(math.sqrt((4 + 4 + 16 + 0) / 4))
    assert m["spearman"] == pytest.approx(1.0)
    assert m["normalised_gini"] == pytest.approx(1.0)
    assert m["total_actual"] == pytest.approx(60.0)
    assert m["total_predicted"] == pytest.approx(64.0)
    assert m["aggregate_error_pct"] == pytest.approx(100 * 4 / 60)
    assert m["n"] == 4


def test_value_metrics_degenerate() -> None:
    m = metrics.value_metrics([0.0, 0.0], [1.0, 2.0])
    assert math.isnan(m["normalised_gini"])
    assert math.isnan(m["spearman"])
    assert math.isnan(m["aggregate_error_pct"])
    assert m["mae"] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("actual", "predicted", "match"),
    [([], [], "empty"), ([1.0, 2.0], [1.0], "differ"), ([1.0, np.nan], [1.0, 2.0], "non-finite")],
)
def test_value_metrics_rejects_bad_input(actual: list, predicted: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metrics.value_metrics(actual, predicted)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0, 1e4, allow_nan=False), min_size=2, max_size=40).filter(
        lambda a: len(set(a)) > 1
    ),
    st.randoms(use_true_random=False),
)
def test_normalised_gini_is_bounded(actual: list[float], rnd: object) -> None:
    predicted = list(actual)
    rnd.shuffle(predicted)  # type: ignore[attr-defined]
    g = metrics.normalised_gini(actual, predicted)
    assert -1 - 1e-9 <= g <= 1 + 1e-9


# --------------------------------------------------------------------------------------------
# churn metrics
# --------------------------------------------------------------------------------------------


def test_churn_metrics_hand_computed() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.6, 0.4])
    m = metrics.churn_metrics(y, p, bins=10)
    assert m["roc_auc"] == pytest.approx(1.0)
    assert m["pr_auc"] == pytest.approx(1.0)
    # (0.1^2 + 0.1^2 + 0.4^2 + 0.4^2) / 4
    assert m["brier"] == pytest.approx(0.085)
    assert m["log_loss"] == pytest.approx(-(2 * math.log(0.9) + 2 * math.log(0.6)) / 4)
    # one row per bin: |y - p| averaged = (0.1 + 0.1 + 0.4 + 0.4) / 4
    assert m["ece"] == pytest.approx(0.25)
    # top 10% of 4 rows = ceil(0.4) = 1 row (p=0.9, churned): rate 1 over base 0.5
    assert m["top_decile_lift"] == pytest.approx(2.0)
    assert m["base_rate"] == pytest.approx(0.5)


def test_roc_auc_hand_computed() -> None:
    # pairs (pos, neg): (0.8>0.3), (0.8>0.5), (0.4>0.3), (0.4<0.5) -> 3/4
    m = metrics.churn_metrics([1, 1, 0, 0], [0.8, 0.4, 0.3, 0.5])
    assert m["roc_auc"] == pytest.approx(0.75)


def test_ece_zero_for_perfectly_calibrated_bins() -> None:
    # bin [0.2, 0.3): p = 0.25, 4 rows, 1 churner; bin [0.7, 0.8): p = 0.75, 4 rows, 3 churners
    y = [1, 0, 0, 0, 1, 1, 1, 0]
    p = [0.25] * 4 + [0.75] * 4
    assert metrics.expected_calibration_error(y, p) == pytest.approx(0.0)
    # one bin covering everything: mean p 0.5 vs rate 0.5 -> also 0
    assert metrics.expected_calibration_error(y, p, bins=1) == pytest.approx(0.0)


def test_ece_hand_computed_miscalibration() -> None:
    # everyone predicted 0.9 but half churn: |0.5 - 0.9|
    assert metrics.expected_calibration_error([1, 0, 1, 0], [0.9] * 4) == pytest.approx(0.4)


def test_top_decile_lift_hand_computed() -> None:
    # 20 rows, top 10% = 2 rows with the highest scores, both churners; base rate 4/20
    y = np.zeros(20)
    y[[0, 1, 5, 6]] = 1
    p = np.linspace(0.0, 0.5, 20)[::-1]  # row 0 highest
    assert metrics.top_fraction_lift(y, p) == pytest.approx(1.0 / 0.2)
    # ties at the boundary enter fractionally: all tied -> lift 1
    assert metrics.top_fraction_lift(y, np.full(20, 0.3)) == pytest.approx(1.0)


def test_single_class_gives_nan_without_error() -> None:
    m = metrics.churn_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["pr_auc"])
    assert math.isnan(m["top_decile_lift"])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    m1 = metrics.churn_metrics([True, True], [0.5, 0.7])
    assert math.isnan(m1["roc_auc"])
    assert m1["top_decile_lift"] == pytest.approx(1.0)
    curve = metrics.roc_curve_points([1, 1], [0.5, 0.7])
    assert curve["fpr"].isna().all()


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([], [], "empty"),
        ([0, 2], [0.1, 0.2], "binary"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1], "differ"),
    ],
)
def test_churn_metrics_rejects_bad_input(y: list, p: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metrics.churn_metrics(y, p)


def test_bins_validated() -> None:
    with pytest.raises(ValueError, match="bins"):
        metrics.churn_metrics([0, 1], [0.1, 0.9], bins=0)


def test_roc_curve_points() -> None:
    curve = metrics.roc_curve_points([1, 1, 0, 0], [0.8, 0.4, 0.3, 0.5])
    assert list(curve.columns) == ["threshold", "fpr", "tpr"]
    assert (curve.fpr.iloc[0], curve.tpr.iloc[0]) == (0.0, 0.0)
    assert (curve.fpr.iloc[-1], curve.tpr.iloc[-1]) == (1.0, 1.0)
    assert curve.fpr.is_monotonic_increasing and curve.tpr.is_monotonic_increasing
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(0.75)


def test_calibration_curve_points() -> None:
    y = [1, 0, 0, 0, 1, 1, 1, 0, 1]
    p = [0.25] * 4 + [0.75] * 4 + [1.0]
    curve = metrics.calibration_curve_points(y, p, bins=4)
    assert list(curve["count"]) == [0, 4, 0, 5]
    assert list(curve["lower"]) == [0.0, 0.25, 0.5, 0.75]
    assert curve.loc[1, "mean_predicted"] == pytest.approx(0.25)
    assert curve.loc[1, "observed_rate"] == pytest.approx(0.25)
    assert curve.loc[3, "mean_predicted"] == pytest.approx((0.75 * 4 + 1.0) / 5)
    assert curve.loc[3, "observed_rate"] == pytest.approx(4 / 5)
    assert curve.loc[[0, 2], "observed_rate"].isna().all()
