"""MBG/CNBD-k: MBG/NBD at k = 1, the likelihood against BTYDplus's formula written out here, the
forecasts against the simulated process, and the regularity and parameters recovered from a
simulated log (BTYDplus's own recovery test: k = 3, 8,000 customers)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special

from models.btyd import bgnbd, mbgcnbd
from models.btyd.clv import ClvSettings, DegenerateData, FittedClv, fit_clv
from models.btyd.family import purchase_model
from models.btyd.mbgnbd import MBGNBD
from models.btyd.predict import PredictionSettings
from models.btyd.priors import Priors
from models.btyd.settings import SamplerSettings
from models.simulate import simulate_histories

MBG = dict(MBGNBD.simulation_params)
# BTYDplus's tests/testthat/test-mbg-cnbd-k.R
TRUTH = {"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}
K = 3


def _summary(cdnow: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(cdnow[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))


def test_at_k_1_it_is_mbgnbd(cdnow: pd.DataFrame) -> None:
    x, t_x, T = _summary(cdnow)
    one = mbgcnbd.at_regularity(1)
    np.testing.assert_allclose(
        mbgcnbd.loglik_numpy(MBG, x, t_x, T, 1),
        bgnbd.loglik_numpy(MBG, x, t_x, T, modified=True),
        rtol=1e-12,
    )
    np.testing.assert_allclose(one.p_alive(MBG, x, t_x, T), MBGNBD.p_alive(MBG, x, t_x, T))
    for t in (1.0, 39.0, 400.0):  # the sum over the phases and the events, at k = 1
        expected, none = mbgcnbd._window(MBG, t, x, T, t_x, 1)
        np.testing.assert_allclose(
            expected,
            bgnbd.expected_purchases_if_alive(MBG, t, x, T, modified=True),
            rtol=1e-9,
        )
        np.testing.assert_allclose(none, bgnbd.p_no_purchase_if_alive(MBG, t, x, T), rtol=1e-9)
        np.testing.assert_allclose(
            one.p_no_purchase(MBG, t, x, t_x, T), MBGNBD.p_no_purchase(MBG, t, x, t_x, T)
        )
        zero = np.zeros(1)
        new = MBG["b"] / (MBG["a"] + MBG["b"]) * mbgcnbd._window(MBG, t, zero, zero, zero, 1)[0]
        assert new[0] == pytest.approx(MBGNBD.expected_purchases(MBG, t), rel=1e-10)


def _btydplus_loglik(k: int, p: dict, x, t_x, T, litt) -> np.ndarray:
    """BTYDplus's ``xbgcnbd.LL`` with ``dropout_at_zero = TRUE``, term by term as it writes it
    (products and factorials, not logs)."""
    r, alpha, a, b = (p[n] for n in ("r", "alpha", "a", "b"))
    p1 = (k - 1) * litt - x * np.log(math.factorial(k - 1))
    p2 = special.betaln(a, b + x + 1) - special.betaln(a, b)
    p3 = special.gammaln(r + k * x) - special.gammaln(r) + r * np.log(alpha)
    p4 = -(r + k * x) * np.log(alpha + T)
    s1 = a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + k * x)
    s2 = 1.0
    for j in range(1, k):
        rising = np.prod([r + k * x + i for i in range(j)], axis=0)
        s2 = s2 + rising * (T - t_x) ** j / (math.factorial(j) * (alpha + T) ** j)
    return p1 + p2 + p3 + p4 + np.log(s1 + s2)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_the_likelihood_and_p_alive_are_btydplus(cdnow: pd.DataFrame, k: int) -> None:
    x, t_x, T = _summary(cdnow)
    litt = np.random.default_rng(k).normal(0.5, 1.0, len(x)) * x  # any value: it adds on
    frame = pd.DataFrame({"frequency": x, mbgcnbd.LOG_GAPS: litt})
    expected = _btydplus_loglik(k, TRUTH, x, t_x, T, litt)
    ours = mbgcnbd.loglik_numpy(TRUTH, x, t_x, T, k)
    assert ours.sum() + mbgcnbd.regularity_loglik(frame, k) == pytest.approx(expected.sum())
    np.testing.assert_allclose(
        ours + (k - 1) * litt - x * math.lgamma(k), expected, rtol=1e-10, atol=1e-9
    )
    theta = np.array([TRUTH[n] for n in mbgcnbd.PARAM_NAMES])
    f = mbgcnbd.factor(x, t_x, T, np.ones(len(x)))
    total, grad = mbgcnbd.loglik_and_grad(theta, f, k)
    assert total == pytest.approx(ours.sum(), rel=1e-12)
    for i in range(4):  # the analytic gradient against central differences
        step = np.eye(4)[i] * 1e-6
        numeric = (
            mbgcnbd.loglik_and_grad(theta + step, f, k)[0]
            - mbgcnbd.loglik_and_grad(theta - step, f, k)[0]
        ) / 2e-6
        assert grad[i] == pytest.approx(numeric, rel=1e-5, abs=1e-3), i
    # P(alive) as BTYDplus writes it: 1 / (1 + S1 / S2)
    r, alpha, a, b = (TRUTH[n] for n in mbgcnbd.PARAM_NAMES)
    s1 = a / (b + x) * ((alpha + T) / (alpha + t_x)) ** (r + k * x)
    s2 = sum(
        np.prod([r + k * x + i for i in range(j)], axis=0)
        * (T - t_x) ** j
        / (math.factorial(j) * (alpha + T) ** j)
        for j in range(k)
    )
    alive = mbgcnbd.at_regularity(k).p_alive(TRUTH, x, t_x, T)
    np.testing.assert_allclose(alive, 1 / (1 + s1 / s2), rtol=1e-10)


def test_the_pymc_model_is_the_numpy_density(cdnow: pd.DataFrame) -> None:
    import pytensor.tensor as pt

    x, t_x, T = _summary(cdnow)
    model = mbgcnbd.at_regularity(K)
    ours = mbgcnbd.loglik_numpy(TRUTH, x, t_x, T, K)
    rows = model.loglik_rows(*(pt.constant(TRUTH[n]) for n in mbgcnbd.PARAM_NAMES), x, t_x, T)
    np.testing.assert_allclose(rows.eval(), ours, rtol=1e-10)
    built = model.build(cdnow, Priors("flat"))
    point = {f"log_{n}": np.log(TRUTH[n]) for n in mbgcnbd.PARAM_NAMES}
    assert built.pymc.compile_logp()(point) == pytest.approx(ours.sum(), rel=1e-10)
    theta = np.array([TRUTH[n] for n in mbgcnbd.PARAM_NAMES])
    value, _, loglik = built.density.evaluate(np.log(theta))
    assert value == loglik == pytest.approx(ours.sum(), rel=1e-12)


HOLDOUT = 36.0


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """8,000 customers of MBG/CNBD-3 observed 36 to 96 weeks (in steps of 12) and 36 after, as
    BTYDplus's test draws them."""
    rng = np.random.default_rng(1)
    T = np.round(rng.uniform(36, 96, 8_000) / 12) * 12
    sim = simulate_histories(mbgcnbd.at_regularity(K), TRUTH, T, rng, holdout=HOLDOUT)
    return sim.assign(monetary_value=0.0)


def test_the_forecasts_hold_on_the_simulated_process(simulated: pd.DataFrame) -> None:
    """At the truth, P(alive) and the holdout purchases in the large (within 3 standard errors),
    and by recency: the regular model knows a customer late against their rhythm."""
    x, t_x, T = _summary(simulated)
    model = mbgcnbd.at_regularity(K)
    alive = model.p_alive(TRUTH, x, t_x, T)
    se = np.sqrt(np.sum(alive * (1 - alive)))
    assert abs(alive.sum() - simulated.alive.sum()) < 3 * se
    expected = model.conditional_expected_purchases(TRUTH, HOLDOUT, x, t_x, T)
    actual = simulated.holdout_purchases.to_numpy(dtype=float)
    none = model.p_no_purchase(TRUTH, HOLDOUT, x, t_x, T)
    late = (T - t_x) > 2 * (t_x / np.maximum(x, 1))  # silent for over twice their mean gap
    for group in (np.ones(len(x), bool), late & (x > 0), ~late & (x > 0)):
        se = actual[group].std() * np.sqrt(group.sum())
        assert abs(expected[group].sum() - actual[group].sum()) < 3 * se
        se = np.sqrt(np.sum(none[group] * (1 - none[group])))
        assert abs(none[group].sum() - (actual[group] == 0).sum()) < 3 * se
    # the unconditional expectation: new customers' purchases in their first 36 weeks
    rng = np.random.default_rng(2)
    fresh = simulate_histories(model, TRUTH, np.full(40_000, HOLDOUT), rng)
    se = fresh.frequency.std() / np.sqrt(len(fresh))
    assert abs(fresh.frequency.mean() - model.expected_purchases(TRUTH, HOLDOUT)) < 3 * se


def test_the_fit_finds_the_regularity_and_the_parameters(simulated: pd.DataFrame) -> None:
    settings = ClvSettings(model="mbgcnbd", method="map", spend=False, priors=Priors("flat"))
    fit = fit_clv(simulated, settings)
    regularity = fit.fit_info["regularity"]
    assert regularity["k"] == K == fit.purchase.regularity
    # the search's time is with the fit's times (MLflow), not in what the report file keeps
    assert set(regularity) == {"k", "loglik"} and fit.fit_info["seconds"]["regularity_search"] > 0
    assert regularity["loglik"][K] > max(regularity["loglik"][k] for k in (1, 2, K + 1))
    for name in mbgcnbd.PARAM_NAMES:  # BTYDplus's test's tolerance
        assert fit.point[name] == pytest.approx(TRUTH[name], rel=0.1), name
    # the forecasts at the fit: the holdout in the large
    frame = fit.predict(simulated, PredictionSettings(horizon=HOLDOUT, clv_periods=0))
    actual = simulated.holdout_purchases.sum()
    assert abs(frame.expected_purchases.sum() / actual - 1) < 0.05
    # a regular log is forecast better than by MBG/NBD, customer by customer
    flat = fit_clv(simulated, dataclasses.replace(settings, model="mbgnbd"))
    other = flat.predict(simulated, PredictionSettings(horizon=HOLDOUT, clv_periods=0))
    y = simulated.holdout_purchases.to_numpy(dtype=float)
    assert np.abs(frame.expected_purchases - y).mean() < np.abs(other.expected_purchases - y).mean()


def test_the_chosen_regularity_is_saved_with_the_fit(simulated: pd.DataFrame, tmp_path) -> None:
    settings = ClvSettings(model="mbgcnbd", method="map", spend=False)
    fit = fit_clv(simulated.iloc[:2000], settings)
    fit.save(tmp_path)
    again = FittedClv.load(tmp_path)
    assert again.purchase.regularity == fit.purchase.regularity > 1
    window = PredictionSettings(horizon=10.0, clv_periods=0)
    pd.testing.assert_frame_equal(again.predict(simulated, window), fit.predict(simulated, window))


def test_a_summary_without_the_log_gaps_is_refused(simulated: pd.DataFrame) -> None:
    settings = ClvSettings(model="mbgcnbd", method="map", spend=False)
    with pytest.raises(DegenerateData, match="log_gap_sum"):
        fit_clv(simulated.drop(columns=mbgcnbd.LOG_GAPS), settings)
    with pytest.raises(ValueError, match="regularity k must be an integer from 1 to 12"):
        purchase_model("mbgcnbd", 13)


def test_nuts_converges_and_its_intervals_hold_the_truth(simulated: pd.DataFrame) -> None:
    sampler = SamplerSettings(draws=500, tune=500)
    settings = ClvSettings(model="mbgcnbd", method="nuts", spend=False, sampler=sampler)
    fit = fit_clv(simulated, settings)
    assert fit.purchase.regularity == K and fit.fit_info["convergence_problems"] == []
    draws = fit.purchase_draws()
    for name in mbgcnbd.PARAM_NAMES:
        low, high = np.quantile(draws[name], [0.005, 0.995])
        assert low < TRUTH[name] < high, name


def test_the_diagnostics_draw_the_fitted_regularity(simulated: pd.DataFrame) -> None:
    from models.evaluation.diagnostics import heterogeneity, repeat_histogram

    fit = fit_clv(simulated, ClvSettings(model="mbgcnbd", method="map", spend=False))
    histogram = repeat_histogram(fit, simulated)  # simulated at the fitted k, not the registry's
    share = histogram[["actual", "predicted"]] / len(simulated)
    assert (share.actual - share.predicted).abs().max() < 0.015
    rate = heterogeneity(fit).query("model == 'purchase_rate'")
    mass = np.cumsum(rate.density_of_log.to_numpy()) / rate.density_of_log.sum()
    median = rate.x.to_numpy()[np.searchsorted(mass, 0.5)]  # on a log-spaced grid
    assert median == pytest.approx(np.median(simulated.rate / K), rel=0.05)  # a k-th of the rate
