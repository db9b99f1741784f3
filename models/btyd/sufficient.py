"""Sufficient-statistic collapsing of customer summaries.

The BG/NBD, Pareto/NBD and Gamma-Gamma likelihoods depend on a customer only through a few
summary numbers, so customers with identical summaries contribute identical terms. Collapsing
them into unique rows with integer weights makes the cost of fitting and predicting grow with the
number of *distinct* summaries rather than with the number of customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

TRANSACTION_COLUMNS: tuple[str, str, str] = ("frequency", "recency", "T")
SPEND_COLUMNS: tuple[str, str] = ("frequency", "monetary_value")


@dataclass(frozen=True)
class Collapsed:
    """Unique summary rows, their multiplicities and the map back to the original rows.

    Attributes
    ----------
    unique : pandas.DataFrame
        The distinct rows of the selected columns, with a fresh ``RangeIndex``.
    weights : numpy.ndarray
        Integer count of original rows per unique row (``int64``, same length as ``unique``).
    inverse : numpy.ndarray
        For every original row, the position of its unique row, so that
        ``unique.iloc[inverse]`` reproduces the original columns in order.
    """

    unique: pd.DataFrame
    weights: np.ndarray
    inverse: np.ndarray

    @property
    def n_original(self) -> int:
        """Number of rows before collapsing."""
        return int(self.inverse.shape[0])

    def expand(self, values: np.ndarray | pd.DataFrame | pd.Series) -> np.ndarray | pd.DataFrame:
        """Expand per-unique-row values back to the original rows (see :func:`expand`)."""
        return expand(values, self.inverse)


def collapse(frame: pd.DataFrame, columns: Sequence[str]) -> Collapsed:
    """Collapse identical rows of ``frame[columns]`` into unique rows with integer weights.

    Parameters
    ----------
    frame : pandas.DataFrame
        Per-customer rows.
    columns : sequence of str
        Columns whose joint values define "identical". Values are compared exactly;
        missing values compare equal to each other.

    Returns
    -------
    Collapsed
        Unique rows (sorted by ``columns``), weights and the inverse index.
    """
    cols = list(columns)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in frame: {missing}")
    sub = frame[cols]
    if len(sub) == 0:
        return Collapsed(
            unique=sub.reset_index(drop=True),
            weights=np.zeros(0, dtype=np.int64),
            inverse=np.zeros(0, dtype=np.int64),
        )
    inverse = sub.groupby(cols, sort=True, dropna=False).ngroup().to_numpy(dtype=np.int64)
    n_unique = int(inverse.max()) + 1
    weights = np.bincount(inverse, minlength=n_unique).astype(np.int64)
    # position of the first original row of each group
    first = np.full(n_unique, -1, dtype=np.int64)
    order = np.arange(len(inverse), dtype=np.int64)
    first[inverse[::-1]] = order[::-1]
    unique = sub.iloc[first].reset_index(drop=True)
    return Collapsed(unique=unique, weights=weights, inverse=inverse)


def collapse_transactions(frame: pd.DataFrame, covariates: Sequence[str] = ()) -> Collapsed:
    """Collapse on ``(frequency, recency, T)``, the BG/NBD and Pareto/NBD sufficient statistics,
    and the ``covariates`` columns when the models take covariates (customers with the same
    summary but different covariates have different likelihood terms)."""
    return collapse(frame, [*TRANSACTION_COLUMNS, *covariates])


def collapse_spend(frame: pd.DataFrame) -> Collapsed:
    """Collapse on ``(frequency, monetary_value)``, the Gamma-Gamma sufficient statistics."""
    return collapse(frame, SPEND_COLUMNS)


def expand(
    values: np.ndarray | pd.DataFrame | pd.Series, inverse: np.ndarray
) -> np.ndarray | pd.DataFrame:
    """Expand per-unique-row ``values`` (first axis) back to the original row order.

    Parameters
    ----------
    values : numpy.ndarray, pandas.Series or pandas.DataFrame
        One entry (row) per unique row.
    inverse : numpy.ndarray
        The ``Collapsed.inverse`` index.

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        A DataFrame (with a fresh ``RangeIndex``) if ``values`` is a DataFrame, else an array.
    """
    if isinstance(values, pd.DataFrame):
        return values.iloc[inverse].reset_index(drop=True)
    return np.asarray(values)[inverse]
