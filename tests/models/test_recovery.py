"""Fits recover the parameters of simulated cohorts (known truth)."""

import numpy as np
import pandas as pd
import pytest

from models.btyd.clv import ClvSettings, fit_clv
from models.btyd.gamma_gamma import population_mean_spend
from models.btyd.priors import Priors
from models.btyd.settings import SamplerSettings
from models.simulate import simulate_histories, simulate_spend

TRUTH = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "pareto_nbd": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def cohort(model: str, n: int, seed: int) -> pd.DataFrame:
    """Customers arriving over 12 weeks, observed to week 78, with their mean repeat spend."""
    rng = np.random.default_rng(seed)
    T = (546 - rng.integers(0, 84, n)) / 7
    summary = simulate_histories(model, TRUTH[model], T, rng)
    summary["monetary_value"] = simulate_spend(SPEND, summary.frequency.to_numpy(), rng)
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("model", ["bgnbd", "pareto_nbd"])
def test_map_recovers_the_truth_at_100k_customers(model):
    fit = fit_clv(
        cohort(model, 100_000, seed=2),
        ClvSettings(model=model, method="map", priors=Priors(kind="flat")),
    )
    for name, value in TRUTH[model].items():
        # the sampling error of 100,000 customers is a few percent on the dropout parameters
        assert fit.map_point["purchase"][name] == pytest.approx(value, rel=0.05), name
    spend = {k: fit.map_point["spend"][k] for k in SPEND}
    # Gamma-Gamma's p and gamma trade off against each other (their ratio is what the ~40 %
    # repeat buyers pin down); the mean spend they imply is recovered closely
    assert float(population_mean_spend(spend)) == pytest.approx(
        float(population_mean_spend(SPEND)), rel=0.02
    )
    for name, value in SPEND.items():
        assert spend[name] == pytest.approx(value, rel=0.1), name


@pytest.mark.slow
def test_nuts_90_percent_intervals_cover_the_truth():
    settings = ClvSettings(method="nuts", sampler=SamplerSettings(draws=1000, tune=1000), seed=3)
    fit = fit_clv(cohort("bgnbd", 20_000, seed=5), settings)
    assert fit.fit_info["convergence_problems"] == []
    draws = fit.purchase_draws() | fit.spend_draws()
    for name, value in (TRUTH["bgnbd"] | SPEND).items():
        low, high = np.quantile(draws[name], [0.05, 0.95])
        assert low <= value <= high, f"{name}: {value} outside [{low:.4f}, {high:.4f}]"
