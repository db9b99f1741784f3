"""The churn model's settings (config group ``churn``) and the columns it never learns from."""

from __future__ import annotations

from typing import Any, Literal

from models.columns import IDENTIFIERS, LABEL_COLUMNS
from models.settings import (
    AtLeastOne,
    Column,
    Count,
    Flag,
    NonNegative,
    PositiveNumber,
    Seed,
    integer,
    listing,
    model_rules,
    number,
    settings,
)

# the purchase model's input for choosing its regularity (``gap_mean``/``gap_std`` carry the
# customer's rhythm for the churn model)
DEFAULT_EXCLUDE: tuple[str, ...] = IDENTIFIERS + LABEL_COLUMNS + ("log_gap_sum",)

Calibration = Literal["isotonic", "platt"]


@settings
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
        Columns never used as features. The identifiers (:data:`IDENTIFIERS`) and the
        label-side columns (:data:`LABEL_COLUMNS`) are excluded even when not listed.
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

    num_leaves: integer(ge=2) = 7
    learning_rate: PositiveNumber = 0.05
    n_estimators: AtLeastOne = 2000
    min_child_samples: AtLeastOne = 500
    feature_fraction: number(gt=0, le=1) = 0.8
    bagging_fraction: number(gt=0, le=1) = 0.8
    bagging_freq: Count = 1  # 0: no bagging
    lambda_l2: NonNegative = 1.0
    max_depth: integer(ge=-1, but_not=0) = -1  # -1: no limit
    early_stopping_rounds: AtLeastOne = 100
    early_stopping_min_delta: NonNegative = 1e-4
    calibration: Calibration = "platt"
    calibration_prior: Column | None = None  # platt only
    selection_margin: NonNegative = 0.001
    shift_to_target: Flag = True
    validation_cutoffs: AtLeastOne = 1
    exclude: listing(Column) = DEFAULT_EXCLUDE
    seed: Seed = 20260101
    num_threads: AtLeastOne = 2
    max_rows: integer(ge=2) | None = None  # None: every row

    @model_rules
    def _prior_needs_platt(self) -> list[str]:
        if self.calibration_prior is None or self.calibration == "platt":
            return []
        return [
            f"churn.calibration_prior is {self.calibration_prior!r}; expected null with "
            f"churn.calibration {self.calibration!r} (only platt takes a prior)"
        ]

    @property
    def shifts(self) -> bool:
        """Whether a trained model is shifted to a churn level (:func:`shifted_to`): a
        calibration prior (which needs Platt calibration) and ``shift_to_target``."""
        return self.calibration_prior is not None and self.shift_to_target

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
