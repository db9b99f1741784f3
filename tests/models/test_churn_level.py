"""The churn level models: a season and dropout that rises with age, found in simulated logs,
and the level chosen out of time."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.btyd.season import Customers, Repeats, day_number
from models.churn.level import LevelFit, churn_level, fit_level, shape_p_no_purchase
from models.simulate import SimulationSettings, simulate_log

HORIZON = 180
SEASONAL = ("bgnbd_season", "weibull_season")


def _log(seed: int, seasonality: float, aging: float, cohort_days: int = 365) -> pd.DataFrame:
    settings = SimulationSettings(
        customers=6000 if cohort_days == 365 else 10_000,
        cohort_days=cohort_days,
        horizon_days=1000 if cohort_days == 365 else 1080,
        aging=aging,
        seasonality=seasonality,
        seed=seed,
    )
    transactions, _ = simulate_log(settings)
    days = transactions.timestamp.dt.normalize()
    day = (days - pd.Timestamp("1970-01-01")).dt.days.astype(float)
    return pd.DataFrame({"customer_id": transactions.customer_id, "day": day}).drop_duplicates()


def _at(log: pd.DataFrame, cutoff: float) -> tuple[Customers, np.ndarray]:
    """The customers with a purchase by ``cutoff`` and whether each churned in the horizon."""
    seen = log[log.day <= cutoff].groupby("customer_id").day.agg(["min", "max", "size"])
    after = log[(log.day > cutoff) & (log.day <= cutoff + HORIZON)].customer_id.unique()
    customers = Customers(
        x=seen["size"].to_numpy(float) - 1,
        first=seen["min"].to_numpy(float),
        last=seen["max"].to_numpy(float),
        cutoff=cutoff,
    )
    return customers, (~seen.index.isin(after)).astype(float)


def _repeats(log: pd.DataFrame) -> Repeats:
    first = log.day.min()
    repeat = log[log.duplicated("customer_id")]
    counts = np.bincount(((repeat.day - first) // 7).astype(int)).astype(float)
    return Repeats(first, 7.0, counts)


def _day(iso: str) -> float:
    return day_number(date.fromisoformat(iso))


def test_a_season_and_ageing_are_found_where_the_log_has_them():
    log = _log(seed=3, seasonality=0.4, aging=0.01)
    customers, _ = _at(log, _day("2025-03-31"))
    repeats = _repeats(log)
    fit = fit_level("weibull", True, customers, repeats)
    a, b = fit.season  # the simulation: 1 + 0.4 sin(2 pi t / year), t from 2024-01-01
    phase = (date(2024, 1, 1) - date(1970, 1, 1)).days * 2 * np.pi / 365.25
    truth = (0.4 * np.cos(phase), -0.4 * np.sin(phase))
    assert np.hypot(a, b) == pytest.approx(0.4, abs=0.06)
    assert np.hypot(a - truth[0], b - truth[1]) < 0.08
    assert np.exp(fit.log_params[4]) > 1.1  # Weibull k: dropout rises with age
    plain = fit_level("bgnbd", True, *_plain_log())
    assert np.hypot(*plain.season) < 0.06  # no season where there is none


def _plain_log():
    log = _log(seed=4, seasonality=0.0, aging=0.0)
    customers, _ = _at(log, _day("2025-03-31"))
    return customers, _repeats(log)


@pytest.mark.slow
def test_the_level_is_chosen_at_the_validation_cutoff_and_holds_after_the_target_one():
    log = _log(seed=5, seasonality=0.4, aging=0.01)
    repeats = _repeats(log)
    validation, churned = _at(log, _day("2024-12-31"))
    target, target_churned = _at(log, _day("2025-06-30"))
    # a CLV model as off as the stationary one is on such a log, at both cutoffs
    off = 0.06
    level = churn_level(
        validation,
        churned,
        np.full(len(churned), churned.mean() - off),
        target,
        target_churned.mean() - off,
        repeats,
        HORIZON,
        seed=0,
    )
    assert level["validation_errors"]["clv"] == pytest.approx(-off)
    assert level["choice"] == "weibull_season"
    assert abs(level["mean"] - target_churned.mean()) < 0.015
    # a CLV model right at the validation cutoff is kept, its own mean at the target used
    right = churn_level(
        validation, churned, np.full(len(churned), churned.mean()), target, 0.5, repeats, HORIZON
    )
    assert right["choice"] == "clv" and right["mean"] == 0.5


@pytest.mark.slow
@pytest.mark.parametrize(("seasonality", "shapes"), [(0.8, SEASONAL), (0.0, ())])
def test_the_shape_is_a_level_models_only_where_it_ranks_better(seasonality, shapes):
    """The CLV model's own P(no purchase) is a stationary BG/NBD's: on a log with a strong
    season (cohorts joining over 18 months) a seasonal model orders the customers better at
    the validation cutoff, and its fit at the target's cutoff is kept for the score; on a
    plain log none is better by more than the noise."""
    log = _log(seed=11, seasonality=seasonality, aging=0.0, cohort_days=540)
    repeats = _repeats(log)
    validation, churned = _at(log, _day("2025-03-31"))
    target, _ = _at(log, _day("2025-09-30"))

    def stationary(c: Customers) -> np.ndarray:
        return fit_level("bgnbd", False, c, repeats).p_no_purchase(c, HORIZON)

    level = churn_level(validation, churned, stationary(validation), target, 0.5, repeats, HORIZON)
    shape = level["shape"]
    losses = shape["validation_log_loss"]
    if not shapes:
        assert shape["choice"] == "clv" and shape["validation"] is shape["target"] is None
        return
    assert shape["choice"] in shapes
    assert losses[shape["choice"]] < losses["clv"] - shape["noise"]
    table = pd.DataFrame(
        {
            "frequency": target.x,
            "tenure_days": target.cutoff - target.first,
            "recency_days": target.cutoff - target.last,
            "cutoff": pd.Timestamp("1970-01-01") + pd.Timedelta(days=target.cutoff),
        }
    )
    at_target = LevelFit.from_dict(level["shape"]["target"]["fit"])
    np.testing.assert_allclose(
        shape_p_no_purchase(level["shape"]["target"], table),
        at_target.p_no_purchase(target, HORIZON),
    )


@pytest.mark.parametrize("model", ["bgnbd", "weibull"])
def test_predicting_in_chunks_gives_the_same_probabilities(model, monkeypatch):
    from models.churn import level

    customers, _ = _at(_log(seed=4, seasonality=0.0, aging=0.0), _day("2025-03-31"))
    fit = LevelFit(model, level.MODELS[model][1], (0.2, -0.1))  # at the start point
    whole = fit.p_no_purchase(customers, HORIZON)
    monkeypatch.setattr(level, "CHUNK", 7)
    np.testing.assert_array_equal(fit.p_no_purchase(customers, HORIZON), whole)
    assert ((whole > 0) & (whole < 1)).all()
