"""The BTYD summary rebuilt from the bundled CDNOW sample matches the published one."""

from datetime import date

import ibis
import pandas as pd
import pytest

from features.cleaning import classify, clean_rows
from features.spec import ColumnMapping, FeatureSpec, IngestRules
from features.summary import btyd_summary, purchase_days
from features.tables import calibration_table
from pipeline.io import read_raw
from tests.conftest import CDNOW_SAMPLE, FIXTURES

CALIBRATION_END = date(1997, 9, 30)


@pytest.fixture(scope="module")
def days():
    mapping = ColumnMapping(
        customer_id="customer_id",
        timestamp="date",
        timestamp_format="%Y%m%d",
        amount="dollar_value",
        quantity="number_of_cds",
    )
    names = ["master_id", "customer_id", "date", "number_of_cds", "dollar_value"]
    raw = read_raw(CDNOW_SAMPLE, "whitespace", mapping.source_columns(), header=False, names=names)
    con = ibis.duckdb.connect()
    clean = clean_rows(classify(ibis.memtable(raw), mapping, IngestRules(duplicates="keep")))
    return con.create_table("days", purchase_days(clean))


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
