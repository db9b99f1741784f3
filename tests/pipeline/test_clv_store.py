"""A fitted model is one value: saved and loaded, it is the model that was fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from models.btyd.clv import ClvSettings, FittedClv, fit_clv
from models.btyd.predict import PredictionSettings
from models.btyd.settings import ConvergenceSettings, SamplerSettings
from pipeline import clv_store
from pipeline.errors import CvmError
from tests.conftest import FIXTURES

SHORT = ConvergenceSettings(on_failure="warn")  # short chains: what is tested is the round trip


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    raw = pd.read_csv(FIXTURES / "cdnow_summary.csv")
    summary = raw.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})
    # the two behaviour columns the churn features read, in days
    return summary.assign(
        recency_days=(summary["T"] - summary.recency) * 7, tenure_days=summary["T"] * 7
    )


@pytest.mark.parametrize("method", ["map", "nuts"])
def test_a_saved_pair_loads_as_the_pair_that_was_fitted(summary, tmp_path, method):
    sampler = SamplerSettings(draws=200, tune=200)
    settings = ClvSettings(method=method, sampler=sampler, convergence=SHORT, seed=7)
    fitted = fit_clv(summary, settings)
    fitted.save(tmp_path / "pair")
    loaded = clv_store.load(tmp_path / "pair")
    assert loaded.purchase is fitted.purchase and loaded.settings == fitted.settings
    assert loaded.map_point == fitted.map_point
    for part in ("purchase_draws", "spend_draws"):
        a, b = getattr(fitted, part)(), getattr(loaded, part)()
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    customers = summary.head(300)
    prediction = PredictionSettings(horizon=52.0)
    pd.testing.assert_frame_equal(
        fitted.predict(customers, prediction, max_draws=50),
        loaded.predict(customers, prediction, max_draws=50),
    )
    pd.testing.assert_frame_equal(
        fitted.churn_features(customers, 26.0), loaded.churn_features(customers, 26.0)
    )


def test_thinning_keeps_the_same_draws(summary):
    sampler = SamplerSettings(draws=100, tune=100)
    settings = ClvSettings(method="nuts", sampler=sampler, convergence=SHORT, seed=3)
    fitted = fit_clv(summary, settings)
    thinned = fitted.thinned(37)
    for name, values in thinned.purchase_draws().items():
        np.testing.assert_array_equal(values, fitted.purchase_draws(37)[name])
    assert len(thinned.spend_draws()["p"]) == 37
    prediction = PredictionSettings()
    pd.testing.assert_frame_equal(
        thinned.predict(summary.head(100), prediction),
        fitted.predict(summary.head(100), prediction, max_draws=37),
    )


def test_the_files_say_which_model_they_hold(summary, tmp_path):
    fitted = fit_clv(summary, ClvSettings(model="pareto_nbd", method="map"))
    fitted.save(tmp_path / "pair")
    assert clv_store.load(tmp_path / "pair").purchase.name == "pareto_nbd"


def test_a_mixed_or_foreign_pair_is_refused(summary, tmp_path):
    one = fit_clv(summary, ClvSettings(method="map", seed=1))
    other = fit_clv(summary.sample(frac=0.5, random_state=0), ClvSettings(method="map", seed=1))
    one.save(tmp_path / "a")
    other.save(tmp_path / "b")
    (tmp_path / "b" / "spend.nc").replace(tmp_path / "a" / "spend.nc")
    with pytest.raises(CvmError, match="different fits"):
        clv_store.load(tmp_path / "a")
    foreign = xr.DataTree.from_dict({"posterior": xr.Dataset({"r": (("chain", "draw"), [[1.0]])})})
    (tmp_path / "c").mkdir()
    foreign.to_netcdf(tmp_path / "c" / "transactions.nc")
    with pytest.raises(CvmError, match="not a cvm CLV posterior.*run the fit_clv stage"):
        clv_store.load(tmp_path / "c")
    with pytest.raises(CvmError, match="not found"):
        clv_store.load(tmp_path / "missing")


def test_the_pair_is_one_value(summary):
    fitted = fit_clv(summary, ClvSettings(method="map"))
    assert isinstance(fitted, FittedClv)
    assert set(fitted.map_point) == {"purchase", "spend"}
    assert fitted.point == {k: fitted.map_point["purchase"][k] for k in ("r", "alpha", "a", "b")}
