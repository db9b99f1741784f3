"""A purchase model at its MAP point as plain data: the P(no purchase) a churn prior carries
equals the fit's own, on the seasonal clock too, whatever the cutoffs a table stacks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.btyd import point_fit
from models.btyd.choice import Candidate, fit_candidate
from models.btyd.point_fit import PointFit
from tests.models.test_season import SETTINGS, UNIT, _log, _repeats, _table

HORIZON_DAYS = 180


@pytest.fixture(scope="module")
def seasonal():
    log = _log(0.5, seed=21)
    return log, _repeats(log)


@pytest.mark.parametrize("model", ["bgnbd", "weibull_nbd"])
def test_it_gives_the_fits_own_p_no_purchase_on_its_clock(seasonal, model):
    log, repeats = seasonal
    table = _table(log, "2025-06-30")
    fit = fit_candidate(table, Candidate(model, True), SETTINGS, repeats, UNIT)
    point = PointFit.from_dict(json.loads(json.dumps(PointFit.of(fit, UNIT).to_dict())))
    assert point.seasonal and point.model == model
    # the fit's path: the table's summaries and the window moved onto its clock by its Season
    own = fit.churn_features(table, HORIZON_DAYS / UNIT)["btyd_p_no_purchase"]
    np.testing.assert_allclose(point.p_no_purchase(table, HORIZON_DAYS), own, rtol=1e-9)


def test_a_stacked_table_is_each_cutoffs_and_chunks_change_nothing(seasonal, monkeypatch):
    log, repeats = seasonal
    tables = [_table(log, cutoff) for cutoff in ("2025-03-31", "2025-06-30")]
    fit = fit_candidate(tables[1], Candidate("bgnbd", True), SETTINGS, repeats, UNIT)
    point = PointFit.of(fit, UNIT)
    each = [point.p_no_purchase(t, HORIZON_DAYS) for t in tables]
    stacked = point.p_no_purchase(pd.concat(tables, ignore_index=True), HORIZON_DAYS)
    np.testing.assert_array_equal(stacked, np.concatenate(each))
    monkeypatch.setattr(point_fit, "CHUNK", 7)
    np.testing.assert_array_equal(point.p_no_purchase(tables[1], HORIZON_DAYS), each[1])
    assert ((each[1] > 0) & (each[1] < 1)).all()
    assert not np.allclose(each[0][: len(each[1])], each[1][: len(each[0])])
