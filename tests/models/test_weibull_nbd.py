"""Pareto/NBD with Weibull lifetimes: at k = 1 it is Pareto/NBD (an independent implementation
with closed forms); at other k its likelihood matches adaptive quadrature written out here, its
P(alive) and expected purchases match simulated customers, and a fit recovers the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from models.btyd import pareto_nbd, weibull_nbd
from models.btyd.inference import fit_map
from models.btyd.priors import Priors
from models.btyd.weibull_nbd import WEIBULL_NBD
from models.simulate import simulate_histories

PARETO = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
TRUTH = dict(WEIBULL_NBD.simulation_params)


def _summary(cdnow: pd.DataFrame):
    return (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))


def test_k_one_is_pareto_nbd(cdnow: pd.DataFrame) -> None:
    x, t_x, T = _summary(cdnow)
    k1 = PARETO | {"k": 1.0}
    np.testing.assert_allclose(
        weibull_nbd.loglik_numpy(k1, x, t_x, T),
        pareto_nbd.loglik_numpy(PARETO, x, t_x, T),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        WEIBULL_NBD.p_alive(k1, x, t_x, T), pareto_nbd.p_alive(PARETO, x, t_x, T), atol=1e-7
    )
    for fn in ("expected_purchases_if_alive", "p_no_purchase_if_alive"):
        np.testing.assert_allclose(
            getattr(WEIBULL_NBD, fn)(k1, 39.0, x, T),
            getattr(pareto_nbd, fn)(PARETO, 39.0, x, T),
            atol=1e-6,
            err_msg=fn,
        )
    assert WEIBULL_NBD.expected_purchases(k1, 39.0) == pytest.approx(
        pareto_nbd.expected_purchases(PARETO, 39.0), rel=1e-9
    )


@pytest.mark.parametrize(
    ("k", "beta", "alpha"),
    [
        (0.6, 30.0, 10.578),
        (1.7, 30.0, 10.578),
        (3.0, 30.0, 10.578),
        (2.0, 3600.0, 4.4),
        (3, 2e5, 1),
    ],
)
def test_the_likelihood_is_the_integral_it_approximates(
    cdnow: pd.DataFrame, k: float, beta: float, alpha: float
) -> None:
    """``C [(alpha+T)^-(r+x) S(T) + int_{t_x}^T (alpha+u)^-(r+x) f(u) du]`` by adaptive
    quadrature, for a spread of customers, lifetimes short and long against ``1/alpha``
    (one quadrature panel alone was up to 0.2 off in the log for the long ones); the pytensor
    rows equal the numpy ones. P(alive), the alive term's share, too: for a point, and for
    posterior draws (computed by pairs, as the likelihood for MAP and NUTS is)."""
    import pytensor.tensor as pt

    params = PARETO | {"k": k, "beta": beta, "alpha": alpha}
    r, alpha, s, beta = (params[n] for n in ("r", "alpha", "s", "beta"))
    x, t_x, T = (v[::97] for v in _summary(cdnow))
    ours = weibull_nbd.loglik_numpy(params, x, t_x, T)

    def exact(xi: float, ti: float, Ti: float) -> float:
        def f(u: float) -> float:
            density = s * k * u ** (k - 1) * beta**s / (beta + u**k) ** (s + 1)
            return (alpha + u) ** -(r + xi) * density

        died = integrate.quad(f, ti, Ti, epsabs=0, epsrel=1e-12, limit=500)[0] if Ti > ti else 0
        alive = (alpha + Ti) ** -(r + xi) * (beta / (beta + Ti**k)) ** s
        const = special.gammaln(r + xi) - special.gammaln(r) + r * np.log(alpha)
        return const + np.log(alive + died), alive / (alive + died)

    expected, p_alive = np.array([exact(*row) for row in zip(x, t_x, T, strict=True)]).T
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_allclose(WEIBULL_NBD.p_alive(params, x, t_x, T), p_alive, atol=1e-6)
    draws = {n: np.full((1, 3), v) for n, v in params.items()}
    by_pairs = WEIBULL_NBD.p_alive(draws, x[:, None], t_x[:, None], T[:, None])
    np.testing.assert_allclose(by_pairs, np.repeat(p_alive[:, None], 3, axis=1), atol=1e-6)
    rows = WEIBULL_NBD.loglik_rows(
        *(pt.constant(params[n]) for n in weibull_nbd.PARAM_NAMES), x, t_x, T
    )
    np.testing.assert_allclose(rows.eval(), ours, atol=1e-6)


@pytest.mark.parametrize("kind", ["flat", "weakly_informative"])
@pytest.mark.parametrize("point", [PARETO | {"k": 0.6, "beta": 30.0}, PARETO | {"k": 2.5}])
def test_the_numpy_density_is_the_models(cdnow: pd.DataFrame, kind: str, point: dict) -> None:
    """The log posterior MAP fits and NUTS use, value and gradient, is the PyMC model's. The
    numpy density integrates from ``t_x`` and from ``T`` to the latest ``T`` and subtracts,
    the PyMC graph integrates over ``(t_x, T]``: two quadratures of one integral, each within
    1.5e-4 nats of adaptive quadrature's sum over these customers at ``k = 0.6``, 2e-5 apart,
    and their derivatives in ``log k`` within 2.3e-3 of adaptive quadrature's (157.738), 3e-4
    apart."""
    import pytensor.tensor as pt

    built = WEIBULL_NBD.build(cdnow, Priors(kind, log_mu=0.5, log_sigma=1.5))
    model = built.pymc
    u = np.log([point[n] for n in built.density.names])
    logp, grad, _ = built.density.evaluate(u)
    target = model.logp(jacobian=False)
    expected = model.compile_fn(
        [target, *pt.grad(target, model.value_vars)], inputs=model.value_vars, point_fn=False
    )(*u)
    assert logp == pytest.approx(float(expected[0]), rel=1e-8)
    np.testing.assert_allclose(grad, np.array(expected[1:], dtype=float), rtol=1e-5, atol=1e-5)


def test_wearing_out_customers_fit_cdnow_better_than_pareto_nbd(cdnow: pd.DataFrame) -> None:
    fit = fit_map(WEIBULL_NBD.build(cdnow, Priors("flat")), seed=0)
    pareto = fit_map(pareto_nbd.build_model(cdnow, Priors("flat")), seed=0)
    assert fit["converged"] == 1.0
    assert fit["k"] > 1.5  # the sample's customers leave faster as they age
    assert fit["loglik"] > pareto["loglik"] + 2  # more than the extra parameter's worth


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    return simulate_histories("weibull_nbd", TRUTH, rng.uniform(20, 70, 60_000), rng)


def test_p_alive_and_expected_purchases_match_simulated_customers(simulated) -> None:
    x, t_x, T = (simulated[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    p = WEIBULL_NBD.p_alive(TRUTH, x, t_x, T)
    se = np.sqrt(np.sum(p * (1 - p))) / len(p)
    assert abs(p.mean() - simulated.alive.mean()) < 3 * se
    rng = np.random.default_rng(22)
    fresh = simulate_histories("weibull_nbd", TRUTH, np.full(80_000, 39.0), rng)
    se = fresh.frequency.std() / np.sqrt(len(fresh))
    assert abs(fresh.frequency.mean() - WEIBULL_NBD.expected_purchases(TRUTH, 39.0)) < 3 * se


def in_days(histories: pd.DataFrame) -> pd.DataFrame:
    """Simulated histories with their times (weeks) on the day, as a log records them: their
    many customers share few (x, t_x) and (x, T) pairs, which the lifetime integrals are
    computed for (about 5 times faster a fit than on exact times)."""
    return histories.assign(**{c: (histories[c] * 7).round() / 7 for c in ("recency", "T")})


@pytest.mark.slow
def test_map_recovers_the_truth(simulated: pd.DataFrame) -> None:
    fit = fit_map(WEIBULL_NBD.build(in_days(simulated), Priors("flat")), seed=0)
    for name in ("r", "alpha", "k"):
        assert fit[name] == pytest.approx(TRUTH[name], rel=0.15), name
