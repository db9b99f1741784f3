"""MBG/NBD: the published CDNOW estimates, the likelihood against the paper's formula written
out here, and the closed forms and a fit against simulated customers with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import special

from models.btyd import mbgnbd
from models.btyd.bgnbd import BGNBD
from models.btyd.inference import fit_map
from models.btyd.mbgnbd import MBGNBD
from models.btyd.priors import Priors
from models.simulate import simulate_histories

TRUTH = dict(MBGNBD.simulation_params)


def test_mle_matches_btydplus_on_the_cdnow_sample(cdnow: pd.DataFrame, reference: dict) -> None:
    fit = fit_map(MBGNBD.build(cdnow, Priors("flat")), seed=0)
    published = reference["mbgnbd_cdnow_sample"]["published"]
    for name in mbgnbd.PARAM_NAMES:
        assert fit[name] == pytest.approx(published[name], rel=0.002), name
    assert fit["converged"] == 1.0


def _paper_loglik(p: dict, x, t_x, T) -> np.ndarray:
    """Batislam et al. (2007), eq. (2): B(a, b+x+1)/B(a, b) G(r+x) alpha^r / G(r) [(alpha+T)^-(r+x)
    + a/(b+x) (alpha+t_x)^-(r+x)], written out independently of the module."""
    r, alpha, a, b = (p[k] for k in ("r", "alpha", "a", "b"))
    head = (
        special.betaln(a, b + x + 1)
        - special.betaln(a, b)
        + special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
    )
    return head + np.log((alpha + T) ** -(r + x) + a / (b + x) * (alpha + t_x) ** -(r + x))


def test_every_form_of_the_likelihood_is_the_papers(cdnow: pd.DataFrame) -> None:
    import pytensor.tensor as pt

    from models.btyd.bgnbd import loglik_numpy

    x, t_x, T = (cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    expected = _paper_loglik(TRUTH, x, t_x, T)
    np.testing.assert_allclose(loglik_numpy(TRUTH, x, t_x, T, modified=True), expected, rtol=1e-10)
    rows = MBGNBD.loglik_rows(*(pt.constant(TRUTH[k]) for k in mbgnbd.PARAM_NAMES), x, t_x, T)
    np.testing.assert_allclose(rows.eval(), expected, rtol=1e-10)
    w = np.ones(len(x))
    theta = np.array([TRUTH[k] for k in mbgnbd.PARAM_NAMES])
    total, grad = MBGNBD.factored.loglik_and_grad(theta, MBGNBD.factored.factor(x, t_x, T, w))
    assert total == pytest.approx(expected.sum(), rel=1e-12)
    step = 1e-6
    for i in range(4):  # the analytic gradient against central differences
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        f = MBGNBD.factored.factor(x, t_x, T, w)
        numeric = (
            MBGNBD.factored.loglik_and_grad(up, f)[0] - MBGNBD.factored.loglik_and_grad(down, f)[0]
        ) / (2 * step)
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-4), i  # float noise of 1e4
    built = MBGNBD.build(cdnow, Priors("flat"))
    point = {f"log_{k}": np.log(TRUTH[k]) for k in mbgnbd.PARAM_NAMES}
    assert built.pymc.compile_logp()(point) == pytest.approx(expected.sum(), rel=1e-10)


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    T = rng.uniform(20, 60, 60_000)
    return simulate_histories("mbgnbd", TRUTH, T, rng)


def test_one_time_buyers_can_be_dead_and_p_alive_is_calibrated(simulated: pd.DataFrame) -> None:
    x, t_x, T = (simulated[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    p = MBGNBD.p_alive(TRUTH, x, t_x, T)
    once = x == 0
    assert (~simulated.alive[once]).mean() > 0.3  # many one-time buyers left at once
    assert p[once].max() < 1.0 and BGNBD.p_alive(TRUTH, x[once], t_x[once], T[once]).min() == 1.0
    for group in (once, ~once):  # P(alive) in the large, within 3 standard errors
        se = np.sqrt(np.sum(p[group] * (1 - p[group]))) / group.sum()
        assert abs(p[group].mean() - simulated.alive[group].mean()) < 3 * se


def test_a_new_customers_expected_purchases_are_the_simulated_mean() -> None:
    rng = np.random.default_rng(12)
    t = 39.0
    sim = simulate_histories("mbgnbd", TRUTH, np.full(80_000, t), rng)
    expected = MBGNBD.expected_purchases(TRUTH, t)
    se = sim.frequency.std() / np.sqrt(len(sim))
    assert abs(sim.frequency.mean() - expected) < 3 * se


@pytest.mark.slow
def test_map_recovers_the_truth(simulated: pd.DataFrame) -> None:
    fit = fit_map(MBGNBD.build(simulated, Priors("flat")), seed=0)
    for name in mbgnbd.PARAM_NAMES:
        assert fit[name] == pytest.approx(TRUTH[name], rel=0.1), name
