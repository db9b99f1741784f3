"""The churn model's design: which columns are features, the feature matrix LightGBM reads, the
labels, and the split of the stacked training table by cutoff."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.churn.settings import ChurnSettings
from models.columns import CUTOFF, IDENTIFIERS, LABEL_COLUMNS, TARGET


def feature_columns(frame: pd.DataFrame, settings: ChurnSettings | None = None) -> list[str]:
    """Columns of ``frame`` used as features, in frame order.

    Every column except ``settings.exclude``, the identifiers (:data:`IDENTIFIERS`) and the
    label-side columns (:data:`LABEL_COLUMNS`). Numeric and boolean columns are used as numbers,
    string and categorical columns as LightGBM categoricals.

    Raises
    ------
    ValueError
        A remaining column has an unusable type (e.g. dates): exclude or convert it.
    """
    settings = settings or ChurnSettings()
    drop = set(settings.exclude) | set(IDENTIFIERS) | set(LABEL_COLUMNS)
    columns = [str(c) for c in frame.columns if c not in drop]
    bad = [c for c in columns if _kind(frame[c]) is None]
    if bad:
        raise ValueError(
            f"columns {bad} are neither numeric, boolean nor string/categorical; "
            "add them to churn.exclude or convert them"
        )
    return columns


def _kind(column: pd.Series) -> str | None:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        # object columns count as strings only if every non-missing value is one
        if pd.api.types.is_object_dtype(dtype) and not column.dropna().map(type).eq(str).all():
            return None
        return "category"
    return None


def design_matrix(
    frame: pd.DataFrame, features: Sequence[str], categories: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """New frame of the feature columns: floats, and categoricals with the training levels."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ValueError(f"churn model: missing feature columns {missing}")
    out: dict[str, pd.Series | np.ndarray] = {}
    for c in features:
        col = frame[c]
        if c in categories:
            values = [None if pd.isna(v) else str(v) for v in col.to_numpy(dtype=object)]
            out[c] = pd.Categorical(values, categories=list(categories[c]))
        else:
            if _kind(col) != "numeric":
                raise ValueError(f"churn model: feature column {c!r} must be numeric")
            out[c] = col.to_numpy(dtype=float, na_value=np.nan)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))


def categories_of(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, list[str]]:
    cats: dict[str, list[str]] = {}
    for c in features:
        if _kind(frame[c]) == "category":
            cats[c] = sorted(str(v) for v in frame[c].dropna().unique())
    return cats


def labels_of(frame: pd.DataFrame) -> np.ndarray:
    if TARGET not in frame.columns:
        raise ValueError(f"churn training table has no {TARGET!r} column")
    y = frame[TARGET]
    if y.isna().any():
        raise ValueError(f"{TARGET!r} has {int(y.isna().sum())} missing values")
    values = y.to_numpy(dtype=float)
    if not np.all((values == 0) | (values == 1)):
        raise ValueError(f"{TARGET!r} must be boolean (or 0/1)")
    return values


def cutoff_keys(frame: pd.DataFrame) -> pd.Series:
    if CUTOFF not in frame.columns:
        raise ValueError(f"churn training table has no {CUTOFF!r} column")
    try:
        keys = pd.to_datetime(frame[CUTOFF])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{CUTOFF!r} must hold dates: {exc}") from exc
    if keys.isna().any():
        raise ValueError(f"{CUTOFF!r} has {int(keys.isna().sum())} missing values")
    return keys


def split_by_cutoff(
    train: pd.DataFrame, validation_cutoffs: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame, list[pd.Timestamp], list[pd.Timestamp]]:
    """Time split: rows at the latest ``validation_cutoffs`` cutoffs vs the earlier ones.

    Returns
    -------
    tuple
        ``(train_rows, validation_rows, train_cutoffs, validation_cutoffs)``, cutoffs sorted.

    Raises
    ------
    ValueError
        No ``cutoff`` column, fewer than 2 distinct cutoffs, or no cutoff left for training.
    """
    keys = cutoff_keys(train)
    distinct = sorted(keys.unique())
    if len(distinct) < 2:
        raise ValueError(
            f"churn training needs rows at 2 or more distinct cutoffs, got {len(distinct)}: "
            "the split is by time (the latest cutoff validates, earlier cutoffs train); "
            "raise features.train_cutoffs"
        )
    if validation_cutoffs >= len(distinct):
        raise ValueError(
            f"churn.validation_cutoffs={validation_cutoffs} leaves no training cutoff "
            f"({len(distinct)} distinct cutoffs)"
        )
    valid_keys = distinct[-validation_cutoffs:]
    is_valid = keys.isin(valid_keys).to_numpy()
    return (
        train.loc[~is_valid],
        train.loc[is_valid],
        list(distinct[:-validation_cutoffs]),
        list(valid_keys),
    )
