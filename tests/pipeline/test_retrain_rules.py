"""The pure parts of `cvm retrain`: population stability, the promotion rule and the lock."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from models import drift
from models.promotion import MetricRule, compare, lookup, missing_paths, worse_metrics
from pipeline import lock
from tests.conftest import CDNOW_MASTER


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


def _recency_and_tenure(log: pd.DataFrame, as_of: date) -> pd.DataFrame:
    days = log[log.date <= pd.Timestamp(as_of)].groupby("customer_id").date.agg(["min", "max"])
    back = pd.Timestamp(as_of) - days
    return pd.DataFrame({"tenure_days": back["min"].dt.days, "recency_days": back["max"].dt.days})


def test_days_before_the_as_of_date_are_compared_as_the_day_they_point_to():
    """CDNOW's customers all arrived in its first quarter: a quarter later every tenure and most
    recencies are 91 days longer. As values they breach; as the first and last purchase days
    they hold still (tenure exactly: nobody arrives), or move by who bought since (recency)."""
    log = pd.read_csv(
        CDNOW_MASTER,
        sep=r"\s+",
        skiprows=1,
        names=["customer_id", "date", "cds", "amount"],
        dtype={"customer_id": str, "date": str},
    )
    log["date"] = pd.to_datetime(log.date, format="%Y%m%d")
    before, after = date(1997, 9, 30), date(1997, 12, 30)
    columns = ["tenure_days", "recency_days"]
    reference, current = _recency_and_tenure(log, before), _recency_and_tenure(log, after)
    as_values = drift.drift_table(drift.profiles(reference, columns), current, columns)
    as_days = drift.drift_table(
        drift.profiles(reference, columns, dated=columns, as_of=before),
        current,
        columns,
        as_of=after,
    )
    assert {c: row["form"] for c, row in as_values.items()} == dict.fromkeys(columns, "value")
    assert {c: row["form"] for c, row in as_days.items()} == dict.fromkeys(columns, "date")
    assert as_values["tenure_days"]["psi"] > 5 and as_values["recency_days"]["psi"] > 1
    assert as_days["tenure_days"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert 0.01 < as_days["recency_days"]["psi"] < 0.25  # the quarter's buyers, no breach
    # a week later only that week's buyers move
    week = drift.drift_table(
        drift.profiles(reference, columns, dated=columns, as_of=before),
        _recency_and_tenure(log, date(1997, 10, 7)),
        columns,
        as_of=date(1997, 10, 7),
    )
    assert max(row["psi"] for row in week.values()) < 0.01
    with pytest.raises(ValueError, match="tenure_days: the date form needs the as-of date"):
        drift.drift_table(
            drift.profiles(reference, columns, dated=columns, as_of=before), current, columns
        )


def test_new_customers_move_the_date_form_of_tenure():
    rng = np.random.default_rng(3)
    first_days = rng.integers(0, 700, 3000)  # customers arriving over two years
    as_of = date(2024, 12, 1)
    reference = pd.DataFrame({"tenure_days": 700 - first_days})
    arrivals = pd.DataFrame({"tenure_days": rng.integers(0, 7, 1500)})  # a week's campaign
    current = pd.concat([reference + 7, arrivals])
    profile = drift.profiles(reference, ["tenure_days"], dated=["tenure_days"], as_of=as_of)
    later = as_of + timedelta(days=7)
    quiet = drift.drift_table(profile, reference + 7, ["tenure_days"], as_of=later)
    busy = drift.drift_table(profile, current, ["tenure_days"], as_of=later)
    assert quiet["tenure_days"]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert busy["tenure_days"]["status"] == "breach"


def test_a_profile_without_a_form_is_compared_as_values():
    values = pd.DataFrame({"tenure_days": np.arange(100.0)})
    old = {"tenure_days": drift.profile(values.tenure_days)}  # as a release before forms held it
    row = drift.drift_table(old, values, ["tenure_days"], as_of=date(2024, 1, 1))["tenure_days"]
    assert row["form"] == "value" and row["psi"] == pytest.approx(0.0)


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
