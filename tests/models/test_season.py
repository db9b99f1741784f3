"""A yearly season as a change of clock: found where a simulated log has one, absent where it
has none, and the forecast across a busy or quiet window on its clock."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.btyd.clv import ClvSettings, DegenerateData, FittedClv, fit_clv, season_info
from models.btyd.predict import PredictionSettings
from models.btyd.season import Repeats, Season, day_number
from models.simulate import SimulationSettings, simulate_log

UNIT = 7.0
START = date(2024, 1, 1)


def _log(seasonality: float, seed: int) -> pd.DataFrame:
    """Purchase days of a simulated log: cohorts joining over 18 months, a season of the given
    amplitude peaking in early April (``1 + amplitude sin(2 pi t / year)`` from 2024-01-01)."""
    settings = SimulationSettings(
        customers=8000,
        cohort_days=540,
        horizon_days=1080,
        seasonality=seasonality,
        start=START,
        seed=seed,
    )
    transactions, _ = simulate_log(settings)
    days = transactions.assign(day=transactions.timestamp.dt.normalize())
    return days.groupby(["customer_id", "day"], as_index=False).amount.sum()


def _table(log: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    """The customers at ``cutoff``: the summary, the day counts a season reads, the cutoff."""
    cut = pd.Timestamp(cutoff)
    seen = log[log.day <= cut]
    g = seen.groupby("customer_id")
    first, last, n = g.day.min(), g.day.max(), g.size()
    spend = seen[seen.day > seen.customer_id.map(first)].groupby("customer_id").amount.mean()
    return pd.DataFrame(
        {
            "frequency": n - 1,
            "recency": (last - first).dt.days / UNIT,
            "T": (cut - first).dt.days / UNIT,
            "monetary_value": spend.reindex(n.index).fillna(0.0),
            "tenure_days": (cut - first).dt.days,
            "recency_days": (cut - last).dt.days,
            "cutoff": cut,
        }
    ).reset_index()


def _repeats(log: pd.DataFrame) -> Repeats:
    first = log.groupby("customer_id").day.transform("min")
    repeat = log[log.day > first]
    period = ((repeat.day - pd.Timestamp(START)).dt.days // UNIT).astype(int)
    return Repeats(day_number(START), UNIT, np.bincount(period).astype(float))


def _actual(log: pd.DataFrame, table: pd.DataFrame, cutoff: str, days: int) -> float:
    """Purchases made by ``table``'s customers in the ``days`` after ``cutoff``."""
    cut = pd.Timestamp(cutoff)
    window = log[(log.day > cut) & (log.day <= cut + pd.Timedelta(days=days))]
    return float(window.customer_id.isin(table.customer_id).sum())


SETTINGS = ClvSettings(model="bgnbd", method="map", spend=False)


@pytest.fixture(scope="module")
def seasonal():
    log = _log(0.5, seed=21)
    return log, _repeats(log)


def test_the_season_is_found_and_the_forecast_follows_it(seasonal):
    log, repeats = seasonal
    cutoff, days = "2025-07-31", 120  # the quiet months: the stationary forecast runs high
    table = _table(log, cutoff)
    fit = fit_clv(table, ClvSettings(**{**SETTINGS.to_dict(), "season": True}), repeats, UNIT)
    info = season_info(fit.season)
    # the simulation: 1 + 0.5 sin(2 pi t / 365.25), t in days from 2024-01-01: busiest ~ 1 April
    assert info["amplitude"] == pytest.approx(0.5, abs=0.08)
    assert info["peak_day"] == pytest.approx(92, abs=12)
    assert fit.fit_info["season"] == info
    plain = fit_clv(table, SETTINGS)
    assert plain.season is None
    prediction = PredictionSettings(horizon=days / UNIT, clv_periods=0)
    actual = _actual(log, table, cutoff, days)
    seasonal_error = fit.predict(table, prediction)["expected_purchases"].sum() / actual - 1
    plain_error = plain.predict(table, prediction)["expected_purchases"].sum() / actual - 1
    assert plain_error > 0.15  # what the stationary model makes of a quiet window
    assert abs(seasonal_error) < 0.06
    # the churn features run on the same clock: fewer purchases expected in the quiet window
    features = fit.churn_features(table, days / UNIT)
    assert features["btyd_expected_purchases"].sum() == pytest.approx(
        fit.predict(table, prediction)["expected_purchases"].sum(), rel=1e-9
    )


def test_a_log_without_a_season_gets_none():
    log = _log(0.0, seed=22)
    table = _table(log, "2025-06-30")
    fit = fit_clv(table, ClvSettings(**{**SETTINGS.to_dict(), "season": True}), _repeats(log))
    assert fit.season.amplitude < 0.06


def test_a_season_needs_a_year_of_history(seasonal):
    log, repeats = seasonal
    table = _table(log, "2024-10-31")  # 304 days after the log's first day
    season = ClvSettings(**{**SETTINGS.to_dict(), "season": True})
    with pytest.raises(DegenerateData, match=r"clv.season: .*365 days.*2024-10-31.*304 days"):
        fit_clv(table, season, repeats, UNIT)


def test_a_null_season_is_the_stationary_clock(seasonal):
    log, _ = seasonal
    table = _table(log, "2025-06-30")
    moved = Season(0.0, 0.0, UNIT).summaries(table)
    np.testing.assert_allclose(moved["T"], table["T"], rtol=1e-12)
    np.testing.assert_allclose(moved["recency"], table["recency"], rtol=1e-12, atol=1e-12)
    assert Season(0.0, 0.0, UNIT).windows(table, [1.0, 52.0]) == pytest.approx([1.0, 52.0])
    # a season averages one over a year: a year is a year on either clock
    assert Season(0.3, -0.2, UNIT).window(table, 365.25 / UNIT) == pytest.approx(365.25 / UNIT)


@pytest.mark.slow  # Pareto/NBD compiles its PyMC model
@pytest.mark.parametrize("model", ["pareto_nbd", "weibull_nbd"])
def test_any_model_of_the_family_runs_on_the_clock_and_saves_it(seasonal, model, tmp_path):
    log, repeats = seasonal
    cutoff = "2025-07-31"
    table = _table(log, cutoff)
    settings = ClvSettings(model=model, method="map", season=True)
    fit = fit_clv(table, settings, repeats, UNIT)
    fit.save(tmp_path)
    loaded = FittedClv.load(tmp_path)
    assert loaded.season == fit.season
    prediction = PredictionSettings(horizon=120 / UNIT, clv_periods=12)
    pd.testing.assert_frame_equal(loaded.predict(table, prediction), fit.predict(table, prediction))
    actual = _actual(log, table, cutoff, 120)
    assert fit.predict(table, prediction)["expected_purchases"].sum() / actual - 1 < 0.1
