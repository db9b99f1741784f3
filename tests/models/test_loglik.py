"""numpy and pytensor log-likelihoods agree; collapsing with weights preserves the total."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import pytest
from scipy import integrate, special

from models.btyd import bgnbd, gamma_gamma, pareto_nbd
from models.btyd.inference import fit_map
from models.btyd.priors import Priors

POINTS = {
    "bgnbd": [
        {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259},
        {"r": 1.7, "alpha": 0.6, "a": 3.2, "b": 0.4},
    ],
    "pareto_nbd": [
        {"r": 0.5533, "alpha": 10.5776, "s": 0.6063, "beta": 11.6696},  # alpha < beta
        {"r": 1.3, "alpha": 7.0, "s": 2.1, "beta": 0.8},  # alpha > beta
    ],
    "gamma_gamma": [
        {"p": 6.2488, "q": 3.7446, "gamma": 15.4477},
        {"p": 1.5, "q": 8.0, "gamma": 2.0},
    ],
}
MODULES = {"bgnbd": bgnbd, "pareto_nbd": pareto_nbd, "gamma_gamma": gamma_gamma}


def _numpy_total(name: str, params: dict, data: pd.DataFrame) -> float:
    if name == "gamma_gamma":
        rep = gamma_gamma.repeaters(data)
        return float(gamma_gamma.loglik_numpy(params, rep.frequency, rep.monetary_value).sum())
    mod = MODULES[name]
    return float(mod.loglik_numpy(params, data.frequency, data.recency, data["T"]).sum())


def _model_logp(model, params: dict) -> float:
    """Log-likelihood potential of ``model`` evaluated at constrained ``params``."""
    point = {f"log_{k}": np.log(v) for k, v in params.items()}
    (graph,) = model.replace_rvs_by_values([model["loglik"]])
    return float(model.compile_fn(graph, inputs=model.value_vars)(point))


@pytest.mark.parametrize("name", list(MODULES))
@pytest.mark.parametrize("which", [0, 1])
def test_numpy_equals_pytensor_and_collapsed_equals_full(
    cdnow: pd.DataFrame, name: str, which: int
) -> None:
    params = POINTS[name][which]
    mod = MODULES[name]
    expected = _numpy_total(name, params, cdnow)
    collapsed = mod.build_model(cdnow, Priors("flat"))
    full = mod.build_model(cdnow, Priors("flat"), collapse=False)
    assert _model_logp(collapsed.pymc, params) == pytest.approx(expected, rel=1e-10)
    assert _model_logp(full.pymc, params) == pytest.approx(expected, rel=1e-10)


def test_explicit_weights(cdnow: pd.DataFrame) -> None:
    params = POINTS["bgnbd"][0]
    head = cdnow.iloc[:50]
    doubled = bgnbd.build_model(head, Priors("flat"), weights=np.full(50, 2.0))
    expected = 2 * _numpy_total("bgnbd", params, head)
    assert _model_logp(doubled.pymc, params) == pytest.approx(expected, rel=1e-12)


def test_published_loglik_at_high_precision_params(cdnow: pd.DataFrame, reference: dict) -> None:
    bg = reference["bgnbd_cdnow_sample"]["clvtools_high_precision"]
    pn = reference["pareto_nbd_cdnow_sample"]["clvtools_high_precision"]
    bg_ll = _numpy_total("bgnbd", {k: bg[k] for k in bgnbd.PARAM_NAMES}, cdnow)
    pn_ll = _numpy_total("pareto_nbd", {k: pn[k] for k in pareto_nbd.PARAM_NAMES}, cdnow)
    assert bg_ll == pytest.approx(bg["loglik"], abs=0.01)
    assert pn_ll == pytest.approx(pn["loglik"], abs=0.01)


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("history", [(0, 0.0, 30.0), (3, 12.5, 30.0), (12, 29.0, 39.0)])
def test_pareto_likelihood_matches_direct_integration(which: int, history: tuple) -> None:
    """Independent check of the hypergeometric closed form by numeric integration over tau."""
    p = POINTS["pareto_nbd"][which]
    r, alpha, s, beta = (p[k] for k in pareto_nbd.PARAM_NAMES)
    x, t_x, T = history
    log_c = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    first = (alpha + T) ** -(r + x) * (beta + T) ** -s
    integral, _ = integrate.quad(
        lambda u: (alpha + u) ** -(r + x) * (beta + u) ** -(s + 1.0), t_x, T, epsabs=0, epsrel=1e-12
    )
    expected = log_c + np.log(first + s * integral)
    assert pareto_nbd.loglik_numpy(p, x, t_x, T) == pytest.approx(expected, rel=1e-9)


def test_recency_equal_age_is_finite() -> None:
    p = POINTS["pareto_nbd"][0]
    ll = pareto_nbd.loglik_numpy(p, [3.0, 0.0], [20.0, 0.0], [20.0, 0.0])
    assert np.all(np.isfinite(ll))


@pytest.mark.parametrize("name", ["bgnbd", "gamma_gamma"])
@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("kind", ["flat", "weakly_informative"])
def test_direct_log_posterior_equals_the_models(
    cdnow: pd.DataFrame, name: str, which: int, kind: str
) -> None:
    """The numpy log posterior used for MAP fits is the PyMC model's, value and gradient."""
    built = MODULES[name].build_model(cdnow, Priors(kind, log_mu=0.5, log_sigma=1.5))
    model = built.pymc
    assert built.density.names == MODULES[name].PARAM_NAMES
    u = np.log(np.array([POINTS[name][which][n] for n in built.density.names]))
    logp, grad, loglik = built.density.evaluate(u)
    value_vars = model.value_vars
    expected = model.compile_fn(
        [model.logp(jacobian=False), *pt.grad(model.logp(jacobian=False), value_vars)],
        inputs=value_vars,
        point_fn=False,
    )(*u)
    assert logp == pytest.approx(float(expected[0]), rel=1e-10)
    np.testing.assert_allclose(grad, np.array(expected[1:], dtype=float), rtol=1e-7, atol=1e-6)
    assert loglik == pytest.approx(_model_logp(model, POINTS[name][which]), rel=1e-10)


@pytest.mark.parametrize("name", ["bgnbd", "gamma_gamma"])
def test_direct_map_equals_compiled_map(cdnow: pd.DataFrame, name: str) -> None:
    direct = fit_map(MODULES[name].build_model(cdnow, Priors()), seed=0)
    built = MODULES[name].build_model(cdnow, Priors())
    compiled = fit_map(replace(built, density=None), seed=0)
    for key in (*MODULES[name].PARAM_NAMES, "loglik", "logp"):
        assert direct[key] == pytest.approx(compiled[key], rel=1e-6), key
