"""Holdout evaluation of the CLV models: tracking curve and calibration-vs-holdout table."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd

from models.metrics import churn_metrics


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


PROBABILITIES = ("churn_model", "clv_p_no_purchase", "clv_p_alive", "base_rate")


def churn_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Churn metrics per score; calibration metrics only for scores that are probabilities."""
    table = {}
    for name, p in scores.items():
        metrics = churn_metrics(y, np.clip(p, 0.0, 1.0))
        if name not in PROBABILITIES:
            metrics = {k: v for k, v in metrics.items() if k not in ("brier", "log_loss", "ece")}
        table[name] = {k: (None if not np.isfinite(v) else float(v)) for k, v in metrics.items()}
    return table


def beats_strongest_baseline(churn: dict[str, dict[str, float]]) -> dict[str, dict]:
    """The churn model against the strongest baseline on ROC-AUC and on Brier score.

    P(alive) is reported but never the bar: it holds every one-time buyer alive.
    """
    rivals = {k: v for k, v in churn.items() if k not in ("churn_model", "clv_p_alive")}
    out = {}
    for metric, higher in (("roc_auc", True), ("brier", False)):
        values = {k: v[metric] for k, v in rivals.items() if v.get(metric) is not None}
        best = (max if higher else min)(values, key=values.get)
        ours = churn["churn_model"][metric]
        out[metric] = {
            "model": ours,
            "strongest_baseline": best,
            "baseline": values[best],
            "beats": bool(ours > values[best] if higher else ours < values[best]),
        }
    return out
