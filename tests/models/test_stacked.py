"""The forecast learnt on stacked past cutoffs (models/btyd/stacked.py), on logs whose purchase
model forecast is known to be off by a set factor, or right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.btyd.stacked import FLOOR, StackedSettings, feature_names, fit_stacked

HORIZON_DAYS = 60


def stacked_log(
    factor: float, cutoffs: int = 4, customers: int = 4000, seed: int = 0, step_days: int = 60
) -> pd.DataFrame:
    """Customers at ``cutoffs`` cutoffs ``step_days`` apart: a purchase model forecast of the
    window (``btyd_expected_purchases``) and the purchases made, Poisson at ``factor`` times
    that forecast; spend per purchase day lognormal around each customer's own mean."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.8, 1.0, customers)
    per_day = rng.lognormal(3.0, 0.4, customers)
    frames = []
    for k in range(cutoffs):
        days = rng.poisson(rate * 4) + 1
        forecast = rate * rng.uniform(0.8, 1.2, customers)
        bought = rng.poisson(factor * forecast)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": np.arange(customers),
                    "cutoff": pd.Timestamp("2024-01-01") + pd.Timedelta(days=step_days * k),
                    "frequency": days - 1,
                    "purchase_days": days,
                    "total_spend": days * per_day,
                    "recency_days": rng.uniform(0, 300, customers),
                    "btyd_expected_purchases": forecast,
                    "next_purchases": bought,
                    "next_spend": bought * per_day * rng.lognormal(0.0, 0.2, customers),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def split(log: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stacked past cutoffs, and the latest as the one forecast (its outcomes as holdout)."""
    latest = log["cutoff"] == log["cutoff"].max()
    target = log[latest].rename(
        columns={"next_purchases": "holdout_purchases", "next_spend": "holdout_spend"}
    )
    return log[~latest].reset_index(drop=True), target.reset_index(drop=True)


def aggregate_error(expected: np.ndarray, actual: np.ndarray) -> float:
    return 100 * (expected.sum() / actual.sum() - 1)


def test_a_bias_that_holds_at_every_cutoff_is_learnt_and_the_intervals_cover():
    train, target = split(stacked_log(factor=1.4, cutoffs=5))
    forecast = fit_stacked(train, HORIZON_DAYS, StackedSettings(interval=0.9))
    predicted = forecast.predict(target)
    actual = target["holdout_purchases"].to_numpy(dtype=float)
    base = target["btyd_expected_purchases"].to_numpy()
    assert aggregate_error(base, actual) < -20  # the purchase model alone runs 29 % short
    assert abs(aggregate_error(predicted["expected_purchases"].to_numpy(), actual)) < 4
    inside = (actual >= predicted["purchases_low"]) & (actual <= predicted["purchases_high"])
    assert 0.86 < inside.mean() < 0.95
    spend = target["holdout_spend"].to_numpy()
    assert abs(aggregate_error(predicted["expected_spend"].to_numpy(), spend)) < 6
    assert forecast.judge["trees"]  # rounds judged on windows the trees never saw
    assert forecast.judge["validation_cutoff"] == str(train["cutoff"].max().date())


def test_a_right_forecast_is_kept_within_noise():
    train, target = split(stacked_log(factor=1.0, seed=1))
    predicted = fit_stacked(train, HORIZON_DAYS).predict(target)
    actual = target["holdout_purchases"].to_numpy(dtype=float)
    expected = predicted["expected_purchases"].to_numpy()
    base = target["btyd_expected_purchases"].to_numpy()
    assert abs(aggregate_error(expected, actual) - aggregate_error(base, actual)) < 3
    assert np.abs(expected - actual).mean() < 1.02 * np.abs(base - actual).mean()


def test_without_windows_that_end_by_the_latest_cutoff_the_forecast_is_the_purchase_models():
    """Cutoffs 20 days apart, windows of 60: no window but the earliest ends by the latest
    cutoff; no trees are grown, and the intervals still come from the latest cutoff."""
    log = stacked_log(factor=1.2, cutoffs=3, step_days=20).drop(columns="next_spend")
    train, target = split(log)
    forecast = fit_stacked(train, HORIZON_DAYS)
    assert not forecast.judge["trees"] and forecast.parts["purchases"].rounds == 0
    assert set(forecast.parts) == {"purchases"}  # no amounts, no spend forecast
    predicted = forecast.predict(target)
    floored = np.maximum(target["btyd_expected_purchases"], FLOOR)  # the forecast's floor
    np.testing.assert_allclose(predicted["expected_purchases"], floored)
    actual = target["holdout_purchases"]
    inside = (actual >= predicted["purchases_low"]) & (actual <= predicted["purchases_high"])
    assert 0.85 < inside.mean() < 0.95
    assert "btyd_expected_purchases" in feature_names(train)
    assert not {"customer_id", "cutoff", "next_purchases"} & set(feature_names(train))


def test_one_cutoff_is_refused():
    train, _ = split(stacked_log(factor=1.0, cutoffs=2))
    with pytest.raises(ValueError, match="at least two training cutoffs"):
        fit_stacked(train, HORIZON_DAYS)


def test_a_cutoff_whose_forecasts_collapse_does_not_blow_up_the_intervals():
    """At the earliest cutoff a quarter of the customers are forecast 1e-7 purchases but buy as
    the rest: the trees' correction stays bounded and the intervals still cover."""
    log = stacked_log(factor=1.0, cutoffs=5, seed=2)
    earliest = (log["cutoff"] == log["cutoff"].min()) & (log["customer_id"] % 4 == 0)
    log.loc[earliest, "btyd_expected_purchases"] = 1e-7
    train, target = split(log)
    predicted = fit_stacked(train, HORIZON_DAYS).predict(target)
    expected = predicted["expected_purchases"].to_numpy()
    base = np.maximum(target["btyd_expected_purchases"].to_numpy(), FLOOR)
    assert np.all((expected <= 10 * base * (1 + 1e-9)) & (expected >= base / 10 / (1 + 1e-9)))
    actual = target["holdout_purchases"]
    inside = (actual >= predicted["purchases_low"]) & (actual <= predicted["purchases_high"])
    assert 0.85 < inside.mean() < 0.95
