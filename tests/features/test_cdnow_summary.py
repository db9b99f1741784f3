"""The BTYD summary rebuilt from the bundled CDNOW sample matches the published one."""

from datetime import date

import ibis
import numpy as np
import pandas as pd
import pytest

from features.spec import FeatureSpec
from features.summary import btyd_summary, purchase_days
from features.tables import calibration_table
from tests.conftest import FIXTURES

CALIBRATION_END = date(1997, 9, 30)


@pytest.fixture(scope="module")
def days(cdnow_sample_clean):
    con = ibis.duckdb.connect()
    return con.create_table("days", purchase_days(ibis.memtable(cdnow_sample_clean)))


@pytest.fixture(scope="module")
def published() -> pd.DataFrame:
    ref = pd.read_csv(FIXTURES / "cdnow_summary.csv")
    ref = ref.rename(columns={"T": "T_published"})
    return ref.assign(customer_id=ref.ID.map(lambda i: f"{i:04d}")).set_index("customer_id")


def test_calibration_summary_matches_the_paper(days, published):
    ours = btyd_summary(days, CALIBRATION_END, unit_days=7).execute().set_index("customer_id")
    assert len(ours) == 2357
    both = published.join(ours, how="inner")
    assert len(both) == 2357
    assert (both.x == both.frequency).all()
    assert (both.t_x - both.recency).abs().max() < 0.01
    assert (both.T_published - both["T"]).abs().max() < 0.01
    assert ours.frequency.sum() == 2457
    # mean repeat spend (zbar) of the 946 repeat buyers, to the cent of the published table
    assert (both.zbar - both.monetary_value).abs().max() < 0.01
    assert (ours.frequency > 0).sum() == 946


def test_holdout_counts_merge_same_day_purchases(days):
    table = calibration_table(days, CALIBRATION_END, date(1998, 6, 30), FeatureSpec()).execute()
    assert len(table) == 2357
    assert table.holdout_purchases.sum() == 1882


def test_the_log_gap_sum_adds_the_logs_of_the_weeks_between_purchase_days(days, cdnow_sample_clean):
    ours = btyd_summary(days, CALIBRATION_END, unit_days=7).execute().set_index("customer_id")
    log = cdnow_sample_clean.assign(day=cdnow_sample_clean.timestamp.dt.normalize())
    log = log[log.day <= pd.Timestamp(CALIBRATION_END)].drop_duplicates(["customer_id", "day"])
    log = log.sort_values(["customer_id", "day"])
    weeks = log.groupby("customer_id").day.diff().dt.days / 7  # none at a first purchase
    expected = np.log(weeks).groupby(log.customer_id).sum()  # the sum skips the first's NaN
    both = ours.join(expected.rename("expected"))
    assert (ours.frequency > 0).sum() == 946 and (both.log_gap_sum[ours.frequency == 0] == 0).all()
    np.testing.assert_allclose(both.log_gap_sum, both.expected, atol=1e-9)
