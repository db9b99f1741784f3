"""The churn model's settings (config group ``churn``) and the columns it never learns from."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

TARGET = "churned"
CUTOFF = "cutoff"
IDENTIFIERS: tuple[str, ...] = ("customer_id", CUTOFF)
# Outcomes measured after the cutoff: never features, whatever ``exclude`` says.
LABEL_COLUMNS: tuple[str, ...] = (
    TARGET,
    "next_purchases",
    "next_spend",
    "holdout_purchases",
    "holdout_spend",
)
DEFAULT_EXCLUDE: tuple[str, ...] = IDENTIFIERS + LABEL_COLUMNS

Calibration = Literal["isotonic", "platt"]


@dataclass(frozen=True)
class ChurnSettings:
    """Hyperparameters of the churn model (config group ``churn``).

    Parameters
    ----------
    num_leaves, max_depth, min_child_samples : int
        Tree size: leaves per tree, depth limit (-1 = none) and minimum rows per leaf.
    learning_rate : float
        Shrinkage per boosting round.
    n_estimators : int
        Maximum number of boosting rounds; early stopping usually ends sooner.
    feature_fraction, bagging_fraction : float
        Share of features per tree and of rows per bagging round, in (0, 1].
    bagging_freq : int
        Re-sample rows every this many rounds (0 = no bagging).
    lambda_l2 : float
        L2 penalty on leaf values.
    early_stopping_rounds, early_stopping_min_delta : int, float
        Stop when the validation log-loss has not improved by at least ``min_delta`` for this
        many rounds: without a minimum, improvements of a millionth kept boosting to the cap.
    calibration : {"isotonic", "platt"}
        Calibrator fit on the validation predictions: isotonic regression (clipped outside the
        fitted range) or Platt scaling (a logistic regression on the logit of the raw score).
    calibration_prior : str or None
        Platt only: a column holding a model-based churn probability (the CLV model's
        P(no purchase in the horizon), ``btyd_p_no_purchase``) whose logit enters the calibrator
        beside the booster's. Trees cannot extrapolate to customers older than any training
        cutoff; the parametric model does, and the calibrator learns how much to trust each.
    selection_margin : float
        With a calibration prior, four candidates are scored on the validation cutoff (see
        :func:`select_candidate`): the CLV model's P(no purchase) as it is, the same
        recalibrated, its stack with the booster, and the booster. A later candidate must beat
        an earlier one by this much cross-fitted log loss (nats) to be chosen.
    shift_to_target : bool
        Shift the calibrated logit so that the mean prediction over the customers scored equals
        the purchase model's mean P(no purchase) there, or the level of the level model that
        erred least at the validation cutoff (:func:`shifted_to`, :mod:`models.churn.level`).
    validation_cutoffs : int
        How many of the most recent cutoffs form the validation set.
    exclude : tuple of str
        Columns never used as features. ``cutoff`` and the label-side columns
        (:data:`LABEL_COLUMNS`) are excluded even when not listed.
    seed : int
        Seed of every random choice in LightGBM (bagging, feature sampling).
    num_threads : int
        LightGBM threads. Keep it at or below the free cores: OpenMP threads that compete with
        other busy processes slow training down by an order of magnitude.
    max_rows : int or None
        At most this many rows, drawn at random (seeded), for fitting and again for
        validation; ``None`` uses every row. A few hundred thousand rows pin down trees of a
        few leaves as well as millions do, at a fraction of the training time.

    Notes
    -----
    Defaults chosen on CDNOW (train on the stacked cutoffs 1997-01-03 .. 1997-03-04, validate
    on 1997-04-03, score at 1997-09-30): validation AUC hardly moves across tree sizes
    (0.688-0.691), while small, strongly regularised trees (7 leaves, at least 500 rows per
    leaf) did as well as or better than larger ones on the later cutoff (ROC-AUC 0.765-0.767
    vs 0.757 for 31 leaves / 50 rows), which matters because customers are older at scoring
    time than at any training cutoff. A learning rate of 0.05 trains in a few seconds with the
    same accuracy as 0.03. Platt scaling is the default calibrator: it is strictly monotone, so
    it keeps the booster's ranking (isotonic steps create ties and cost about 0.0015 AUC on
    CDNOW), and with two parameters it is steadier than isotonic's in-sample perfect fit; on the
    1997-09-30 cutoff it gave the lower Brier score and ECE of the two.
    """

    num_leaves: int = 7
    learning_rate: float = 0.05
    n_estimators: int = 2000
    min_child_samples: int = 500
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_depth: int = -1
    early_stopping_rounds: int = 100
    early_stopping_min_delta: float = 1e-4
    calibration: Calibration = "platt"
    calibration_prior: str | None = None
    selection_margin: float = 0.001
    shift_to_target: bool = True
    validation_cutoffs: int = 1
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    seed: int = 20260101
    num_threads: int = 2
    max_rows: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.exclude, tuple):
            if isinstance(self.exclude, str) or not isinstance(self.exclude, Sequence):
                _bad("exclude", self.exclude, "must be a list of column names")
            object.__setattr__(self, "exclude", tuple(self.exclude))
        if not all(isinstance(c, str) for c in self.exclude):
            _bad("exclude", self.exclude, "must be a list of column names")
        _int(self, "num_leaves", 2)
        _int(self, "n_estimators", 1)
        _int(self, "min_child_samples", 1)
        _int(self, "bagging_freq", 0)
        _int(self, "early_stopping_rounds", 1)
        _int(self, "validation_cutoffs", 1)
        _int(self, "seed", 0)
        _int(self, "num_threads", 1)
        _int(self, "max_depth", -1)
        if self.max_rows is not None:
            _int(self, "max_rows", 2)
        if self.max_depth == 0:
            _bad("max_depth", 0, "must be -1 (no limit) or a positive depth")
        _real(self, "learning_rate", 0.0, math.inf, low_open=True)
        _real(self, "feature_fraction", 0.0, 1.0, low_open=True)
        _real(self, "bagging_fraction", 0.0, 1.0, low_open=True)
        _real(self, "lambda_l2", 0.0, math.inf, low_open=False)
        _real(self, "selection_margin", 0.0, math.inf, low_open=False)
        _real(self, "early_stopping_min_delta", 0.0, math.inf, low_open=False)
        if self.calibration not in ("isotonic", "platt"):
            _bad("calibration", self.calibration, "must be 'isotonic' or 'platt'")
        if self.calibration_prior is not None and self.calibration != "platt":
            _bad("calibration_prior", self.calibration_prior, "needs churn.calibration=platt")

    @property
    def shifts(self) -> bool:
        """Whether a trained model is shifted to a churn level (:func:`shifted_to`): a
        calibration prior (which needs Platt calibration) and ``shift_to_target``."""
        return self.calibration_prior is not None and self.shift_to_target

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ChurnSettings:
        """Settings from a config mapping (e.g. ``params["churn"]``); unknown keys raise.

        Raises
        ------
        ValueError
            An unknown key or an invalid value, naming ``churn.<key>``.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown churn setting(s) {', '.join(f'churn.{k}' for k in unknown)}; "
                f"expected some of {sorted(known)}"
            )
        return cls(**dict(values))

    def lightgbm_params(self) -> dict[str, Any]:
        """LightGBM parameters: binary objective, deterministic (seeded, row-wise), silent."""
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_depth": self.max_depth,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


def _bad(key: str, value: object, why: str) -> None:
    raise ValueError(f"churn.{key} {why}, got {value!r}")


def _int(settings: ChurnSettings, key: str, low: int) -> None:
    value = getattr(settings, key)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        _bad(key, value, "must be an integer")
    if value < low:
        _bad(key, value, f"must be >= {low}")


def _real(settings: ChurnSettings, key: str, low: float, high: float, low_open: bool) -> None:
    value = getattr(settings, key)
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        _bad(key, value, "must be a number")
    if not math.isfinite(value):
        _bad(key, value, "must be finite")
    if (value <= low if low_open else value < low) or value > high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{']' if high < math.inf else ')'}"
        _bad(key, value, f"must be in {interval}")
