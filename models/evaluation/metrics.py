"""Evaluation metrics: per-customer value predictions and churn probabilities.

Pure functions of arrays (numpy, pandas, scipy and scikit-learn only). Every function accepts any
1-D array-like (lists, numpy arrays, pandas Series; the index is ignored) and raises
``ValueError`` for empty input, mismatched lengths or non-finite values. Degenerate but valid
input gives ``NaN`` for the metrics it leaves undefined (e.g. ROC-AUC with a single class)
instead of raising.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

LOG_LOSS_EPS = 1e-15


def _vector(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains {int(np.sum(~np.isfinite(arr)))} non-finite values")
    return arr


def _pair(a: ArrayLike, b: ArrayLike, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _vector(a, name_a), _vector(b, name_b)
    if x.shape != y.shape:
        raise ValueError(f"{name_a} and {name_b} differ in length: {x.size} vs {y.size}")
    return x, y


def _binary(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated outcomes (0/1 floats) and probabilities (in [0, 1])."""
    yy, pp = _pair(y, p, "y", "p")
    if not np.all((yy == 0) | (yy == 1)):
        raise ValueError("y must be binary (0/1 or bool)")
    if np.any(pp < 0) or np.any(pp > 1):
        raise ValueError("p must be probabilities in [0, 1]")
    return yy, pp


def _check_bins(bins: int) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den != 0 else math.nan


# --------------------------------------------------------------------------------------------
# Value (regression) metrics
# --------------------------------------------------------------------------------------------


def gini(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Gini coefficient of ``actual`` ordered by ``predicted`` (unnormalised).

    ``(1/n) * sum_k (L_k - k/n)`` summed over ``k = 1..n``, where ``L_k`` is the share of total
    ``actual`` held by the ``k`` customers with the highest ``predicted``: positive when high
    predictions pick out high actuals. Tied predictions get their average rank, which is the
    expectation over random tie-breaking, so the result does not depend on row order.

    Parameters
    ----------
    actual, predicted : array-like of float
        Per-customer outcomes and scores, same length.

    Returns
    -------
    float
        ``NaN`` when ``actual`` sums to zero.
    """
    a, p = _pair(actual, predicted, "actual", "predicted")
    total = a.sum()
    if total == 0:
        return math.nan
    n = a.size
    # sum_k L_k equals sum_i a_i * rank_i / total with ascending ranks (1 = lowest score).
    rank = stats.rankdata(p, method="average")
    return float((np.dot(a, rank) / total - (n + 1) / 2.0) / n)


def normalised_gini(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Gini of ``actual`` ordered by ``predicted`` over the Gini of the perfect ordering.

    1 for a perfect ranking, -1 for the reversed ranking, about 0 for a random one. ``NaN``
    when the perfect ordering has no spread (all ``actual`` equal, or summing to zero).
    """
    best = gini(actual, actual)
    if not np.isfinite(best) or best == 0:
        return math.nan
    return float(gini(actual, predicted) / best)


def value_metrics(actual: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """Accuracy of per-customer value predictions (spend, purchases, CLV) against actuals.

    Parameters
    ----------
    actual, predicted : array-like of float
        Per-customer outcomes and predictions, same length.

    Returns
    -------
    dict
        ``mae``, ``rmse``; ``spearman`` rank correlation (``NaN`` if either side is constant);
        ``normalised_gini`` (see :func:`normalised_gini`); ``total_actual``,
        ``total_predicted`` and ``aggregate_error_pct`` = ``100 * (total_predicted -
        total_actual) / total_actual`` (``NaN`` if ``total_actual`` is 0); ``n``.

    Raises
    ------
    ValueError
        Empty, mismatched or non-finite input.
    """
    a, p = _pair(actual, predicted, "actual", "predicted")
    err = p - a
    if np.ptp(a) == 0 or np.ptp(p) == 0:
        spearman = math.nan
    else:
        spearman = float(stats.spearmanr(a, p).statistic)
    total_a, total_p = float(a.sum()), float(p.sum())
    return {
        "n": float(a.size),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "spearman": spearman,
        "normalised_gini": normalised_gini(a, p),
        "total_actual": total_a,
        "total_predicted": total_p,
        "aggregate_error_pct": _ratio(100.0 * (total_p - total_a), total_a),
    }


# --------------------------------------------------------------------------------------------
# Churn (classification) metrics
# --------------------------------------------------------------------------------------------


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-width bin of each probability: ``[0, 1/bins), ..., [(bins-1)/bins, 1]``."""
    return np.minimum((p * bins).astype(int), bins - 1)


def expected_calibration_error(y: ArrayLike, p: ArrayLike, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width probability bins.

    ``sum_b (n_b / n) * |mean(y in b) - mean(p in b)|``; empty bins contribute nothing.
    """
    _check_bins(bins)
    yy, pp = _binary(y, p)
    idx = _bin_index(pp, bins)
    count = np.bincount(idx, minlength=bins).astype(float)
    gap = np.abs(np.bincount(idx, yy, minlength=bins) - np.bincount(idx, pp, minlength=bins))
    # n_b/n * |sum_y/n_b - sum_p/n_b| = |sum_y - sum_p| / n
    return float(gap.sum() / count.sum())


def top_fraction_lift(y: ArrayLike, p: ArrayLike, fraction: float = 0.1) -> float:
    """Outcome rate among the ``fraction`` highest scores divided by the overall rate.

    The top group has ``ceil(fraction * n)`` rows. Scores tied at the boundary enter
    fractionally (their mean outcome), the expectation over random tie-breaking. ``NaN`` when
    the base rate is 0.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    yy, pp = _binary(y, p)
    base = yy.mean()
    if base == 0:
        return math.nan
    k = math.ceil(fraction * yy.size)
    threshold = np.sort(pp)[::-1][k - 1]
    above = pp > threshold
    tied = pp == threshold
    positives = yy[above].sum() + (k - above.sum()) * yy[tied].mean()
    return float(positives / k / base)


def log_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each row's log loss, probabilities clipped to ``[1e-15, 1 - 1e-15]``."""
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))


def churn_metrics(
    y: ArrayLike, p: ArrayLike, bins: int = 10, top_fraction: float = 0.1
) -> dict[str, float]:
    """Discrimination and calibration of churn probabilities against observed churn.

    Parameters
    ----------
    y : array-like of bool or {0, 1}
        Observed outcome (1 = churned).
    p : array-like of float
        Predicted probability of ``y = 1``, in ``[0, 1]``.
    bins : int, default 10
        Equal-width bins for the expected calibration error.
    top_fraction : float, default 0.1
        Share of highest scores for ``top_decile_lift``.

    Returns
    -------
    dict
        ``roc_auc``; ``pr_auc`` (average precision); ``brier``; ``log_loss`` (probabilities
        clipped to ``[1e-15, 1 - 1e-15]``); ``ece``; ``calibration_in_the_large`` (mean
        predicted minus observed rate); ``top_decile_lift`` (outcome rate in the top
        ``top_fraction`` of scores over ``base_rate``); ``base_rate``; ``n``. ``roc_auc`` and
        ``pr_auc`` are ``NaN`` when ``y`` has a single class; ``top_decile_lift`` is ``NaN``
        when there is no positive.

    Raises
    ------
    ValueError
        Empty, mismatched, non-binary ``y`` or ``p`` outside ``[0, 1]``.
    """
    _check_bins(bins)
    yy, pp = _binary(y, p)
    two_classes = 0 < yy.sum() < yy.size
    log_loss = np.mean(log_losses(yy, pp))
    return {
        "n": float(yy.size),
        "roc_auc": float(roc_auc_score(yy, pp)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(yy, pp)) if two_classes else math.nan,
        "brier": float(np.mean((pp - yy) ** 2)),
        "log_loss": float(log_loss),
        "ece": expected_calibration_error(yy, pp, bins),
        "calibration_in_the_large": float(pp.mean() - yy.mean()),
        "top_decile_lift": top_fraction_lift(yy, pp, top_fraction),
        "base_rate": float(yy.mean()),
    }


def roc_curve_points(y: ArrayLike, p: ArrayLike) -> pd.DataFrame:
    """Points of the ROC curve, for plotting.

    Returns
    -------
    pandas.DataFrame
        Columns ``threshold``, ``fpr``, ``tpr``, from ``(0, 0)`` (threshold ``inf``) to
        ``(1, 1)``; collinear points are dropped. With a single class the undefined rate is
        ``NaN``.
    """
    yy, pp = _binary(y, p)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thr = roc_curve(yy, pp)
    return pd.DataFrame({"threshold": thr, "fpr": fpr, "tpr": tpr})


def calibration_curve_points(y: ArrayLike, p: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data over ``bins`` equal-width probability bins.

    Returns
    -------
    pandas.DataFrame
        One row per bin (empty bins included): ``bin``, ``lower``, ``upper``, ``count``,
        ``mean_predicted`` and ``observed_rate`` (both ``NaN`` for an empty bin).
    """
    _check_bins(bins)
    yy, pp = _binary(y, p)
    idx = _bin_index(pp, bins)
    count = np.bincount(idx, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, pp, minlength=bins) / count
        rate = np.bincount(idx, yy, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame(
        {
            "bin": np.arange(bins),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count.astype(np.int64),
            "mean_predicted": np.where(count > 0, mean_p, np.nan),
            "observed_rate": np.where(count > 0, rate, np.nan),
        }
    )
