"""MAP on many customers: L-BFGS on a random sample of them, then Newton steps on all of them
with the sample's Hessian scaled up, reaches the optimum L-BFGS finds on all of them."""

import numpy as np
import pytest

from models.btyd import clv
from models.btyd.clv import ClvSettings
from models.btyd.covariates import build_purchase
from models.btyd.family import purchase_model
from models.btyd.inference import NEWTON_SETTLED, _hessian, fit_map, objective
from models.simulate import simulate_histories

SAMPLE = 3_000


def cohort(model: str, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    T = (546 - rng.integers(0, 84, n)) / 7
    return simulate_histories(model, dict(purchase_model(model).simulation_params), T, rng)


def _built(model: str, data):
    return build_purchase(purchase_model(model), data, ClvSettings().priors, ())


def _optimum(model: str, data, sample):
    return fit_map(_built(model, data), sample=sample)


@pytest.mark.parametrize("model", ["pareto_nbd", "weibull_nbd"])
def test_a_fit_started_on_a_sample_reaches_the_optimum_on_every_customer(model, monkeypatch):
    monkeypatch.setattr(clv, "MAP_SAMPLE", SAMPLE)
    data = cohort(model, 8 * SAMPLE)
    settings = ClvSettings(model=model, method="map", spend=False)
    sample = clv._map_sample(purchase_model(model), data, settings)
    assert sample is not None and sample[1] == 8
    started = _optimum(model, data, sample)
    whole = _optimum(model, data, None)
    # the same optimum: a log posterior within the Newton steps' tolerance (nats), parameters
    # within a tenth of their standard errors (the log posterior's curvature at the optimum)
    assert started["logp"] == pytest.approx(whole["logp"], abs=0.01)
    names = purchase_model(model).param_names
    at = np.log([whole[n] for n in names])
    errors = np.sqrt(np.diag(np.linalg.inv(_hessian(objective(_built(model, data)).neg, at))))
    for name, error in zip(names, errors, strict=True):
        assert abs(np.log(started[name] / whole[name])) < 0.1 * error, name
    assert started["converged"] == 1.0
    # far fewer evaluations of every customer: the sample's search, then a few steps
    assert started["n_iter"] < whole["n_iter"] + 10


def test_a_newton_step_that_does_not_climb_hands_over_to_l_bfgs(monkeypatch):
    monkeypatch.setattr(clv, "MAP_SAMPLE", SAMPLE)
    data = cohort("pareto_nbd", 4 * SAMPLE, seed=1)
    settings = ClvSettings(model="pareto_nbd", method="map", spend=False)
    built, _ = clv._map_sample(purchase_model("pareto_nbd"), data, settings)
    # a Hessian of the wrong sign sends the first step downhill
    wrong = _optimum("pareto_nbd", data, (built, -4.0))
    whole = _optimum("pareto_nbd", data, None)
    # L-BFGS from the sample's optimum, settled to the Newton steps' own tolerance
    assert wrong["logp"] == pytest.approx(whole["logp"], abs=NEWTON_SETTLED)


@pytest.mark.parametrize(("model", "customers"), [("bgnbd", 10 * SAMPLE), ("pareto_nbd", SAMPLE)])
def test_no_sample_for_a_grouped_density_or_few_customers(model, customers, monkeypatch):
    monkeypatch.setattr(clv, "MAP_SAMPLE", SAMPLE)
    settings = ClvSettings(model=model, method="map", spend=False)
    assert clv._map_sample(purchase_model(model), cohort(model, customers), settings) is None
