"""Collapsing identical summaries into unique rows + weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from models.btyd.sufficient import collapse, collapse_spend, collapse_transactions, expand


def test_cdnow_collapses_and_expands_back(cdnow: pd.DataFrame) -> None:
    col = collapse_transactions(cdnow)
    assert len(col.unique) < len(cdnow) / 2
    assert col.weights.sum() == len(cdnow)
    assert col.weights.dtype == np.int64
    back = col.expand(col.unique)
    pd.testing.assert_frame_equal(back, cdnow[["frequency", "recency", "T"]].reset_index(drop=True))
    assert not col.unique.duplicated().any()


def test_spend_collapse_counts(cdnow: pd.DataFrame) -> None:
    col = collapse_spend(cdnow)
    counts = cdnow.groupby(["frequency", "monetary_value"]).size().to_numpy()
    np.testing.assert_array_equal(np.sort(col.weights), np.sort(counts))


def test_missing_values_compare_equal() -> None:
    df = pd.DataFrame({"a": [1.0, np.nan, np.nan, 1.0], "b": [0, 0, 0, 0]})
    col = collapse(df, ["a", "b"])
    assert len(col.unique) == 2
    assert col.weights.tolist() == [2, 2]
    np.testing.assert_array_equal(col.inverse, [0, 1, 1, 0])


def test_empty_frame() -> None:
    col = collapse(pd.DataFrame({"a": [], "b": []}), ["a", "b"])
    assert len(col.unique) == 0 and col.weights.size == 0 and col.inverse.size == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1, max_size=40))
def test_roundtrip_property(rows: list[tuple[int, int]]) -> None:
    df = pd.DataFrame(rows, columns=["a", "b"])
    col = collapse(df, ["a", "b"])
    assert col.weights.sum() == len(df)
    np.testing.assert_array_equal(expand(col.unique.to_numpy(), col.inverse), df.to_numpy())
