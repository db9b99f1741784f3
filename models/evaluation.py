"""Holdout evaluation of the CLV models: tracking curve and calibration-vs-holdout table."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd


def expected_cumulative_repeats(
    module: ModuleType, params: dict[str, float], first_offsets: np.ndarray, times: np.ndarray
) -> np.ndarray:
    """Expected cumulative repeat purchases of a cohort at each of ``times``.

    ``first_offsets`` are the customers' first purchase times and ``times`` the evaluation
    times, both measured from the same origin in model units: ``sum_i E[X(t - s_i)]``.
    Customers with the same offset are evaluated once.
    """
    offsets, counts = np.unique(np.asarray(first_offsets, dtype=float), return_counts=True)
    out = np.empty(len(times))
    for k, t in enumerate(np.asarray(times, dtype=float)):
        age = np.clip(t - offsets, 0.0, None)
        out[k] = float(np.sum(counts * module.expected_purchases(params, age)))
    return out


def calibration_vs_holdout(
    frequency: pd.Series, actual: pd.Series, predicted: pd.Series, max_frequency: int = 7
) -> pd.DataFrame:
    """Mean actual and predicted holdout purchases by calibration frequency (top bucket open)."""
    bucket = frequency.clip(upper=max_frequency).astype(int)
    frame = pd.DataFrame({"frequency": bucket, "actual": actual, "predicted": predicted})
    table = frame.groupby("frequency").agg(
        customers=("actual", "size"), actual=("actual", "mean"), predicted=("predicted", "mean")
    )
    return table.reset_index()
