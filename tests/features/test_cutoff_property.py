"""Features at a cutoff ignore every transaction after it (property-based)."""

from datetime import date, datetime, timedelta

import ibis
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.spec import FeatureSpec
from features.summary import purchase_days
from features.tables import customer_features

CUTOFF = date(2024, 3, 1)
START = datetime(2024, 1, 1)
SPEC = FeatureSpec(time_unit="days", windows_days=(7, 30), trend_window_days=14)

row = st.tuples(
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(min_value=0, max_value=120),  # day offset: the cutoff is day 60
    st.integers(min_value=0, max_value=23),  # hour
    st.floats(min_value=-20, max_value=200, allow_nan=False).map(lambda v: round(v, 2)),
)
later_row = st.tuples(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.integers(min_value=61, max_value=200),
    st.integers(min_value=0, max_value=23),
    st.floats(min_value=-20, max_value=200, allow_nan=False).map(lambda v: round(v, 2)),
)


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": [START + timedelta(days=r[1], hours=r[2]) for r in rows],
            "amount": [r[3] for r in rows],
            "quantity": [1.0] * len(rows),
        },
        columns=["customer_id", "timestamp", "amount", "quantity"],
    ).astype({"customer_id": "str", "timestamp": "datetime64[us]", "amount": "float64"})


def features_at_cutoff(rows) -> pd.DataFrame:
    days = purchase_days(ibis.memtable(frame(rows)))
    table = customer_features(days, CUTOFF, SPEC).execute()
    return table.sort_values("customer_id").reset_index(drop=True)


def is_after_cutoff(r) -> bool:
    return (START + timedelta(days=r[1], hours=r[2])).date() > CUTOFF


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(row, min_size=1, max_size=30),
    keep=st.lists(st.booleans(), min_size=30, max_size=30),
    shifts=st.lists(st.integers(min_value=0, max_value=50), min_size=30, max_size=30),
    added=st.lists(later_row, max_size=10),
)
def test_features_ignore_transactions_after_the_cutoff(rows, keep, shifts, added):
    before = [r for r in rows if not is_after_cutoff(r)]
    after = [r for r in rows if is_after_cutoff(r)]
    # remove some later rows, move and re-price the rest (still after the cutoff), add new ones
    changed = [(r[0], r[1] + shifts[i], r[2], r[3] * 2 + 1) for i, r in enumerate(after) if keep[i]]
    expected = features_at_cutoff(rows)
    actual = features_at_cutoff(before + changed + added)
    pd.testing.assert_frame_equal(expected, actual)
    assert set(expected.customer_id) == {r[0] for r in before if r[3] >= 0}
