"""Churn training rows see nothing after their cutoff: they equal features of a truncated log."""

from datetime import date

import ibis
import pandas as pd
import pytest

from features.spec import FeatureSpec
from features.summary import purchase_days
from features.tables import customer_features, training_cutoffs, training_table
from models.btyd.bgnbd import BGNBD
from models.btyd.churn_features import add_btyd_features_by_cutoff
from models.btyd.priors import Priors
from models.columns import LABEL_COLUMNS

SPEC = FeatureSpec()


@pytest.fixture(scope="module")
def clean(cdnow_sample_clean) -> pd.DataFrame:
    return cdnow_sample_clean


def features_only(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in frame.columns if c not in LABEL_COLUMNS]
    return frame[cols].sort_values("customer_id").reset_index(drop=True)


def test_training_rows_equal_features_of_the_log_cut_at_their_cutoff(clean):
    days = purchase_days(ibis.memtable(clean))
    cutoffs = training_cutoffs(date(1998, 6, 30), date(1997, 1, 1), SPEC)
    train = training_table(days, cutoffs, SPEC).execute()
    for cutoff in cutoffs:
        truncated = clean[clean.timestamp.dt.date <= cutoff]
        alone = customer_features(purchase_days(ibis.memtable(truncated)), cutoff, SPEC).execute()
        rows = train[pd.to_datetime(train.cutoff) == pd.Timestamp(cutoff)]
        pd.testing.assert_frame_equal(features_only(rows), features_only(alone))


def test_model_based_features_of_a_cutoff_use_only_that_cutoff(clean):
    days = purchase_days(ibis.memtable(clean))
    cutoffs = training_cutoffs(date(1998, 6, 30), date(1997, 1, 1), SPEC)
    train = training_table(days, cutoffs, SPEC).execute()
    both, points = add_btyd_features_by_cutoff(train, BGNBD, Priors(), 180 / 7)
    earliest = pd.to_datetime(train.cutoff) == pd.Timestamp(min(cutoffs))
    alone, alone_points = add_btyd_features_by_cutoff(train[earliest], BGNBD, Priors(), 180 / 7)
    key = min(cutoffs).isoformat()
    assert points[key] == pytest.approx(alone_points[key])
    pd.testing.assert_frame_equal(both[earliest], alone)


def test_cutoffs_stop_at_the_first_day_however_many_are_asked_for():
    """`features.train_cutoffs=100000` overflowed the date arithmetic (a traceback)."""
    many = FeatureSpec(train_cutoffs=100_000, train_cutoff_step_days=30, selection_cutoffs=100_000)
    cutoffs = training_cutoffs(date(1998, 6, 30), date(1997, 1, 1), many)
    assert min(cutoffs) >= date(1997, 1, 1)
    assert cutoffs == sorted(set(cutoffs), reverse=True)
    # every cutoff 30 days apart from the latest back to the first day: the train cutoffs
    latest = date(1998, 6, 30) - pd.Timedelta(days=180).to_pytimedelta()
    assert {latest - k * pd.Timedelta(days=30).to_pytimedelta() for k in range(10)} <= set(cutoffs)
    assert training_cutoffs(date(1997, 3, 1), date(1997, 1, 1), many) == []
