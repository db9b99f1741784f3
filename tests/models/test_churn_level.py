"""The churn level and its prior's shape, chosen out of time among the purchase models of the
family: a seasonal or ageing one where the log has what the CLV model lacks, the CLV model's
own where none is better beyond the noise."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.btyd.choice import Candidate, candidates, fit_candidate
from models.btyd.clv import ClvSettings
from models.btyd.point_fit import PointFit
from models.btyd.season import Repeats, Season, day_number
from models.churn.level import churn_level
from models.simulate import SimulationSettings, simulate_log

HORIZON = 180
UNIT = 7.0
START = date(2024, 1, 1)
SETTINGS = ClvSettings(model="bgnbd", method="map", spend=False)
# the CLV model is a stationary BG/NBD: the others compete with it
FAMILY = [c for c in candidates(("bgnbd", "weibull_nbd"), "auto") if c.name != "bgnbd"]


def _log(seed: int, seasonality: float, aging: float, cohort_days: int = 365) -> pd.DataFrame:
    settings = SimulationSettings(
        customers=6000 if cohort_days == 365 else 10_000,
        cohort_days=cohort_days,
        horizon_days=1000 if cohort_days == 365 else 1080,
        aging=aging,
        seasonality=seasonality,
        start=START,
        seed=seed,
    )
    transactions, _ = simulate_log(settings)
    days = transactions.assign(day=transactions.timestamp.dt.normalize())
    return days[["customer_id", "day"]].drop_duplicates()


def _table(log: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    """The customers with a purchase by ``cutoff``, their summary and dates, and whether each
    churned (no purchase in the horizon after it)."""
    cut = pd.Timestamp(cutoff)
    seen = log[log.day <= cut].groupby("customer_id").day.agg(["min", "max", "size"])
    window = log[(log.day > cut) & (log.day <= cut + pd.Timedelta(days=HORIZON))]
    return pd.DataFrame(
        {
            "frequency": (seen["size"] - 1).astype(float),
            "recency": (seen["max"] - seen["min"]).dt.days / UNIT,
            "T": (cut - seen["min"]).dt.days / UNIT,
            "tenure_days": (cut - seen["min"]).dt.days,
            "recency_days": (cut - seen["max"]).dt.days,
            "cutoff": cut,
            "churned": (~seen.index.isin(window.customer_id)).astype(float),
        }
    ).reset_index()


def _repeats(log: pd.DataFrame) -> Repeats:
    first = log.groupby("customer_id").day.transform("min")
    period = ((log[log.day > first].day - pd.Timestamp(START)).dt.days // UNIT).astype(int)
    return Repeats(day_number(START), UNIT, np.bincount(period).astype(float))


def _level(validation, validation_clv, target, target_clv_mean, repeats) -> dict:
    how = (FAMILY, SETTINGS, repeats, UNIT, HORIZON)
    return churn_level(validation, validation_clv, target, target_clv_mean, *how)


@pytest.mark.slow
def test_the_level_is_chosen_at_the_validation_cutoff_and_holds_after_the_target_one():
    log = _log(seed=5, seasonality=0.4, aging=0.01)
    repeats = _repeats(log)
    validation, target = _table(log, "2024-12-31"), _table(log, "2025-06-30")
    observed = validation.churned.mean()
    # a CLV model as off as the stationary one is on such a log, at both cutoffs
    off = 0.06
    clv = np.full(len(validation), observed - off)
    level = _level(validation, clv, target, target.churned.mean() - off, repeats)
    assert set(level["validation_errors"]) == {"clv", *(c.name for c in FAMILY)}
    assert level["validation_errors"]["clv"] == pytest.approx(-off)
    assert level["choice"] != "clv"
    assert abs(level["validation_errors"][level["choice"]]) < level["noise"]
    assert abs(level["mean"] - target.churned.mean()) < 0.015
    # a CLV model right at the validation cutoff is kept, its own mean at the target used
    right = _level(validation, np.full(len(validation), observed), target, 0.5, repeats)
    assert right["choice"] == "clv" and right["mean"] == 0.5


@pytest.mark.slow
@pytest.mark.parametrize("seasonality", [0.8, 0.0])
def test_the_shape_is_another_models_only_where_it_ranks_better(seasonality):
    """The CLV model's own P(no purchase) is a stationary BG/NBD's: on a log with a strong
    season (cohorts joining over 18 months) a seasonal model orders the customers better at
    the validation cutoff, and its fit at the target's cutoff is kept for the score; on a
    plain log none is better by more than the noise."""
    log = _log(seed=11, seasonality=seasonality, aging=0.0, cohort_days=540)
    repeats = _repeats(log)
    validation, target = _table(log, "2025-03-31"), _table(log, "2025-09-30")

    def stationary(table: pd.DataFrame) -> np.ndarray:
        fit = fit_candidate(table, Candidate("bgnbd", False), SETTINGS, None, UNIT)
        return PointFit.of(fit, UNIT).p_no_purchase(table, HORIZON)

    level = _level(validation, stationary(validation), target, 0.5, repeats)
    shape = level["shape"]
    losses = shape["validation_log_loss"]
    if not seasonality:
        assert shape["choice"] == "clv" and shape["validation"] is shape["target"] is None
        return
    assert shape["choice"].endswith("+season")
    assert losses[shape["choice"]] < losses["clv"] - shape["noise"]
    at_validation, at_target = (
        PointFit.from_dict(shape[k]["fit"]) for k in ("validation", "target")
    )
    assert at_validation.model == at_target.model and at_target.seasonal
    assert at_target.params != at_validation.params  # refit on the data up to the target
    p = at_target.p_no_purchase(target, HORIZON)
    # the published prior ranks the customers scored better than the stationary one does
    assert _auc(p, target.churned) > _auc(stationary(target), target.churned) + 0.005


def _auc(score: np.ndarray, outcome: pd.Series) -> float:
    return float(roc_auc_score(outcome, score))


def test_a_candidate_that_cannot_be_fit_is_left_out_with_the_reason():
    """A seasonal candidate where the log holds less than a year before the cutoff."""
    log = _log(seed=4, seasonality=0.0, aging=0.0)
    validation, target = _table(log, "2024-09-30"), _table(log, "2024-12-31")
    clv = np.full(len(validation), validation.churned.mean())
    level = _level(validation, clv, target, 0.5, _repeats(log))
    assert set(level["left_out"]) == {"bgnbd+season", "weibull_nbd+season"}
    assert "needs at least 365 days" in level["left_out"]["weibull_nbd+season"]
    assert set(level["validation_errors"]) == {"clv", "weibull_nbd"}


def test_the_fits_the_clv_choice_made_are_taken_as_they_are():
    """The CLV's out-of-time choice fit its candidates at the same validation cutoff: the level
    reads them (its ``fits``) instead of fitting again, and fits only the others."""
    log = _log(seed=4, seasonality=0.0, aging=0.0)
    validation, target = _table(log, "2025-03-31"), _table(log, "2025-06-30")
    clv = np.full(len(validation), validation.churned.mean())
    made = PointFit(
        "weibull_nbd",
        0,
        {"r": 0.3, "alpha": 5.0, "s": 0.7, "beta": 9.0, "k": 1.2},
        Season(0.0, 0.0, UNIT),
    )
    level = churn_level(
        validation,
        clv,
        target,
        0.5,
        FAMILY,
        SETTINGS,
        _repeats(log),
        UNIT,
        HORIZON,
        made={"weibull_nbd": made.to_dict()},
    )
    errors = level["validation_errors"]
    own = made.p_no_purchase(validation, HORIZON).mean() - validation.churned.mean()
    assert errors["weibull_nbd"] == pytest.approx(own, rel=1e-12)
    assert list(errors) == ["clv", "weibull_nbd", "bgnbd+season", "weibull_nbd+season"]
    fitted = _level(validation, clv, target, 0.5, _repeats(log))["validation_errors"]
    assert fitted["weibull_nbd"] != pytest.approx(own, rel=1e-3)  # its own fit differs
    assert fitted["bgnbd+season"] == errors["bgnbd+season"]
