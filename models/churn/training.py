"""Training the churn model on stacked past cutoffs.

The training table has one row per customer and cutoff: behavioural features at the cutoff, the
``cutoff`` itself and the label ``churned`` (no purchase in the horizon after the cutoff). The
split is by time, never random: rows at the most recent ``validation_cutoffs`` cutoffs validate
(early stopping and the probability calibrator), rows at earlier cutoffs train the booster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.churn.calibration import apply_calibrator, fit_calibrator, select_candidate
from models.churn.classifier import ChurnModel, prior_of
from models.churn.design import (
    categories_of,
    cutoff_keys,
    design_matrix,
    feature_columns,
    labels_of,
    split_by_cutoff,
)
from models.churn.settings import ChurnSettings
from models.columns import TARGET
from models.evaluation.metrics import churn_metrics


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
    latest = cutoff_keys(valid_rows).min() - pd.Timedelta(days=horizon_days)
    rows = fit_rows.loc[(cutoff_keys(fit_rows) <= latest).to_numpy()]
    if len(rows) < JUDGE_MIN_SHARE * len(fit_rows) or len(np.unique(labels_of(rows))) < 2:
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
        design_matrix(rows, features, categories),
        labels_of(rows),
        categorical_feature=cats,
        params=params,
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
    y_fit, y_valid = labels_of(fit_rows), labels_of(valid_rows)
    for name, y in (("training", y_fit), ("validation", y_valid)):
        if y.min() == y.max():
            raise ValueError(f"churn {name} rows have a single class ({TARGET}={bool(y[0])})")
    categories = categories_of(fit_rows, features)
    valid = (design_matrix(valid_rows, features, categories), y_valid)
    judge_rows = _judge_rows(fit_rows, valid_rows, horizon_days)
    prior_valid = prior_of(valid_rows, settings, prior_shape)
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
    calibrator = fit_calibrator(
        settings.calibration, raw_valid, y_valid, prior_valid, selection["choice"]
    )
    calibrated = apply_calibrator(settings.calibration, calibrator, raw_valid, prior_valid)
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
