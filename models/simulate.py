"""Simulate purchase histories from the BG/NBD or Pareto/NBD process and Gamma-Gamma spend.

Used for predictive checks and recovery tests: the truth (each customer's rates and whether
they are alive at ``T``) comes with the histories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_histories(
    model: str, params: dict[str, float], T: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """``frequency``, ``recency``, ``T`` plus the latent ``rate``, ``alive`` of each customer.

    Each customer is observed from their first purchase (time 0) for ``T`` time units.
    BG/NBD: rate ~ Gamma(r, alpha), after each repeat purchase the customer drops out with
    probability p ~ Beta(a, b). Pareto/NBD: rate ~ Gamma(r, alpha), lifetime ~ Exp(mu) with
    mu ~ Gamma(s, beta).
    """
    T = np.asarray(T, dtype=float)
    n = len(T)
    rate = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    if model == "bgnbd":
        p_drop = rng.beta(params["a"], params["b"], n)
        death = np.full(n, np.inf)
    elif model == "pareto_nbd":
        mu = rng.gamma(params["s"], 1.0 / params["beta"], n)
        death = rng.exponential(1.0 / mu)
    else:
        raise ValueError(f"unknown model {model!r}")
    x = np.zeros(n, dtype=np.int64)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        nxt = now[idx] + rng.exponential(1.0 / rate[idx])
        bought = (nxt <= T[idx]) & (nxt <= death[idx])
        done = idx[~bought]
        active[done] = False
        buyers = idx[bought]
        x[buyers] += 1
        t_x[buyers] = nxt[bought]
        now[buyers] = nxt[bought]
        if model == "bgnbd":
            drop = rng.random(len(buyers)) < p_drop[buyers]
            death[buyers[drop]] = now[buyers[drop]]
            active[buyers[drop]] = False
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T, "rate": rate, "alive": death > T})


def simulate_spend(
    params: dict[str, float], frequency: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Mean spend of each customer's ``frequency`` repeat purchases (0 without any).

    Gamma-Gamma: spend per purchase ~ Gamma(p, nu) with nu ~ Gamma(q, gamma); the mean of x
    purchases is Gamma(p x, nu x).
    """
    frequency = np.asarray(frequency)
    nu = rng.gamma(params["q"], 1.0 / params["gamma"], len(frequency))
    x = np.maximum(frequency, 1)
    mean = rng.gamma(params["p"] * x, 1.0 / (nu * x))
    return np.where(frequency > 0, mean, 0.0)
