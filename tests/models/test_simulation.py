"""P(alive), P(no purchase) and conditional expectations against simulation at known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from models.btyd.bgnbd import BGNBD
from models.btyd.pareto_nbd import PARETO_NBD

BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PNBD = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
HORIZON = 39.0


def _simulate(model: str, n: int, seed: int) -> dict[str, np.ndarray]:
    """Simulate the purchase process; return histories at T, alive-at-T and purchases after T."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(27.0, 39.0, n)
    end = T + HORIZON
    if model == "bgnbd":
        lam = rng.gamma(BG["r"], 1.0 / BG["alpha"], n)
        p = rng.beta(BG["a"], BG["b"], n)
        death = np.full(n, np.inf)  # set at the purchase after which the customer drops out
    else:
        lam = rng.gamma(PNBD["r"], 1.0 / PNBD["alpha"], n)
        mu = rng.gamma(PNBD["s"], 1.0 / PNBD["beta"], n)
        death = rng.exponential(1.0 / mu)
    x = np.zeros(n)
    t_x = np.zeros(n)
    after = np.zeros(n)
    clock = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        clock[idx] += rng.exponential(1.0 / lam[idx])
        buys = (clock[idx] <= np.minimum(end[idx], death[idx])) & np.isfinite(clock[idx])
        in_cal = buys & (clock[idx] <= T[idx])
        x[idx[in_cal]] += 1
        t_x[idx[in_cal]] = clock[idx[in_cal]]
        after[idx[buys & ~in_cal]] += 1
        if model == "bgnbd":
            drop = buys & (rng.random(len(idx)) < p[idx])
            death[idx[drop]] = clock[idx[drop]]
        active[idx[~buys]] = False
        active[idx[buys]] = clock[idx[buys]] < death[idx[buys]]
    return {"x": x, "t_x": t_x, "T": T, "alive": death > T, "after": after}


@pytest.mark.parametrize(
    ("model", "module", "params"), [("bgnbd", BGNBD, BG), ("pareto_nbd", PARETO_NBD, PNBD)]
)
def test_predictions_match_simulation_by_frequency(model, module, params) -> None:
    sim = _simulate(model, 200_000, seed=42)
    x, t_x, T = sim["x"], sim["t_x"], sim["T"]
    pred = {
        "alive": module.p_alive(params, x, t_x, T),
        "none": module.p_no_purchase(params, HORIZON, x, t_x, T),
        "count": module.conditional_expected_purchases(params, HORIZON, x, t_x, T),
    }
    obs = {"alive": sim["alive"], "none": sim["after"] == 0, "count": sim["after"]}
    groups = [x == 0, x == 1, x == 2, (x >= 3) & (x <= 5), x >= 6]
    for name in ("alive", "none", "count"):
        for g in groups:
            n = g.sum()
            if n < 2_000:
                continue
            se = obs[name][g].std() / np.sqrt(n)
            diff = pred[name][g].mean() - obs[name][g].mean()
            assert abs(diff) < 4 * se + 1e-3, (name, int(x[g].min()), diff, se)


def _importance(model: str, history: tuple[float, float, float], t: float, n: int) -> tuple:
    """P(alive) and P(no purchase in t) by weighting prior draws of the latent rates."""
    x, t_x, T = history
    rng = np.random.default_rng(7)
    if model == "bgnbd":
        lam = rng.gamma(BG["r"], 1.0 / BG["alpha"], n)
        p = rng.beta(BG["a"], BG["b"], n)
        alive_term = (1 - p) ** x * lam**x * np.exp(-lam * T)
        dead_term = p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0.0
        buy_given_alive = 1 - np.exp(-lam * t)
    else:
        lam = rng.gamma(PNBD["r"], 1.0 / PNBD["alpha"], n)
        mu = rng.gamma(PNBD["s"], 1.0 / PNBD["beta"], n)
        alive_term = lam**x * np.exp(-(lam + mu) * T)
        dead_term = lam**x * mu / (lam + mu) * (np.exp(-(lam + mu) * t_x) - np.exp(-(lam + mu) * T))
        buy_given_alive = lam / (lam + mu) * (1 - np.exp(-(lam + mu) * t))
    weight = alive_term + dead_term
    p_alive = alive_term.sum() / weight.sum()
    p_none = 1 - (alive_term * buy_given_alive).sum() / weight.sum()
    return p_alive, p_none


@pytest.mark.parametrize(
    ("model", "module", "params"), [("bgnbd", BGNBD, BG), ("pareto_nbd", PARETO_NBD, PNBD)]
)
@pytest.mark.parametrize("history", [(0.0, 0.0, 38.86), (2.0, 30.43, 38.86), (4.0, 8.0, 30.0)])
def test_pointwise_against_latent_rate_integration(model, module, params, history) -> None:
    p_alive, p_none = _importance(model, history, 20.0, 2_000_000)
    assert module.p_alive(params, *history) == pytest.approx(p_alive, abs=5e-3)
    assert module.p_no_purchase(params, 20.0, *history) == pytest.approx(p_none, abs=5e-3)
