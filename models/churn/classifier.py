"""LightGBM churn classifier trained on stacked past cutoffs, with a calibrated output.

The training table has one row per customer and cutoff: behavioural features at the cutoff, the
``cutoff`` itself and the label ``churned`` (no purchase in the horizon after the cutoff). The
split is by time, never random: rows at the most recent ``validation_cutoffs`` cutoffs validate
(early stopping and the probability calibrator), rows at earlier cutoffs train the booster.

Everything here is a pure function of frames and settings: no files, environment or tracking.
Use :func:`to_artifacts` / :func:`from_artifacts` to persist a model elsewhere.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

# OpenMP threads that spin while waiting turn LightGBM 4-5x slower whenever another process holds
# a core (100 rounds on 300,000 rows: 48-53 s spinning, 8-12 s sleeping, on 2 busy cores);
# sleeping costs nothing on an idle machine. Set before the OpenMP runtime loads; a user's
# own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightgbm as lgb  # noqa: E402
import numpy as np
import pandas as pd
from scipy import optimize, special
from sklearn.isotonic import IsotonicRegression

from models.evaluation.metrics import churn_metrics, log_losses

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
ARTIFACT_FORMAT = "cvm.churn/1"
_PROB_EPS = 1e-6

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


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------


def feature_columns(frame: pd.DataFrame, settings: ChurnSettings | None = None) -> list[str]:
    """Columns of ``frame`` used as features, in frame order.

    Every column except ``settings.exclude``, ``cutoff`` and the label-side columns
    (:data:`LABEL_COLUMNS`). Numeric and boolean columns are used as numbers, string and
    categorical columns as LightGBM categoricals.

    Raises
    ------
    ValueError
        A remaining column has an unusable type (e.g. dates): exclude or convert it.
    """
    settings = settings or ChurnSettings()
    drop = set(settings.exclude) | {CUTOFF} | set(LABEL_COLUMNS)
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


def _design(
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


def _categories(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, list[str]]:
    cats: dict[str, list[str]] = {}
    for c in features:
        if _kind(frame[c]) == "category":
            cats[c] = sorted(str(v) for v in frame[c].dropna().unique())
    return cats


def _labels(frame: pd.DataFrame) -> np.ndarray:
    if TARGET not in frame.columns:
        raise ValueError(f"churn training table has no {TARGET!r} column")
    y = frame[TARGET]
    if y.isna().any():
        raise ValueError(f"{TARGET!r} has {int(y.isna().sum())} missing values")
    values = y.to_numpy(dtype=float)
    if not np.all((values == 0) | (values == 1)):
        raise ValueError(f"{TARGET!r} must be boolean (or 0/1)")
    return values


def _cutoff_keys(frame: pd.DataFrame) -> pd.Series:
    if CUTOFF not in frame.columns:
        raise ValueError(f"churn training table has no {CUTOFF!r} column")
    try:
        keys = pd.to_datetime(frame[CUTOFF])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{CUTOFF!r} must hold dates: {exc}") from exc
    if keys.isna().any():
        raise ValueError(f"{CUTOFF!r} has {int(keys.isna().sum())} missing values")
    return keys


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


def _logit(p: np.ndarray) -> np.ndarray:
    return special.logit(np.clip(p, _PROB_EPS, 1 - _PROB_EPS))


# ties are broken in this order: the candidates with the purchase model's probability first,
# since it extrapolates with age where trees cannot, and the validation customers are younger;
# the purchase model's probability as it is before any recalibration of it
CANDIDATES = ("clv_as_is", "clv", "stack", "booster")
FOLDS = 5


def _fit_calibrator(
    kind: str,
    raw: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray | None = None,
    candidate: str = "stack",
) -> dict[str, Any]:
    """Isotonic regression on the raw score, or Platt scaling: a logistic regression of ``y``
    on the logits of the candidate's inputs (``booster``: the raw score; ``clv``: the prior;
    ``stack``: both) with an intercept. ``clv_as_is`` fits nothing: the prior itself."""
    if kind == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw, y)
        return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    if prior is None:
        candidate = "booster"
    if candidate == "clv_as_is":
        return {"a": 0.0, "c": 1.0, "b": 0.0, "candidate": candidate}
    columns = {"booster": [_logit(raw)], "clv": [_logit(prior)] if prior is not None else []}
    columns["stack"] = columns["booster"] + columns["clv"]
    z = np.column_stack(columns[candidate])
    design = np.column_stack([z, np.ones(len(z))])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ theta
        # log(1 + exp(eta)) - y * eta, and its gradient
        value = np.mean(np.logaddexp(0.0, eta) - y * eta)
        resid = special.expit(eta) - y
        return float(value), design.T @ resid / len(y)

    start = np.zeros(design.shape[1])
    start[0] = 1.0
    res = optimize.minimize(loss, start, jac=True, method="BFGS")
    coef = {"booster": ["a"], "clv": ["c"], "stack": ["a", "c"]}[candidate]
    out = {"a": 0.0} | dict(zip(coef, map(float, res.x[:-1]), strict=True))
    return out | {"b": float(res.x[-1]), "candidate": candidate}


def select_candidate(
    raw: np.ndarray,
    prior: np.ndarray,
    y: np.ndarray,
    margin: float,
    seed: int,
    shifted: bool = False,
) -> dict[str, Any]:
    """Which calibrated score to publish, chosen on the validation rows alone.

    Each candidate's calibrator is fit on four fifths of the validation rows and scored (log
    loss) on the fifth left out, five times over; the rule: the lowest cross-fitted log loss,
    except that a candidate earlier in :data:`CANDIDATES` within ``margin`` of the best is
    preferred (``clv_as_is``, ``clv``, then ``stack``: the validation customers are younger
    than those scored, and only the purchase model extrapolates with age).

    ``shifted``: each candidate is judged as it will be published, its level set by
    :func:`shifted_to`: the held-out predictions are shifted to the mean of the prior over
    them. Only their shape is then compared; the level a calibrator learns on the validation
    window (another season, younger customers) counts for nothing it will not be used for.
    """
    folds = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    scores = {}
    for candidate in CANDIDATES:
        held_out = np.empty(len(y))
        for k in range(FOLDS):
            fit, out = folds != k, folds == k
            params = _fit_calibrator("platt", raw[fit], y[fit], prior[fit], candidate)
            held_out[out] = _apply_calibrator("platt", params, raw[out], prior[out])
            if shifted:
                held_out[out] = at_mean(held_out[out], prior[out].mean())
        scores[candidate] = float(np.mean(log_losses(y, held_out)))
    best = min(scores.values())
    choice = next(c for c in CANDIDATES if scores[c] <= best + margin)
    reason = f"{choice}: cross-fitted validation log loss {scores[choice]:.5f}, " + (
        "the lowest"
        if scores[choice] == best
        else f"within {margin} of the lowest ({best:.5f}) and ahead in the preference order"
    )
    judged = ", each candidate shifted to the purchase model's mean, as published"
    rule = (
        f"lowest {FOLDS}-fold cross-fitted log loss on the validation cutoff"
        f"{judged if shifted else ''}; within churn.selection_margin={margin} of the best, "
        "clv_as_is is preferred, then clv, then stack, then booster"
    )
    return {"choice": choice, "scores": scores, "rule": rule, "reason": reason}


def _apply_calibrator(
    kind: str, params: Mapping[str, Any], raw: np.ndarray, prior: np.ndarray | None = None
) -> np.ndarray:
    if kind == "isotonic":
        x = np.asarray(params["x"], dtype=float)
        y = np.asarray(params["y"], dtype=float)
        # IsotonicRegression.predict: linear interpolation, clipped outside [x[0], x[-1]]
        return np.interp(raw, x, y)
    eta = params["a"] * _logit(raw) + params["b"] + params.get("shift", 0.0)
    if "c" in params and params["c"] != 0:
        eta = eta + params["c"] * _logit(prior)
    return special.expit(eta)


def shifted_to(
    model: ChurnModel, target: pd.DataFrame, level: Mapping[str, Any] | None = None
) -> ChurnModel:
    """``model`` with its calibrated logit shifted for the customers it will score.

    The calibrator is fit on the validation cutoff, whose customers are younger than those at
    the cutoff the model scores, and churn rises with age. The purchase model extrapolates
    with age where trees cannot: the shift makes the mean predicted churn of ``target`` (the
    features at the scoring cutoff, no outcome) equal the purchase model's mean P(no purchase)
    there, or ``level["mean"]`` when given (:func:`models.churn.level.churn_level`, recorded in
    ``selection["level"]``; with a ``shape``, its fit at the target's cutoff becomes the
    model's prior). Platt calibration with a prior only; otherwise ``model`` is returned
    unchanged.
    """
    if not model.settings.shifts:
        return model
    if level is not None:  # the shape's fit at the target's cutoff, if any
        model = replace(model, prior_shape=level["shape"]["target"])
    prior = _prior(target, model.settings, model.prior_shape)
    params = {k: v for k, v in model.calibrator.items() if k != "shift"}
    logit = special.logit(_apply_calibrator("platt", params, model.predict_raw(target), prior))
    goal = float(prior.mean() if level is None else level["mean"])
    shift = shift_to_mean(logit, goal)
    selection = model.selection | {"shift": shift, "target_mean": goal}
    if level is not None:
        selection["level"] = dict(level)
    return replace(model, calibrator=params | {"shift": shift}, selection=selection)


def at_mean(p: np.ndarray, goal: float) -> np.ndarray:
    """``p`` shifted on the logit scale so that its mean is ``goal``."""
    logit = _logit(p)
    return special.expit(logit + shift_to_mean(logit, goal))


def shift_to_mean(logit: np.ndarray, goal: float) -> float:
    """The constant that, added to ``logit``, makes the mean probability ``goal``."""
    goal = float(np.clip(goal, _PROB_EPS, 1 - _PROB_EPS))
    return float(optimize.brentq(lambda d: special.expit(logit + d).mean() - goal, -20.0, 20.0))


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChurnModel:
    """A trained churn booster, its calibrator and what it was trained on.

    Attributes
    ----------
    booster : lightgbm.Booster
        Trees up to ``best_iteration`` only.
    features : tuple of str
        Feature columns, in training order.
    categories : dict
        Levels of each categorical feature seen in training (unseen levels score as missing).
    calibration : {"isotonic", "platt"}
    calibrator : dict
        Isotonic: ``x``/``y`` thresholds (linear interpolation, clipped); Platt: ``a``, ``b``
        with ``p = expit(a * logit(raw) + b)``.
    best_iteration : int
        Boosting rounds kept (from early stopping; ``selection["early_stopping"]`` says how).
    train_cutoffs, validation_cutoffs : tuple of str
        ISO dates of the cutoffs whose rows trained the booster / validated it.
    n_train, n_validation : int
        Row counts of the two sets.
    validation_metrics : dict
        ``{"raw": {...}, "calibrated": {...}}`` with ``roc_auc``, ``brier``, ``log_loss``,
        ``ece`` and ``base_rate`` on the validation rows (``raw``: the judging booster's scores
        when there is one; the calibrated figures are in-sample for the calibrator).
    settings : ChurnSettings
    selection : dict
        The candidate published (``choice``: ``clv_as_is``, ``clv``, ``stack`` or
        ``booster``), the rule, the candidates' cross-fitted validation scores and the reason
        (see :func:`select_candidate`).
    prior_shape : dict or None
        A level model whose P(no purchase) is the calibration prior in place of the
        ``calibration_prior`` column (:func:`models.churn.level.shape_p_no_purchase`).
    """

    booster: lgb.Booster
    features: tuple[str, ...]
    categories: dict[str, list[str]]
    calibration: Calibration
    calibrator: dict[str, Any]
    best_iteration: int
    train_cutoffs: tuple[str, ...]
    validation_cutoffs: tuple[str, ...]
    n_train: int
    n_validation: int
    validation_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: ChurnSettings = field(default_factory=ChurnSettings)
    selection: dict[str, Any] = field(default_factory=dict)
    prior_shape: dict[str, Any] | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        """The columns :meth:`predict` reads: the features, and the prior's (the columns its
        level model reads with a ``prior_shape``, else the ``calibration_prior`` column)."""
        from models.churn.level import SHAPE_COLUMNS

        prior = self.settings.calibration_prior
        extra = SHAPE_COLUMNS if self.prior_shape else (prior,) if prior else ()
        return self.features + tuple(c for c in extra if c not in self.features)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated booster probabilities of churn, one per row of ``frame``.

        Raises
        ------
        ValueError
            ``frame`` lacks feature columns (named in the message).
        """
        x = _design(frame, self.features, self.categories)
        return np.asarray(self.booster.predict(x), dtype=float)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of churn, one per row of ``frame`` (in row order).

        Extra columns are ignored; ``frame`` is not modified.

        Raises
        ------
        ValueError
            ``frame`` lacks feature columns (named in the message).
        """
        return _apply_calibrator(
            self.calibration,
            self.calibrator,
            self.predict_raw(frame),
            _prior(frame, self.settings, self.prior_shape),
        )


def _prior(
    frame: pd.DataFrame, settings: ChurnSettings, shape: Mapping[str, Any] | None = None
) -> np.ndarray | None:
    """The calibration prior as probabilities: the ``shape`` model's, else the configured
    column's; ``None`` when not configured."""
    name = settings.calibration_prior
    if name is None:
        return None
    if shape is not None:
        from models.churn.level import shape_p_no_purchase

        return shape_p_no_purchase(shape, frame)
    if name not in frame.columns:
        raise ValueError(f"churn.calibration_prior column {name!r} is missing from the frame")
    return frame[name].to_numpy(dtype=float)


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
    keys = _cutoff_keys(train)
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


def _iso(ts: pd.Timestamp) -> str:
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def _summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = churn_metrics(y, p)
    return {k: m[k] for k in ("roc_auc", "brier", "log_loss", "ece", "base_rate")}


def _at_most(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``rows`` or, when longer, ``n`` of them drawn without replacement, in their order."""
    if len(rows) <= n:
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=n, replace=False))
    return rows.iloc[keep]


JUDGE_MIN_SHARE = 0.25  # of the booster's training rows, for the booster that judges it
EARLY_STOPPING = {
    "judge": "on the validation cutoff, by a booster trained on the cutoffs whose churn windows "
    "end by it; the published booster, trained on every training cutoff, keeps its rounds, and "
    "its calibrator is fit on the judge's validation scores",
    "overlapping": "on the validation cutoff, by the booster itself (no training cutoff's churn "
    "window ends by it: features.selection_cutoffs, a longer history)",
}


def _judge_rows(
    fit_rows: pd.DataFrame, valid_rows: pd.DataFrame, horizon_days: int | None
) -> pd.DataFrame | None:
    """The training rows at the cutoffs whose churn windows end by the validation cutoff, or
    ``None`` when they hold fewer than :data:`JUDGE_MIN_SHARE` of the training rows (a few
    days' cohort at the log's start is no stand-in for the booster) or a single class.

    The churn windows of the other training cutoffs overlap the validation cutoff's in calendar
    time: a booster trained on them and stopped on the validation rows keeps improving there
    (it boosted to the round cap on every backtest log) and flatters itself. One trained on
    these rows alone meets the validation rows as the published model meets the customers it
    scores: on a window it has not seen.
    """
    if horizon_days is None:
        return None
    latest = _cutoff_keys(valid_rows).min() - pd.Timedelta(days=horizon_days)
    rows = fit_rows.loc[(_cutoff_keys(fit_rows) <= latest).to_numpy()]
    if len(rows) < JUDGE_MIN_SHARE * len(fit_rows) or len(np.unique(_labels(rows))) < 2:
        return None
    return rows


def _boost(
    rows: pd.DataFrame,
    features: list[str],
    categories: dict,
    settings: ChurnSettings,
    valid: tuple[pd.DataFrame, np.ndarray] | None = None,
    rounds: int = 0,
) -> tuple[lgb.Booster, int]:
    """A booster on ``rows``: early-stopped on ``valid`` (design, labels), or else ``rounds``
    rounds; returns it with the rounds kept (and only those trees)."""
    params = settings.lightgbm_params()
    cats = [c for c in features if c in categories] or "auto"
    data = lgb.Dataset(
        _design(rows, features, categories), _labels(rows), categorical_feature=cats, params=params
    )
    if valid is None:
        booster = lgb.train(params, data, num_boost_round=rounds)
        return booster, booster.current_iteration()
    stop = lgb.early_stopping(
        settings.early_stopping_rounds, verbose=False, min_delta=settings.early_stopping_min_delta
    )
    booster = lgb.train(
        params,
        data,
        num_boost_round=settings.n_estimators,
        valid_sets=[lgb.Dataset(*valid, reference=data)],
        valid_names=["validation"],
        callbacks=[stop],
    )
    best = int(booster.best_iteration) or booster.current_iteration()
    # keep only the selected trees; reloading makes in-memory and persisted models identical
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), best


def train_churn(
    train: pd.DataFrame,
    settings: ChurnSettings | None = None,
    horizon_days: int | None = None,
    prior_shape: Mapping[str, Any] | None = None,
) -> ChurnModel:
    """Train the calibrated churn classifier on stacked past cutoffs.

    Parameters
    ----------
    train : pandas.DataFrame
        One row per customer and cutoff with ``cutoff`` (dates), ``churned`` (bool) and the
        features (see :func:`feature_columns`). Not modified.
    settings : ChurnSettings, optional
    horizon_days : int, optional
        The churn horizon: training cutoffs at least this long before the validation cutoff
        train the booster that sets the rounds and that the candidates are judged and
        calibrated with (see :func:`_judge_rows`).
    prior_shape : mapping, optional
        A level model fit at the validation cutoff whose P(no purchase) is the calibration
        prior (``churn_level(...)["shape"]["validation"]``); the model keeps it.

    Returns
    -------
    ChurnModel

    Raises
    ------
    ValueError
        Fewer than 2 distinct cutoffs, a single class in the training or validation rows,
        missing labels, or unusable feature columns.
    """
    settings = settings or ChurnSettings()
    features = feature_columns(train, settings)
    if not features:
        raise ValueError("churn model: no feature columns left after churn.exclude")
    fit_rows, valid_rows, fit_cutoffs, valid_cutoffs = split_by_cutoff(
        train, settings.validation_cutoffs
    )
    if settings.max_rows is not None:
        fit_rows = _at_most(fit_rows, settings.max_rows, settings.seed)
        valid_rows = _at_most(valid_rows, settings.max_rows, settings.seed + 1)
    y_fit, y_valid = _labels(fit_rows), _labels(valid_rows)
    for name, y in (("training", y_fit), ("validation", y_valid)):
        if y.min() == y.max():
            raise ValueError(f"churn {name} rows have a single class ({TARGET}={bool(y[0])})")
    categories = _categories(fit_rows, features)
    valid = (_design(valid_rows, features, categories), y_valid)
    judge_rows = _judge_rows(fit_rows, valid_rows, horizon_days)
    prior_valid = _prior(valid_rows, settings, prior_shape)
    if judge_rows is None:
        booster, best = _boost(fit_rows, features, categories, settings, valid)
        judge = booster
    else:
        # the judge: early-stopped, calibrated and chosen on a window it has not seen; the
        # published booster, on every training cutoff, keeps its number of rounds
        judge, best = _boost(judge_rows, features, categories, settings, valid)
        booster, _ = _boost(fit_rows, features, categories, settings, rounds=best)
    raw_valid = np.asarray(judge.predict(valid[0]), dtype=float)
    if prior_valid is None:
        selection = {"choice": "booster", "rule": "no calibration prior: the booster"}
    elif judge_rows is None:
        selection = {
            "choice": "stack",
            "rule": "the stack when no training cutoff's churn window ends by the "
            "validation cutoff (features.selection_cutoffs, a longer history)",
            "reason": "stack: no candidate could be judged on a window it had not seen",
        }
    else:
        selection = select_candidate(
            raw_valid,
            prior_valid,
            y_valid,
            settings.selection_margin,
            settings.seed,
            shifted=settings.shifts,
        )
        selection["rule"] += (
            "; the booster judged is trained on the cutoffs whose churn windows end by the "
            "validation cutoff"
        )
    selection["early_stopping"] = EARLY_STOPPING["overlapping" if judge_rows is None else "judge"]
    calibrator = _fit_calibrator(
        settings.calibration, raw_valid, y_valid, prior_valid, selection["choice"]
    )
    calibrated = _apply_calibrator(settings.calibration, calibrator, raw_valid, prior_valid)
    return ChurnModel(
        booster=booster,
        features=tuple(features),
        categories=categories,
        calibration=settings.calibration,
        calibrator=calibrator,
        best_iteration=best,
        train_cutoffs=tuple(_iso(c) for c in fit_cutoffs),
        validation_cutoffs=tuple(_iso(c) for c in valid_cutoffs),
        n_train=len(fit_rows),
        n_validation=len(valid_rows),
        validation_metrics={
            "raw": _summary(y_valid, raw_valid),
            "calibrated": _summary(y_valid, calibrated),
        },
        selection=selection,
        settings=settings,
        prior_shape=dict(prior_shape) if prior_shape is not None else None,
    )


def feature_importance(model: ChurnModel) -> pd.DataFrame:
    """Gain and split-count importance of each feature, by decreasing gain.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature``, ``gain`` (total loss reduction), ``split`` (times used), plus
        ``gain_share`` (gain over total gain).
    """
    gain = np.asarray(model.booster.feature_importance(importance_type="gain"), dtype=float)
    split = np.asarray(model.booster.feature_importance(importance_type="split"), dtype=np.int64)
    total = gain.sum()
    out = pd.DataFrame(
        {
            "feature": list(model.features),
            "gain": gain,
            "split": split,
            "gain_share": gain / total if total > 0 else np.zeros_like(gain),
        }
    )
    order = ["gain", "split", "feature"]
    return out.sort_values(order, ascending=[False, False, True]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Serialisation
# --------------------------------------------------------------------------------------------


def json_metrics(metrics: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    return {
        k: {m: (None if v is None or not math.isfinite(v) else float(v)) for m, v in d.items()}
        for k, d in metrics.items()
    }


def to_artifacts(model: ChurnModel) -> tuple[str, dict[str, Any]]:
    """The booster as LightGBM model text and everything else as a JSON-able dict.

    Returns
    -------
    tuple
        ``(model_text, meta)``; ``json.dumps(meta)`` works (NaN metrics become ``None``).
    """
    settings = asdict(model.settings)
    settings["exclude"] = list(model.settings.exclude)
    meta = {
        "format": ARTIFACT_FORMAT,
        "lightgbm_version": lgb.__version__,
        "features": list(model.features),
        "categories": {k: list(v) for k, v in model.categories.items()},
        "calibration": model.calibration,
        "calibrator": dict(model.calibrator),
        "best_iteration": model.best_iteration,
        "train_cutoffs": list(model.train_cutoffs),
        "validation_cutoffs": list(model.validation_cutoffs),
        "n_train": model.n_train,
        "n_validation": model.n_validation,
        "validation_metrics": json_metrics(model.validation_metrics),
        "settings": settings,
        "selection": model.selection,
        "prior_shape": model.prior_shape,
    }
    return model.booster.model_to_string(), meta


def from_artifacts(text: str, meta: Mapping[str, Any]) -> ChurnModel:
    """Rebuild a :class:`ChurnModel` from :func:`to_artifacts` output.

    Raises
    ------
    ValueError
        Unknown format or missing keys in ``meta``.
    """
    if meta.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"not a churn model artifact: format {meta.get('format')!r}")
    required = (
        "features",
        "categories",
        "calibration",
        "calibrator",
        "best_iteration",
        "train_cutoffs",
        "validation_cutoffs",
        "n_train",
        "n_validation",
        "settings",
    )
    missing = [k for k in required if k not in meta]
    if missing:
        raise ValueError(f"churn model artifact lacks {missing}")
    booster = lgb.Booster(model_str=text)
    features = tuple(meta["features"])
    if booster.num_feature() != len(features):
        raise ValueError(
            f"churn model artifact: the booster has {booster.num_feature()} features, "
            f"meta['features'] lists {len(features)}"
        )
    metrics = {
        k: {m: (math.nan if v is None else float(v)) for m, v in d.items()}
        for k, d in meta.get("validation_metrics", {}).items()
    }
    return ChurnModel(
        booster=booster,
        features=features,
        categories={k: list(v) for k, v in meta["categories"].items()},
        calibration=meta["calibration"],
        calibrator=dict(meta["calibrator"]),
        best_iteration=int(meta["best_iteration"]),
        train_cutoffs=tuple(meta["train_cutoffs"]),
        validation_cutoffs=tuple(meta["validation_cutoffs"]),
        n_train=int(meta["n_train"]),
        n_validation=int(meta["n_validation"]),
        validation_metrics=metrics,
        settings=ChurnSettings.from_mapping(meta["settings"]),
        selection=dict(meta.get("selection", {})),
        prior_shape=meta.get("prior_shape"),
    )
