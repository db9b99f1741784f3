"""The ceilings: the true model's own churn probability and expected purchases on a simulated
log."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from models.btyd.family import NAMES, purchase_model
from models.evaluation.ceiling import churn_ceiling, clv_ceiling
from models.simulate import SimulationSettings, simulate_log

BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
# every registered model of Poisson purchases (the ceiling refuses regular ones, as
# test_family checks) at its simulation's default population
MODELS = [
    (name, dict(purchase_model(name).simulation_params))
    for name in NAMES
    if purchase_model(name).regularity <= 1
]
# models whose P(no purchase) is itself a quadrature (no closed form): both sides approximate
ATOL = {"weibull_nbd": 1e-4, "bgnbd_weibull": 1e-4}
CUTOFF, HORIZON = date(2025, 6, 30), 180


def _truth(model: str, params: dict, **departures) -> dict:
    return {
        "model": model,
        "params": params,
        "aging": 0.0,
        "seasonality": 0.0,
        "start": "2024-01-01",
        "time_unit_days": 7,
        "covariate_effects": [],
    } | departures


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_without_ageing_or_season_it_is_the_models_closed_form(model, params):
    rng = np.random.default_rng(0)
    tenure = rng.integers(1, 500, 3000).astype(float)
    x = rng.integers(0, 9, 3000).astype(float)
    recency = np.where(x > 0, np.floor(rng.random(3000) * tenure), tenure)
    frame = pd.DataFrame({"frequency": x, "tenure_days": tenure, "recency_days": recency})
    ceiling = churn_ceiling(_truth(model, params), frame, CUTOFF, HORIZON)
    closed = purchase_model(model).p_no_purchase(
        params, HORIZON / 7, x, (tenure - recency) / 7, tenure / 7
    )
    np.testing.assert_allclose(ceiling, closed, rtol=0, atol=ATOL.get(model, 1e-9))
    expected = clv_ceiling(_truth(model, params), frame, CUTOFF, HORIZON)
    closed = purchase_model(model).conditional_expected_purchases(
        params, HORIZON / 7, x, (tenure - recency) / 7, tenure / 7
    )
    np.testing.assert_allclose(expected, closed, rtol=1e-9, atol=ATOL.get(model, 0))


def _history(transactions: pd.DataFrame, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """What the models see at ``cutoff`` (purchase days, as the features stage counts them)
    and whether each customer bought in the ``horizon_days`` after it."""
    day = transactions.timestamp.dt.normalize()
    cut, end = pd.Timestamp(cutoff), pd.Timestamp(cutoff + timedelta(days=horizon_days))
    seen = transactions[day <= cut].assign(day=day).drop_duplicates(["customer_id", "day"])
    per = seen.groupby("customer_id").day.agg(["min", "max", "count"])
    window = transactions[(day > cut) & (day <= end)].assign(day=day)
    bought = window.drop_duplicates(["customer_id", "day"]).customer_id.value_counts()
    return pd.DataFrame(
        {
            "customer_id": per.index,
            "frequency": per["count"].to_numpy() - 1,
            "tenure_days": (cut - per["min"]).dt.days.to_numpy(),
            "recency_days": (cut - per["max"]).dt.days.to_numpy(),
            "churned": [c not in bought.index for c in per.index],
            "holdout_purchases": bought.reindex(per.index, fill_value=0).to_numpy(),
        }
    )


def test_on_a_log_that_ages_and_has_a_season_it_is_calibrated_and_beats_the_stationary_truth():
    spec = SimulationSettings(
        customers=20_000, cohort_days=540, horizon_days=1080, aging=0.01, seasonality=0.4, seed=7
    )
    transactions, _ = simulate_log(spec)
    frame = _history(transactions, CUTOFF, HORIZON)
    y = frame.churned.to_numpy()
    truth = _truth("bgnbd", BGNBD, aging=0.01, seasonality=0.4)
    ceiling = churn_ceiling(truth, frame, CUTOFF, HORIZON)
    # calibrated: the mean within three standard errors of the observed rate
    assert abs(ceiling.mean() - y.mean()) < 3 * np.sqrt(y.mean() * (1 - y.mean()) / len(y))
    # the same parameters without the ageing and the season rank and score worse
    stationary = churn_ceiling(_truth("bgnbd", BGNBD), frame, CUTOFF, HORIZON)
    assert roc_auc_score(y, ceiling) > roc_auc_score(y, stationary) + 0.002
    assert brier_score_loss(y, ceiling) < brier_score_loss(y, stationary) - 0.002
    # the CLV ceiling: the purchases in the window in the large, and closer per customer
    expected = clv_ceiling(truth, frame, CUTOFF, HORIZON)
    bought = frame.holdout_purchases.to_numpy(dtype=float)
    assert abs(expected.sum() - bought.sum()) < 3 * bought.std() * np.sqrt(len(bought))
    blind = clv_ceiling(_truth("bgnbd", BGNBD), frame, CUTOFF, HORIZON)
    assert abs(blind.sum() / bought.sum() - 1) > 0.1  # what the ageing and season change
    assert np.abs(expected - bought).mean() < np.abs(blind - bought).mean()


@pytest.mark.parametrize(("model", "params"), MODELS)
def test_covariates_shift_each_customers_parameters_as_simulated(model, params):
    effects = (("loyal", 0.8, -1.0),)
    spec = SimulationSettings(
        customers=20_000,
        model=model,
        params=tuple(params.items()),
        cohort_days=365,
        horizon_days=900,
        covariate_effects=effects,
        binary_covariates=True,
        seed=3,
    )
    transactions, customers = simulate_log(spec)
    frame = _history(transactions, CUTOFF, HORIZON)
    y = frame.churned.to_numpy()
    truth = _truth(model, params, covariate_effects=[list(e) for e in effects])
    ceiling = churn_ceiling(truth, frame, CUTOFF, HORIZON, customers)
    # the closed form with each customer's own alpha and b (BG/NBD) or beta (Pareto/NBD)
    loyal = frame.merge(customers, on="customer_id").loyal.to_numpy()
    rate, drop = purchase_model(model).scaled
    own = params | {rate: params[rate] * np.exp(-0.8 * loyal)}
    own[drop] = params[drop] * np.exp(1.0 * loyal)
    x, tenure = frame.frequency.to_numpy(float), frame.tenure_days.to_numpy(float)
    t_x = (tenure - frame.recency_days.to_numpy(float)) / 7
    closed = purchase_model(model).p_no_purchase(own, HORIZON / 7, x, t_x, tenure / 7)
    np.testing.assert_allclose(ceiling, closed, rtol=0, atol=ATOL.get(model, 1e-9))
    expected = clv_ceiling(truth, frame, CUTOFF, HORIZON, customers)
    closed = purchase_model(model).conditional_expected_purchases(
        own, HORIZON / 7, x, t_x, tenure / 7
    )
    np.testing.assert_allclose(expected, closed, rtol=1e-9, atol=ATOL.get(model, 0))
    blind = churn_ceiling(_truth(model, params), frame, CUTOFF, HORIZON)
    assert brier_score_loss(y, ceiling) < brier_score_loss(y, blind)
    assert abs(ceiling.mean() - y.mean()) < 3 * np.sqrt(y.mean() * (1 - y.mean()) / len(y))
    with pytest.raises(ValueError, match="covariate effects need the simulated customers"):
        churn_ceiling(truth, frame, CUTOFF, HORIZON)


def test_an_unknown_model_is_refused():
    frame = pd.DataFrame({"frequency": [1.0], "tenure_days": [10.0], "recency_days": [2.0]})
    with pytest.raises(ValueError, match="unknown simulation model 'weibull'"):
        churn_ceiling(_truth("weibull", BGNBD), frame, CUTOFF, HORIZON)
