"""The pure parts of `cvm retrain`: population stability, the promotion rule and the lock."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models import drift
from models.promotion import MetricRule, compare, lookup, missing_paths, worse_metrics
from pipeline import lock


def test_psi_of_a_population_against_itself_is_zero():
    values = np.random.default_rng(0).gamma(2.0, 3.0, 5000)
    ref = drift.profile(values)
    assert len(ref["edges"]) == 9
    assert ref["shares"][:-1] == pytest.approx([0.1] * 10, abs=1e-3)
    assert drift.psi(ref["shares"], drift.shares(values, ref["edges"])) == pytest.approx(0.0)


def test_psi_matches_the_formula_and_grows_with_the_shift():
    assert drift.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        (0.25 - 0.5) * math.log(0.5) + (0.75 - 0.5) * math.log(1.5)
    )
    rng = np.random.default_rng(1)
    ref = drift.profile(rng.normal(0, 1, 20_000))
    small = drift.psi(ref["shares"], drift.shares(rng.normal(0.1, 1, 20_000), ref["edges"]))
    large = drift.psi(ref["shares"], drift.shares(rng.normal(1.0, 1, 20_000), ref["edges"]))
    assert 0.002 < small < 0.1 < 0.25 < large
    assert drift.status(small, 0.1, 0.25) == "ok" and drift.status(large, 0.1, 0.25) == "breach"
    assert drift.status(0.12, 0.1, 0.25) == "warn"


def test_point_masses_and_missing_values_get_their_own_bins():
    counts = np.array([0] * 700 + [1] * 200 + [2] * 100, dtype=float)
    ref = drift.profile(counts)
    assert ref["edges"] == [0.0, 1.0]  # (-inf, 0], (0, 1], (1, inf), then missing
    assert ref["shares"] == pytest.approx([0.7, 0.2, 0.1, 0.0])
    with_missing = np.append(counts[:500], [np.nan] * 500)
    assert drift.shares(with_missing, ref["edges"]) == pytest.approx([0.5, 0.0, 0.0, 0.5])
    # a share that drops to zero still gives a finite index
    assert math.isfinite(drift.psi(ref["shares"], [1.0, 0.0, 0.0, 0.0]))


def test_drift_table_flags_the_moved_column_only():
    rng = np.random.default_rng(2)
    before = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.exponential(1, 5000)})
    after = pd.DataFrame({"a": rng.normal(0, 1, 5000), "b": rng.exponential(3, 5000)})
    table = drift.drift_table(drift.profiles(before, ["a", "b"]), after, ["a", "b"])
    assert table["a"]["status"] == "ok" and table["b"]["status"] == "breach"
    assert drift.worst(table) == "breach"
    assert drift.drift_table({}, after, ["a"])["a"]["status"] == "no_reference"
    with pytest.raises(ValueError, match="no column 'c'"):
        drift.drift_table({}, after, ["c"])


RULES = {
    "auc": MetricRule("churn.churn_model.roc_auc", "higher", 0.01),
    "mae": MetricRule("clv.purchases.mae", "lower", 0.02, relative=True),
}


def results(auc, mae) -> dict:
    return {"churn": {"churn_model": {"roc_auc": auc}}, "clv": {"purchases": {"mae": mae}}}


@pytest.mark.parametrize(
    ("auc", "mae", "worse"),
    [
        (0.80, 1.00, []),  # equal
        (0.795, 1.019, []),  # worse, within both tolerances
        (0.789, 1.00, ["auc"]),  # AUC below 0.80 - 0.01
        (0.85, 1.021, ["mae"]),  # MAE above 1.00 * 1.02
        (None, 1.00, ["auc"]),  # undefined for the challenger only
    ],
)
def test_the_challenger_is_refused_only_beyond_a_tolerance(auc, mae, worse):
    champion = results(0.80, 1.00)
    challenger = results(auc, mae)
    rows = compare(challenger, champion, RULES)
    assert worse_metrics(rows) == worse
    assert rows[0]["limit"] == pytest.approx(0.79) and rows[1]["limit"] == pytest.approx(1.02)


def test_a_metric_undefined_on_the_window_for_both_is_skipped():
    rows = compare(results(None, 1.0), results(float("nan"), 1.0), {"auc": RULES["auc"]})
    assert rows[0]["worse"] is False and "undefined for both" in rows[0]["note"]
    assert lookup({"a": {"b": 2}}, "a.b") == 2.0 and lookup({"a": {}}, "a.b") is None
    with pytest.raises(ValueError, match="'higher' or 'lower'"):
        MetricRule("churn.churn_model.roc_auc", "bigger", 0.1)


def test_a_metric_path_that_names_nothing_is_caught():
    """A path the config accepts may still be absent: no spend metrics on a log without
    amounts (a typo is refused by the config's type)."""
    found = results(None, 1.0)
    assert missing_paths(found, RULES) == []
    spend = MetricRule("clv.spend.mae", "lower", 0.01)
    assert missing_paths(found, {"spend": spend}) == ["spend (clv.spend.mae)"]
    with pytest.raises(ValueError, match="input_value=.churn.churn_model.acu"):
        MetricRule("churn.churn_model.acu", "higher", 0.01)


def test_the_lock_names_its_holder_and_is_released(tmp_path):
    path = tmp_path / "cvm.lock"
    with lock.exclusive(path, "cvm retrain") as info:
        holder = rf"`cvm retrain` \(pid {info['pid']} "
        with pytest.raises(lock.LockHeld, match=holder), lock.exclusive(path, "cvm score"):
            pass
    with lock.exclusive(path, "cvm score", wait=1.0):  # free again
        pass
    assert path.read_text() == ""
