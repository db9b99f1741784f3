"""The purchase-model registry is the only list of purchase models: every entry is a complete
``PurchaseModel``, and what simulates, scales by covariates or bounds churn takes exactly the
registry's models."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.btyd import family
from models.btyd.common import FactoredLoglik, PurchaseModel
from models.btyd.covariates import build_model, coefficient_names, individual_params
from models.btyd.family import NAMES, purchase_model
from models.btyd.priors import Priors
from models.evaluation.ceiling import churn_ceiling
from models.simulate import SimulationSettings, simulate_histories, simulate_log

FIELDS = dataclasses.fields(PurchaseModel)


def test_the_registry_names_its_models_once() -> None:
    assert tuple(family.MODULES) == NAMES and len(set(NAMES)) == len(NAMES) > 0
    with pytest.raises(ValueError, match="unknown purchase model 'weibull'; expected one of"):
        purchase_model("weibull")


@pytest.mark.parametrize("name", NAMES)
def test_every_entry_is_a_complete_purchase_model(name: str) -> None:
    model = purchase_model(name)
    assert isinstance(model, PurchaseModel) and model.name == name
    for field in FIELDS:  # every field set; only those typed "| None" may be None
        value = getattr(model, field.name)
        if value is None:
            assert "None" in str(field.type), f"{name}: {field.name} is None"
        elif "Callable" in str(field.type):
            assert callable(value), f"{name}: {field.name} is not callable"
    names = model.param_names
    assert len(set(names)) == len(names) and {"r", "alpha"} <= set(names)  # rate ~ Gamma(r, alpha)
    assert set(model.scaled) <= set(names) and len(set(model.scaled)) == 2
    assert [k for k, _ in model.simulation_params] == list(names)
    assert model.factored is None or isinstance(model.factored, FactoredLoglik)
    # a customer leaves after a purchase, at the end of a lifetime, or both
    assert model.drop_after_purchase is not None or model.lifetime is not None


@pytest.mark.parametrize("name", NAMES)
def test_the_simulator_draws_every_model(name: str) -> None:
    params = dict(purchase_model(name).simulation_params)
    rng = np.random.default_rng(0)
    T = rng.uniform(20, 40, 2_000)
    sim = simulate_histories(name, params, T, rng)
    assert (sim.recency <= sim["T"]).all() and sim.frequency.sum() > 0
    spec = SimulationSettings(customers=500, model=name, seed=1)
    assert dict(spec.population) == params  # the model's own population by default
    transactions, customers = simulate_log(spec)
    assert customers.repeat_purchases.sum() == len(transactions) - 500


def test_the_simulator_takes_exactly_the_registrys_models() -> None:
    allowed = ", ".join(f"'{n}'" for n in NAMES[:-1]) + f" or '{NAMES[-1]}'"
    with pytest.raises(ValueError, match=allowed):
        SimulationSettings(model="weibull")
    with pytest.raises(ValueError, match="needs parameters"):
        SimulationSettings(model=NAMES[0], params=(("r", 1.0),))


@pytest.mark.parametrize("name", NAMES)
def test_the_ceiling_bounds_every_model(name: str) -> None:
    params = dict(purchase_model(name).simulation_params)
    frame = pd.DataFrame(
        {
            "frequency": [0.0, 2.0, 5.0],
            "tenure_days": [100.0, 200.0, 300.0],
            "recency_days": [100.0, 30.0, 150.0],
        }
    )
    truth = {
        "model": name,
        "params": params,
        "aging": 0.01,
        "seasonality": 0.3,
        "start": "2024-01-01",
        "time_unit_days": 7,
        "covariate_effects": [],
    }
    if purchase_model(name).regularity > 1:  # Erlang-k purchases: refused, with the reason
        with pytest.raises(ValueError, match="regular rhythm"):
            churn_ceiling(truth, frame, date(2025, 6, 30), 180)
        return
    ceiling = churn_ceiling(truth, frame, date(2025, 6, 30), 180)
    assert ((ceiling > 0) & (ceiling < 1)).all()
    with pytest.raises(ValueError, match="unknown simulation model"):
        churn_ceiling(truth | {"model": "weibull"}, frame, date(2025, 6, 30), 180)


@pytest.mark.parametrize("name", NAMES)
def test_covariates_scale_every_model(name: str) -> None:
    model = purchase_model(name)
    params = dict(model.simulation_params) | {"trans_vip": 0.5, "life_vip": 0.5}
    own = individual_params(model, params, np.array([[0.0], [1.0]]), ["cov_vip"])
    rate, drop = model.scaled
    assert own[rate][1] < own[rate][0] and own[drop][1] < own[drop][0]
    assert all(np.broadcast_to(own[n], 2)[0] == params[n] for n in model.param_names)
    data = pd.DataFrame(
        {"frequency": [0, 2, 1], "recency": [0.0, 5.0, 3.0], "T": [10.0, 10.0, 8.0]}
    ).assign(cov_vip=[0.0, 1.0, 1.0])
    built = build_model(model, data, ["cov_vip"], Priors())
    assert built.names == (*model.param_names, *coefficient_names(["cov_vip"]))
    assert (built.density is not None) == (model.factored is not None)
