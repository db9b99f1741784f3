"""How much of a churn score's margin over a baseline, or of a purchase forecast's error, is
sampling noise.

A paired bootstrap over customers: each replicate weighs every customer by a Poisson(1) count
(seeded), the same weights for every score, so a margin's interval reflects how the two scores
differ on the same customers. On a few hundred customers a margin of 0.003 ROC-AUC is noise; on
tens of thousands it is not, and a backtest verdict should say which.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from models.evaluation.metrics import _bin_index

REPLICATES = 200
LEVEL = 0.95
MARGINS = {"roc_auc": True, "brier": False, "ece": False}  # metric -> higher is better
ECE_BINS = 10  # as churn_metrics


class _Score:
    """A score prepared for weighted metrics: its distinct values ranked, its ECE bins."""

    def __init__(self, p: np.ndarray) -> None:
        self.p = p
        self.groups = np.unique(p, return_inverse=True)[1]
        self.n_groups = int(self.groups.max()) + 1
        self.bins = _bin_index(np.clip(p, 0.0, 1.0), ECE_BINS)

    def metrics(self, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
        """ROC-AUC, Brier, ECE and calibration in the large with case weights ``w``."""
        p, total = self.p, w.sum()
        pos = np.bincount(self.groups, w * y, minlength=self.n_groups)
        neg = np.bincount(self.groups, w * (1 - y), minlength=self.n_groups)
        below = np.cumsum(neg) - neg  # weight of the negatives scored lower; ties count half
        gap = np.bincount(self.bins, w * (y - p), minlength=ECE_BINS)
        return {
            "roc_auc": float(np.sum(pos * (below + 0.5 * neg)) / (pos.sum() * neg.sum())),
            "brier": float(np.sum(w * (p - y) ** 2) / total),
            "ece": float(np.abs(gap).sum() / total),
            "calibration_in_the_large": float(np.sum(w * (p - y)) / total),
        }


def _interval(values: list[float], level: float) -> dict[str, float]:
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return {"low": float(low), "high": float(high)}


def churn_intervals(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    baselines: Iterable[str],
    probabilities: Iterable[str],
    model: str = "churn_model",
    replicates: int = REPLICATES,
    level: float = LEVEL,
    seed: int = 0,
) -> dict:
    """Bootstrap intervals of the model's margin over each baseline and of its calibration in
    the large.

    ``margins[metric][baseline]`` holds the interval of the margin, positive when the model is
    ahead (higher ROC-AUC, lower Brier or ECE); Brier and ECE only against ``probabilities``.
    ``calibration_in_the_large`` is the interval of the model's mean predicted minus observed.
    Memory stays linear in the customers: one replicate's weights at a time.
    """
    y = np.asarray(y, dtype=float)
    probabilities = set(probabilities)
    names = [model, *(b for b in baselines if b != model)]
    prepared = {name: _Score(np.asarray(scores[name], dtype=float)) for name in names}
    rng = np.random.default_rng(seed)
    margins = {
        (metric, name): []
        for metric in MARGINS
        for name in names[1:]
        if metric == "roc_auc" or name in probabilities
    }
    citl, kept = [], 0
    for _ in range(replicates):
        w = rng.poisson(1.0, len(y)).astype(float)
        if not 0 < w @ y < w.sum():  # a replicate needs both classes
            continue
        kept += 1
        values = {name: score.metrics(y, w) for name, score in prepared.items()}
        citl.append(values[model]["calibration_in_the_large"])
        for metric, name in margins:
            margin = values[model][metric] - values[name][metric]
            margins[metric, name].append(margin if MARGINS[metric] else -margin)
    out: dict = {metric: {} for metric in MARGINS}
    for (metric, name), values in margins.items():
        out[metric][name] = _interval(values, level)
    return {
        "replicates": kept,
        "level": level,
        "seed": seed,
        "margins": out,
        "calibration_in_the_large": _interval(citl, level),
    }


def mae_intervals(
    actual: np.ndarray,
    predicted: np.ndarray,
    reference: np.ndarray,
    replicates: int = REPLICATES,
    level: float = LEVEL,
    seed: int = 0,
) -> dict:
    """Bootstrap intervals (the same Poisson(1) weights) of the MAE of ``predicted`` and of its
    difference from the MAE of ``reference``, both against ``actual``: ``mae`` and
    ``difference`` (negative: ``predicted`` is the closer)."""
    model = np.abs(np.asarray(predicted, float) - actual)
    gap = model - np.abs(np.asarray(reference, float) - actual)
    rng = np.random.default_rng(seed)
    maes, differences = [], []
    for _ in range(replicates):
        w = rng.poisson(1.0, len(model)).astype(float)
        total = max(w.sum(), 1.0)
        maes.append(float(w @ model / total))
        differences.append(float(w @ gap / total))
    return {"mae": _interval(maes, level), "difference": _interval(differences, level)}
