"""The simulator reproduces the closed forms it is meant to check."""

import numpy as np
import pandas as pd
import pytest

from models.btyd import gamma_gamma
from models.btyd.family import NAMES, purchase_model
from models.simulate import simulate_histories, simulate_spend


@pytest.mark.parametrize("name", NAMES)
def test_simulated_counts_and_survival_match_the_model(name):
    # every registered model, at its simulation's default population (CDNOW's estimates)
    model = purchase_model(name)
    params = dict(model.simulation_params)
    rng = np.random.default_rng(7)
    T = rng.uniform(20, 40, 100_000)
    sim = simulate_histories(name, params, T, rng)
    expected = model.expected_purchases(params, T).mean()
    assert sim.frequency.mean() == pytest.approx(expected, rel=0.03)
    p_alive = model.p_alive(params, sim.frequency, sim.recency, sim["T"]).mean()
    assert sim.alive.mean() == pytest.approx(p_alive, abs=0.01)
    assert (sim.recency <= sim["T"]).all() and (sim.recency[sim.frequency == 0] == 0).all()


def test_simulated_spend_has_the_population_mean():
    params = {"p": 6.25, "q": 3.74, "gamma": 15.44}
    spend = simulate_spend(params, np.full(200_000, 1), np.random.default_rng(3))
    assert spend.mean() == pytest.approx(float(gamma_gamma.population_mean_spend(params)), rel=0.02)
    assert (simulate_spend(params, np.zeros(5, int), np.random.default_rng(3)) == 0).all()


def test_simulated_logs_carry_their_truth():
    from models.simulate import SimulationSettings, simulate_log

    settings = SimulationSettings(customers=20_000, covariate_effects=(("vip", 0.8, -0.5),), seed=4)
    transactions, customers = simulate_log(settings)
    again, _ = simulate_log(settings)
    pd.testing.assert_frame_equal(transactions, again)
    per_customer = transactions.groupby("customer_id").size() - 1
    assert (per_customer.to_numpy() == customers.repeat_purchases.to_numpy()).all()
    first = transactions.groupby("customer_id").timestamp.min()
    assert (first.to_numpy() == customers.first_purchase.to_numpy()).all()
    assert transactions.timestamp.max() < pd.Timestamp(settings.start) + pd.Timedelta(days=546)
    # a positive rate effect raises purchase rates of customers with a high covariate
    high = customers.vip > 1
    assert customers.rate[high].mean() > 1.5 * customers.rate[customers.vip < -1].mean()
    assert (transactions.amount > 0).all()
