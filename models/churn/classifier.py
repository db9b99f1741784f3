"""The trained churn model: a LightGBM booster with its calibrator, what it predicts, the shift
of its level to the customers it scores, and its files.

Everything here is a pure function of frames and settings; :meth:`ChurnModel.save` and
:meth:`ChurnModel.load` write and read a model's directory. Training is in
:mod:`models.churn.training`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import special

from models.btyd.point_fit import SUMMARY_COLUMNS, PointFit
from models.churn.calibration import apply_calibrator, logit, shift_to_mean
from models.churn.design import design_matrix
from models.churn.settings import Calibration, ChurnSettings

ARTIFACT_FORMAT = "cvm.churn/1"
# a saved model's files (:meth:`ChurnModel.save`)
FILES = {"model": "model.txt", "meta": "meta.json", "importance": "importance.parquet"}
# the calibration prior's part of a score (:meth:`ChurnModel.contributions`), named as no column
PRIOR_PART = "calibration prior"


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
    prior = prior_of(target, model.settings, model.prior_shape)
    params = {k: v for k, v in model.calibrator.items() if k != "shift"}
    z = special.logit(apply_calibrator("platt", params, model.predict_raw(target), prior))
    goal = float(prior.mean() if level is None else level["mean"])
    shift = shift_to_mean(z, goal)
    selection = model.selection | {"shift": shift, "target_mean": goal}
    if level is not None:
        selection["level"] = dict(level)
    return replace(model, calibrator=params | {"shift": shift}, selection=selection)


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
        ``calibration_prior`` column (:class:`models.btyd.point_fit.PointFit`).
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
        prior = self.settings.calibration_prior
        extra = SUMMARY_COLUMNS if self.prior_shape else (prior,) if prior else ()
        return self.features + tuple(c for c in extra if c not in self.features)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Uncalibrated booster probabilities of churn, one per row of ``frame``.

        Raises
        ------
        ValueError
            ``frame`` lacks feature columns (named in the message).
        """
        x = design_matrix(frame, self.features, self.categories)
        return np.asarray(self.booster.predict(x), dtype=float)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of churn, one per row of ``frame`` (in row order).

        Extra columns are ignored; ``frame`` is not modified.

        Raises
        ------
        ValueError
            ``frame`` lacks feature columns (named in the message).
        """
        return apply_calibrator(
            self.calibration,
            self.calibrator,
            self.predict_raw(frame),
            prior_of(frame, self.settings, self.prior_shape),
        )

    def contributions(self, frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Each row's score as additive parts on the log-odds scale: a base value and one column
        per feature, plus :data:`PRIOR_PART` (with Platt calibration that uses a prior). Base
        plus parts is the logit of :meth:`predict` with Platt calibration; with
        isotonic, the logit of the booster's raw probability, which the calibrator maps
        monotonically.

        LightGBM's per-feature contributions (TreeSHAP, ``pred_contrib``) split the booster's
        log-odds from its base value, the mean over the rows it was trained on; Platt's ``a``
        scales them and ``c`` the prior's logit, measured from that same base, so that every
        part reads against the average training row.
        """
        x = design_matrix(frame, self.features, self.categories)
        parts = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=float)
        phi, phi0 = parts[:, :-1], parts[:, -1]
        table = pd.DataFrame(phi, columns=list(self.features), index=frame.index)
        if self.calibration == "isotonic":
            return phi0, table
        params = self.calibrator
        base = params["a"] * phi0 + params["b"] + params.get("shift", 0.0)
        table *= params["a"]
        if params.get("c", 0.0) != 0:
            prior = logit(prior_of(frame, self.settings, self.prior_shape))
            table[PRIOR_PART] = params["c"] * (prior - phi0)
            base = base + params["c"] * phi0
        return base, table

    def save(self, directory: Path, extra: Mapping[str, Any] | None = None) -> None:
        """Write the model into ``directory`` (created): the LightGBM text model, its metadata
        (:func:`to_artifacts`, with ``extra`` added) and the feature importances."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        text, meta = to_artifacts(self)
        (directory / FILES["model"]).write_text(text)
        meta = meta | dict(extra or {})
        (directory / FILES["meta"]).write_text(json.dumps(meta, indent=2, sort_keys=True))
        feature_importance(self).to_parquet(directory / FILES["importance"], index=False)

    @classmethod
    def load(cls, directory: Path) -> ChurnModel:
        """The model :meth:`save` wrote into ``directory``.

        Raises
        ------
        OSError, ValueError
            A missing or unreadable file, or files that are not a churn model.
        """
        directory = Path(directory)
        meta = json.loads((directory / FILES["meta"]).read_text())
        return from_artifacts((directory / FILES["model"]).read_text(), meta)


def prior_of(
    frame: pd.DataFrame, settings: ChurnSettings, shape: Mapping[str, Any] | None = None
) -> np.ndarray | None:
    """The calibration prior as probabilities: the ``shape`` model's, else the configured
    column's; ``None`` when not configured."""
    name = settings.calibration_prior
    if name is None:
        return None
    if shape is not None:
        return PointFit.from_dict(shape["fit"]).p_no_purchase(frame, shape["horizon_days"])
    if name not in frame.columns:
        raise ValueError(f"churn.calibration_prior column {name!r} is missing from the frame")
    return frame[name].to_numpy(dtype=float)


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
        settings=ChurnSettings(**meta["settings"]),
        selection=dict(meta.get("selection", {})),
        prior_shape=meta.get("prior_shape"),
    )
