"""Population stability: has a column's distribution moved since a reference population?

The population stability index compares the shares of two populations that fall into the same
bins: ``PSI = sum_b (cur_b - ref_b) * ln(cur_b / ref_b)``. The bins are the reference's
quantiles, so each holds about the same share of the reference; a column with few distinct values
(a point mass at zero, small counts) gets fewer, wider bins, one per distinct quantile. Missing
values have a bin of their own. The usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift
worth a look, above 0.25 a major shift.

A column that counts days back from the as-of date (recency, tenure) grows by a week between two
weekly runs however steady the customers are: compared as it is, a closed cohort's tenure breaches
after a few weeks (CDNOW, as of 1997-09-30 against 1997-12-30: PSI 8.4, recency 2.2). Such a
column is compared in the ``date`` form: the day it counts back to (a customer's first or last
purchase day), which stays put for a customer who does nothing and moves for one who buys or
arrives (the same CDNOW pair: 0.0 and 0.13).

A reference is stored as a *profile* (its form, bin edges and shares), so the reference
population itself need not be kept. Pure functions of arrays and dicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

SHARE_FLOOR = 1e-4  # an empty bin counts as this share, so the log stays finite
STATUSES = ("ok", "warn", "breach")
FORMS = ("value", "date")  # as it is; the day it counts back to from the as-of date


def _values(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected one-dimensional values, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: no values")
    if np.isinf(arr).any():
        raise ValueError(f"{name}: {int(np.isinf(arr).sum())} infinite values")
    return arr


def bin_edges(values: ArrayLike, bins: int = 10, name: str = "values") -> list[float]:
    """Inner bin edges: the distinct ``1/bins .. (bins-1)/bins`` quantiles of the finite values
    (values that occur in the data, so a point mass is one bin).

    The bins are ``(-inf, e_0], (e_0, e_1], ..., (e_k, inf)``; fewer than ``bins`` when
    quantiles coincide.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    arr = _values(values, name)
    finite = arr[~np.isnan(arr)]
    if finite.size == 0:
        return []
    edges = np.quantile(finite, np.arange(1, bins) / bins, method="inverted_cdf")
    return [float(e) for e in np.unique(edges)]


def shares(values: ArrayLike, edges: list[float], name: str = "values") -> list[float]:
    """Share of ``values`` in each bin of ``edges``, then the share of missing values (last)."""
    arr = _values(values, name)
    missing = np.isnan(arr)
    index = np.searchsorted(np.asarray(edges, dtype=float), arr[~missing], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(float)
    return [float(c) for c in np.append(counts, missing.sum()) / arr.size]


def profile(values: ArrayLike, bins: int = 10, name: str = "values") -> dict:
    """A reference profile of ``values``: ``edges``, ``shares`` (bins, then missing) and ``n``."""
    edges = bin_edges(values, bins, name)
    return {"edges": edges, "shares": shares(values, edges, name), "n": int(np.size(values))}


def psi(reference: ArrayLike, current: ArrayLike, floor: float = SHARE_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins.

    Shares below ``floor`` count as ``floor`` (an empty bin would make the index infinite).
    """
    ref = np.maximum(np.asarray(reference, dtype=float), floor)
    cur = np.maximum(np.asarray(current, dtype=float), floor)
    if ref.shape != cur.shape:
        raise ValueError(f"share vectors differ in length: {ref.size} vs {cur.size}")
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def status(value: float, warn: float, breach: float) -> str:
    """``ok`` below ``warn``, ``warn`` below ``breach``, else ``breach``."""
    if not 0 < warn <= breach:
        raise ValueError(f"PSI thresholds must satisfy 0 < warn <= breach, got {warn}, {breach}")
    return "breach" if value >= breach else "warn" if value >= warn else "ok"


def in_form(values: ArrayLike, form: str, as_of: date | None, name: str = "values") -> np.ndarray:
    """``values`` as they are compared in ``form`` (:data:`FORMS`); the ``date`` form counts
    them back from ``as_of``."""
    arr = _values(values, name)
    if form == "value":
        return arr
    if form != "date":
        raise ValueError(f"{name}: unknown form {form!r}; expected one of {', '.join(FORMS)}")
    if as_of is None:
        raise ValueError(f"{name}: the date form needs the as-of date")
    return as_of.toordinal() - arr


def profiles(
    frame: pd.DataFrame,
    columns: list[str],
    bins: int = 10,
    dated: Sequence[str] = (),
    as_of: date | None = None,
) -> dict[str, dict]:
    """A profile of each of ``columns`` of ``frame`` (with its ``form``): those in ``dated``
    count days back from ``as_of`` and are profiled in the ``date`` form."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"no column(s) {', '.join(missing)} to profile")
    out = {}
    for column in columns:
        form = "date" if column in dated else "value"
        values = in_form(frame[column].to_numpy(dtype=float), form, as_of, column)
        out[column] = {"form": form, **profile(values, bins, column)}
    return out


def drift_table(
    reference: Mapping[str, Mapping],
    current: pd.DataFrame,
    columns: list[str],
    warn: float = 0.1,
    breach: float = 0.25,
    as_of: date | None = None,
) -> dict[str, dict]:
    """PSI of each of ``columns`` of ``current`` (as of ``as_of``) against its reference
    profile, in the reference's form (a profile without one: ``value``).

    Returns ``{column: {"psi", "status", "form", "reference_n", "current_n"}}``; a column
    without a reference profile gets ``{"psi": None, "status": "no_reference"}``.

    Raises
    ------
    ValueError
        A column is missing from ``current``.
    """
    out: dict[str, dict] = {}
    for column in columns:
        if column not in current.columns:
            raise ValueError(f"no column {column!r} in the current data")
        ref = reference.get(column)
        if ref is None:
            out[column] = {"psi": None, "status": "no_reference"}
            continue
        form = ref.get("form", "value")
        values = in_form(current[column].to_numpy(dtype=float), form, as_of, column)
        value = psi(ref["shares"], shares(values, list(ref["edges"]), column))
        out[column] = {
            "psi": value,
            "status": status(value, warn, breach),
            "form": form,
            "reference_n": int(ref["n"]),
            "current_n": int(values.size),
        }
    return out


def worst(table: Mapping[str, Mapping]) -> str:
    """The worst status in a :func:`drift_table` (``ok`` when nothing was compared)."""
    found = [row["status"] for row in table.values() if row["status"] in STATUSES]
    return max(found, key=STATUSES.index, default="ok")
