"""The purchase model's diagnostics on a log simulated from BG/NBD: the model's own histogram
of repeat purchases matches the log's, the densities are the fitted ones, P(alive) falls with
silence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.btyd.clv import ClvSettings, fit_clv
from models.btyd.predict import PredictionSettings
from models.evaluation import diagnostics
from tests.models.test_season import UNIT, _actual, _log, _table

CUTOFF, HOLDOUT_DAYS = "2025-06-30", 120


@pytest.fixture(scope="module")
def fitted():
    log = _log(0.0, seed=31)
    table = _table(log, CUTOFF)
    cut = pd.Timestamp(CUTOFF)
    window = log[(log.day > cut) & (log.day <= cut + pd.Timedelta(days=HOLDOUT_DAYS))]
    counts = window.groupby("customer_id").size()
    table = table.assign(holdout_purchases=table.customer_id.map(counts).fillna(0.0))
    assert table.holdout_purchases.sum() == _actual(log, table, CUTOFF, HOLDOUT_DAYS)
    return table, fit_clv(table, ClvSettings(model="bgnbd", method="map", spend=False))


def test_the_expected_histogram_is_the_logs(fitted):
    table, clv = fitted
    histogram = diagnostics.repeat_histogram(clv, table)
    assert histogram.actual.sum() == len(table)
    assert histogram.predicted.sum() == pytest.approx(len(table))
    # each bucket within 4 binomial standard errors (and 2 % of the customers) of the log's
    spread = 4 * np.sqrt(histogram.predicted) + 0.02 * len(table)
    assert (np.abs(histogram.actual - histogram.predicted) < spread).all()


def test_holdout_by_recency_averages_each_bin(fitted):
    table, clv = fitted
    window = PredictionSettings(horizon=HOLDOUT_DAYS / UNIT, clv_periods=0)
    predicted = clv.predict(table, window).expected_purchases
    by_recency = diagnostics.conditional_by_recency(table, predicted)
    assert by_recency.customers.sum() == len(table)
    weighted = (by_recency.actual * by_recency.customers).sum()
    assert weighted == pytest.approx(table.holdout_purchases.sum())
    assert by_recency.weeks_since_last_purchase.is_monotonic_increasing
    # the recent buyers buy more, as the model expects
    assert by_recency.actual.iloc[0] > by_recency.actual.iloc[-1]
    assert by_recency.predicted.iloc[0] > by_recency.predicted.iloc[-1]


def test_the_densities_are_the_fitted_ones(fitted):
    _, clv = fitted
    densities = diagnostics.heterogeneity(clv)
    for name, part in densities.groupby("model"):
        # x f(x) over log x integrates to the mass between the 0.5 % and 99.5 % quantiles
        mass = np.trapezoid(part.density_of_log, np.log(part.x))
        assert mass == pytest.approx(0.99, abs=0.01), name
    rate = densities[densities.model == "purchase_rate"]
    peak = rate.x.iloc[int(np.argmax(rate.density_of_log))]
    # the mode of log(rate) for Gamma(r, alpha) is at r / alpha
    assert peak == pytest.approx(clv.point["r"] / clv.point["alpha"], rel=0.1)


def test_p_alive_falls_with_silence_except_for_bgnbds_one_time_buyers(fitted):
    table, clv = fitted
    paths = diagnostics.p_alive_paths(clv, table)
    assert set(paths.model) == {"one_time_buyer", "median_repeat_buyer", "frequent_buyer"}
    for name, part in paths.groupby("model"):
        if name == "one_time_buyer":
            assert (part.p_alive == 1).all()  # BG/NBD keeps every one-time buyer alive
        else:
            assert np.all(np.diff(part.p_alive) < 0) and part.p_alive.iloc[-1] < 0.5
