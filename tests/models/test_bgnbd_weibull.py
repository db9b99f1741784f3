"""BG/NBD with Weibull lifetimes: without ageing (an endless lifetime) it is BG/NBD's closed
forms; its likelihood and forecasts match adaptive quadrature written out here, its P(alive)
and forecasts at the truth match simulated customers, and a MAP fit recovers the truth where
BG/NBD's forecast is far off."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from models.btyd import bgnbd, bgnbd_weibull, weibull_nbd
from models.btyd.bgnbd import BGNBD
from models.btyd.bgnbd_weibull import BGNBD_WEIBULL
from models.btyd.inference import fit_map
from models.btyd.priors import Priors
from models.simulate import simulate_histories
from tests.models.test_weibull_nbd import in_days

BG = dict(BGNBD.simulation_params)
TRUTH = dict(BGNBD_WEIBULL.simulation_params)
AGEING = BG | {"s": 0.8, "beta": 300.0, "k": 1.7}


def _summary(frame: pd.DataFrame, every: int = 1):
    return (frame[c].to_numpy(dtype=float)[::every] for c in ("frequency", "recency", "T"))


def test_an_endless_lifetime_is_bgnbd(cdnow: pd.DataFrame) -> None:
    x, t_x, T = _summary(cdnow)
    endless = BG | {"s": 1.0, "beta": 1e30, "k": 2.0}
    np.testing.assert_allclose(
        bgnbd_weibull.loglik_numpy(endless, x, t_x, T), bgnbd.loglik_numpy(BG, x, t_x, T), atol=1e-9
    )
    np.testing.assert_allclose(
        BGNBD_WEIBULL.p_alive(endless, x, t_x, T), BGNBD.p_alive(BG, x, t_x, T), atol=1e-9
    )
    for fn in ("expected_purchases_if_alive", "p_no_purchase_if_alive"):
        np.testing.assert_allclose(
            getattr(BGNBD_WEIBULL, fn)(endless, 39.0, x, T),
            getattr(BGNBD, fn)(BG, 39.0, x, T),
            rtol=1e-9,
            err_msg=fn,
        )
    assert BGNBD_WEIBULL.expected_purchases(endless, 39.0) == pytest.approx(
        BGNBD.expected_purchases(BG, 39.0), rel=1e-9
    )


def _lifetime_density(u: float, s: float, beta: float, k: float) -> float:
    return s * k * u ** (k - 1) * beta**s / (beta + u**k) ** (s + 1)


def test_the_likelihood_is_the_sum_of_its_three_ways(cdnow: pd.DataFrame) -> None:
    """Never dropped and alive, never dropped and dead of the lifetime (adaptive quadrature),
    dropped at the last purchase with the lifetime still running; the pytensor rows equal the
    numpy ones."""
    import pytensor.tensor as pt

    r, alpha, a, b, s, beta, k = (AGEING[n] for n in bgnbd_weibull.PARAM_NAMES)
    x, t_x, T = _summary(cdnow, every=97)

    def exact(xi: float, ti: float, Ti: float) -> float:
        def died(u: float) -> float:
            return (alpha + u) ** -(r + xi) * _lifetime_density(u, s, beta, k)

        lost = integrate.quad(died, ti, Ti, epsabs=0, epsrel=1e-12, limit=500)[0] if Ti > ti else 0
        alive = (alpha + Ti) ** -(r + xi) * (beta / (beta + Ti**k)) ** s
        kept = special.beta(a, b + xi) / special.beta(a, b)
        dropped = 0.0
        if xi > 0:
            coin = special.beta(a + 1, b + xi - 1) / special.beta(a, b)
            dropped = coin * (alpha + ti) ** -(r + xi) * (beta / (beta + ti**k)) ** s
        const = special.gammaln(r + xi) - special.gammaln(r) + r * np.log(alpha)
        return const + np.log(kept * (alive + lost) + dropped)

    ours = bgnbd_weibull.loglik_numpy(AGEING, x, t_x, T)
    expected = np.array([exact(*row) for row in zip(x, t_x, T, strict=True)])
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    rows = BGNBD_WEIBULL.loglik_rows(
        *(pt.constant(AGEING[n]) for n in bgnbd_weibull.PARAM_NAMES), x, t_x, T
    )
    np.testing.assert_allclose(rows.eval(), ours, atol=1e-6)


def test_expected_purchases_given_alive_is_the_double_integral() -> None:
    """``int_0^t E[lambda exp(-lambda p u)] S(T+u)/S(T) du`` with the expectation over ``p``
    by adaptive quadrature of the Beta density, not the hypergeometric function."""
    r, alpha, a, b, s, beta, k = (AGEING[n] for n in bgnbd_weibull.PARAM_NAMES)
    for x, T, t in ((0, 10.0, 39.0), (3, 40.0, 26.0), (12, 70.0, 52.0)):
        c, scale = r + x, alpha + T

        def rate(u: float, x=x, c=c, scale=scale) -> float:
            beta_law = stats.beta(a, b + x)
            mean = integrate.quad(lambda p: beta_law.pdf(p) * (1 + p * u / scale) ** -(c + 1), 0, 1)
            return c / scale * mean[0]

        def survival(age: float) -> float:
            return (beta / (beta + age**k)) ** s

        def kept(u: float, T=T) -> float:
            return survival(T + u) / survival(T)

        exact = integrate.quad(lambda u: rate(u) * kept(u), 0, t)[0]
        ours = BGNBD_WEIBULL.expected_purchases_if_alive(AGEING, t, float(x), T)
        assert ours == pytest.approx(exact, rel=1e-7), (x, T, t)


@pytest.mark.parametrize("kind", ["flat", "weakly_informative"])
def test_the_numpy_density_is_the_models(cdnow: pd.DataFrame, kind: str) -> None:
    """The log posterior MAP fits and NUTS use, value and gradient, is the PyMC model's."""
    _assert_density_is_models(BGNBD_WEIBULL.build(cdnow, Priors(kind, log_mu=0.5, log_sigma=1.5)))


def test_repeats_on_the_first_day_have_a_density_and_a_fit() -> None:
    """Customers whose repeats all fell on their first day (``x > 0``, ``t_x = 0``, which a log
    timed to the day gives) have a finite log density and gradient, the PyMC model's, and the
    MAP fit on them settles (their dropout term's derivative in ``k`` once made every gradient
    nan, and the fit stopped at once)."""
    rng = np.random.default_rng(4)
    histories = in_days(simulate_histories(BGNBD_WEIBULL, TRUTH, rng.uniform(20, 90, 3000), rng))
    assert ((histories.frequency > 0) & (histories.recency == 0)).any()
    built = BGNBD_WEIBULL.build(histories, Priors())
    _assert_density_is_models(built)
    fit = fit_map(built, seed=0)
    assert fit["converged"] == 1.0 and np.isfinite(fit["loglik"])


def _assert_density_is_models(built) -> None:
    import pytensor.tensor as pt

    model = built.pymc
    u = np.log([AGEING[n] for n in built.density.names])
    logp, grad, _ = built.density.evaluate(u)
    target = model.logp(jacobian=False)
    expected = model.compile_fn(
        [target, *pt.grad(target, model.value_vars)], inputs=model.value_vars, point_fn=False
    )(*u)
    assert logp == pytest.approx(float(expected[0]), rel=1e-9)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, np.array(expected[1:], dtype=float), rtol=1e-6, atol=1e-5)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    return simulate_histories(BGNBD_WEIBULL, TRUTH, rng.uniform(20, 90, 30_000), rng, holdout=39.0)


def test_the_forecasts_at_the_truth_match_simulated_customers(simulated) -> None:
    x, t_x, T = _summary(simulated)
    p = BGNBD_WEIBULL.p_alive(TRUTH, x, t_x, T)
    assert abs(p.mean() - simulated.alive.mean()) < 3 * np.sqrt(np.sum(p * (1 - p))) / len(p)
    actual = simulated.holdout_purchases.to_numpy(dtype=float)
    expected = BGNBD_WEIBULL.conditional_expected_purchases(TRUTH, 39.0, x, t_x, T)
    assert abs(expected.mean() - actual.mean()) < 3 * (actual - expected).std() / np.sqrt(len(x))
    none = BGNBD_WEIBULL.p_no_purchase(TRUTH, 39.0, x, t_x, T)
    quiet = (actual == 0).astype(float)
    assert abs(none.mean() - quiet.mean()) < 3 * np.sqrt(np.sum(none * (1 - none))) / len(x)
    fresh = simulate_histories(
        BGNBD_WEIBULL, TRUTH, np.full(60_000, 39.0), np.random.default_rng(3)
    )
    se = fresh.frequency.std() / np.sqrt(len(fresh))
    assert abs(fresh.frequency.mean() - BGNBD_WEIBULL.expected_purchases(TRUTH, 39.0)) < 3 * se


@pytest.mark.slow
def test_map_recovers_the_truth_where_bgnbd_is_far_off(simulated: pd.DataFrame) -> None:
    """The purchase rate's parameters within 10 % and the mean dropout probability at a
    purchase within 5 %, the population's survival to 26, 52 and 78 weeks of age (the ages
    observed) within 0.03; the holdout total within 5 %, where BG/NBD's is more than 25 %
    over."""
    fit = fit_map(BGNBD_WEIBULL.build(in_days(simulated), Priors("flat")), seed=0)
    assert fit["converged"] == 1.0
    for name in ("r", "alpha"):
        assert fit[name] == pytest.approx(TRUTH[name], rel=0.10), name
    mean_dropout = [p["a"] / (p["a"] + p["b"]) for p in (fit, TRUTH)]
    assert mean_dropout[0] == pytest.approx(mean_dropout[1], rel=0.05)
    for age in (26.0, 52.0, 78.0):
        survival = [(p["beta"] / (p["beta"] + age ** p["k"])) ** p["s"] for p in (fit, TRUTH)]
        assert survival[0] == pytest.approx(survival[1], abs=0.03), age
    x, t_x, T = _summary(simulated)
    actual = simulated.holdout_purchases.sum()
    params = {n: fit[n] for n in bgnbd_weibull.PARAM_NAMES}
    ours = BGNBD_WEIBULL.conditional_expected_purchases(params, 39.0, x, t_x, T).sum()
    assert ours == pytest.approx(actual, rel=0.05)
    bg = fit_map(BGNBD.build(simulated, Priors("flat")), seed=0)
    stationary = {n: bg[n] for n in bgnbd.PARAM_NAMES}
    assert BGNBD.conditional_expected_purchases(stationary, 39.0, x, t_x, T).sum() > 1.25 * actual
    assert fit["loglik"] > bg["loglik"] + 10


def test_map_searches_from_a_lifetime_that_ages_too(simulated: pd.DataFrame) -> None:
    """The likelihood of young customers can have a mode at a falling and at a rising hazard:
    the fit searches from a rising one besides the prior's centre (k = 1) and keeps the
    highest optimum."""
    built = BGNBD_WEIBULL.build(simulated.head(5_000), Priors())
    density = built.density
    k = density.names.index("k")
    assert [np.exp(start[k]) for start in density.starts] == pytest.approx([2.0])
    fit = fit_map(built)
    alone = [
        fit_map(replace(built, density=replace(density, start=start, starts=())))["logp"]
        for start in (density.start, *density.starts)
    ]
    assert fit["logp"] == pytest.approx(max(alone), abs=1e-6)


@pytest.mark.parametrize("module", [bgnbd_weibull, weibull_nbd])
def test_a_step_past_the_float_range_is_an_impossible_point_not_an_error(module, cdnow) -> None:
    """A line search can step to ``exp(u)`` = 0 or inf: the log-likelihood is -inf there."""
    x, t_x, T = _summary(cdnow)
    prepared = weibull_nbd.factor(x, t_x, T, np.ones(len(x)))
    names = module.PARAM_NAMES
    for value in (0.0, np.inf):
        theta = np.array([value if n == "beta" else AGEING[n] for n in names])
        loglik, grad = module.loglik_and_grad(theta, prepared)
        assert loglik == -np.inf and np.array_equal(grad, np.zeros(len(names)))


@pytest.mark.parametrize("module", [bgnbd_weibull, weibull_nbd])
def test_the_corners_a_search_visits_are_values_not_errors(module, cdnow) -> None:
    """Extreme but finite parameters (a search's path on CDNOW went through k = 36) give a
    number, -inf or nan, which the optimiser steps back from; never an exception."""
    x, t_x, T = _summary(cdnow)
    names = module.PARAM_NAMES
    corners = {"alpha": (1e-8, 1e12), "s": (1e-4, 1e4), "beta": (1e-8, 1e12), "k": (0.05, 60.0)}
    points = [
        {n: value if n == name else AGEING[n] for n in names}
        for name, values in corners.items()
        for value in values
    ]
    # where a MAP search on CDNOW stopped with a division by zero
    path = (2e94, 7e-16, 0.23, 1.6e-5, 0.17, 5e3, 4e-279)
    visited = dict(zip(bgnbd_weibull.PARAM_NAMES, path, strict=True))
    prepared = weibull_nbd.factor(x, t_x, T, np.ones(len(x)))
    for point in [*points, visited]:
        theta = np.array([point[n] for n in names])
        loglik, grad = module.loglik_and_grad(theta, prepared)
        assert isinstance(loglik, float) and grad.shape == (len(names),)
