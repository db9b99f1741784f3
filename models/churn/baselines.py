"""The churn baselines: what a churn model must beat to be worth its complexity.

Each baseline is a score per customer from what is known at the cutoff. Those that are
probabilities are also judged on calibration (Brier, ECE); P(alive) is reported but never the
bar, since BG/NBD holds every one-time buyer alive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Baseline:
    name: str
    probability: bool  # a calibrated probability of churn: Brier and ECE apply
    rival: bool  # the churn model is measured against it


BASELINES: tuple[Baseline, ...] = (
    Baseline("clv_p_no_purchase", probability=True, rival=True),
    Baseline("clv_expected_purchases", probability=False, rival=True),
    Baseline("recency_days", probability=False, rival=True),
    Baseline("clv_not_alive", probability=True, rival=False),
    Baseline("base_rate", probability=True, rival=True),
)


def baseline_scores(
    table: pd.DataFrame, in_horizon: pd.DataFrame, base_rate: float
) -> dict[str, np.ndarray]:
    """Every baseline's churn score for the customers of ``table``.

    ``in_horizon`` holds the CLV model's predictions over the churn horizon for the same rows;
    ``base_rate`` is the churn rate of the training rows.
    """
    recency = table["recency_days"].to_numpy(dtype=float)
    scores = {
        "clv_p_no_purchase": in_horizon["p_no_purchase"].to_numpy(),
        "clv_expected_purchases": np.exp(-in_horizon["expected_purchases"].to_numpy()),
        "recency_days": recency / recency.max(),
        "clv_not_alive": 1.0 - in_horizon["p_alive"].to_numpy(),
        "base_rate": np.full(len(table), base_rate),
    }
    return {b.name: scores[b.name] for b in BASELINES}


def is_probability(name: str) -> bool:
    """Whether the score ``name`` (the model or a baseline) is a probability of churn."""
    return name == "churn_model" or any(b.name == name and b.probability for b in BASELINES)


def rivals() -> tuple[str, ...]:
    return tuple(b.name for b in BASELINES if b.rival)
