"""Holdout evaluation: the CLV and churn models, fit before the calibration cutoff, measured on
the window after it, next to the churn baselines; the plot data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.btyd.clv import fit_clv
from models.btyd.common import PurchaseModel
from models.btyd.predict import PredictionSettings
from models.btyd.season import cutoff_days
from models.churn.baselines import baseline_scores, is_probability, rivals
from models.evaluation import diagnostics
from models.evaluation.metrics import (
    calibration_curve_points,
    churn_metrics,
    roc_curve_points,
    value_metrics,
)
from models.evaluation.uncertainty import churn_intervals, mae_intervals


def expected_cumulative_repeats(
    model: PurchaseModel, params: dict[str, float], first_offsets: np.ndarray, times: np.ndarray
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
        out[k] = float(np.sum(counts * model.expected_purchases(params, age)))
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


def churn_table(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Churn metrics per score; calibration metrics only for scores that are probabilities."""
    table = {}
    for name, p in scores.items():
        metrics = churn_metrics(y, np.clip(p, 0.0, 1.0))
        if not is_probability(name):
            calibration = ("brier", "log_loss", "ece", "calibration_in_the_large")
            metrics = {k: v for k, v in metrics.items() if k not in calibration}
        table[name] = {k: (None if not np.isfinite(v) else float(v)) for k, v in metrics.items()}
    return table


def beats_strongest_baseline(churn: dict[str, dict[str, float]]) -> dict[str, dict]:
    """The churn model against the strongest baseline on ROC-AUC and on Brier score.

    P(alive) is reported but never the bar: it holds every one-time buyer alive.
    """
    out = {}
    for metric, higher in (("roc_auc", True), ("brier", False)):
        values = {k: churn[k][metric] for k in rivals() if churn.get(k, {}).get(metric) is not None}
        best = (max if higher else min)(values, key=values.get)
        ours = churn["churn_model"][metric]
        out[metric] = {
            "model": ours,
            "strongest_baseline": best,
            "baseline": values[best],
            "beats": bool(ours > values[best] if higher else ours < values[best]),
        }
    return out


# the scores drawn in the churn plots: the model, the CLV model's own probability, recency
PLOTTED_SCORES = ("churn_model", "clv_p_no_purchase", "recency_days")


def thinned_roc(points: pd.DataFrame, steps: int = 100) -> pd.DataFrame:
    """The ROC points where ``fpr + tpr`` crosses a new multiple of ``1 / steps``, the first and
    the last kept: at most ``2 * steps + 1`` rows, the curve unchanged to the eye (a score with
    one value per customer gives a point per customer)."""
    walked = np.floor((points.fpr + points.tpr).to_numpy() * steps)
    keep = np.r_[True, np.diff(walked) > 0]
    keep[-1] = True
    return points[keep].reset_index(drop=True)


REFERENCE = "bgnbd"  # the stationary model a CLV forecast is judged against


def stationary_bgnbd(clv, table: pd.DataFrame, holdout: float) -> np.ndarray:
    """Each customer's holdout purchases forecast by stationary BG/NBD (MAP, the CLV model's
    priors) fit on the same calibration summaries: the reference of the CLV verdicts."""
    settings = replace(
        clv.settings, model=REFERENCE, season=False, method="map", spend=False, covariates=()
    )
    window = PredictionSettings(horizon=holdout, clv_periods=0)
    return fit_clv(table, settings).predict(table, window)["expected_purchases"].to_numpy()


@dataclass(frozen=True)
class HoldoutSettings:
    """The evaluation windows in model time units and how predictions are made."""

    prediction: PredictionSettings
    max_draws: int | None
    holdout: float  # length of the holdout after the calibration cutoff
    churn_horizon: float


def evaluate_holdout(
    table: pd.DataFrame,
    base_rate: float,
    clv,
    churn,
    settings: HoldoutSettings,
    repeats_by_period: pd.DataFrame,
    calibration_offset: float,
    progress: Callable[[str], Callable[[int, int], None] | None] = lambda _: None,
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The holdout metrics of a CLV model and a churn model (fit before the cutoff) next to the
    churn baselines, and the plot data.

    ``table`` is the calibration table (features at the cutoff, holdout outcomes, churn label);
    ``base_rate`` the churn rate of the training rows; ``repeats_by_period`` the observed repeat
    purchases per period since the first day (``period``, ``repeats``), and
    ``calibration_offset`` the cutoff's distance from that day, in model units.
    """
    clv = clv.thinned(settings.max_draws)
    pred = clv.predict(
        table,
        replace(settings.prediction, horizon=settings.holdout),
        progress=progress("evaluate: CLV over the holdout"),
    )
    in_horizon = clv.predict(
        table,
        replace(settings.prediction, horizon=settings.churn_horizon),
        with_spend=False,
        progress=progress("evaluate: churn horizon"),
    )
    clv_metrics = {"purchases": value_metrics(table.holdout_purchases, pred.expected_purchases)}
    reference = stationary_bgnbd(clv, table, settings.holdout)
    if "expected_spend" in pred.columns:  # a purchase-only model predicts no spend
        predicted_spend = pred.expected_purchases * pred.expected_spend
        clv_metrics["spend"] = value_metrics(table.holdout_spend, predicted_spend)
    actual = table.holdout_purchases.to_numpy(dtype=float)
    results: dict = {
        "holdout_length": settings.holdout,
        "clv": clv_metrics,
        "clv_reference": {
            "model": REFERENCE,
            "purchases": value_metrics(table.holdout_purchases, reference),
            "intervals": mae_intervals(actual, pred.expected_purchases.to_numpy(), reference),
        },
    }
    y = table.churned.to_numpy(dtype=int)
    with_btyd = clv.churn_features(table, settings.churn_horizon)
    scores = {"churn_model": churn.predict(with_btyd)}
    scores |= baseline_scores(table, in_horizon, base_rate)
    results["churn"] = churn_table(y, scores)
    results["churn_model_beats"] = beats_strongest_baseline(results["churn"])
    results["churn_intervals"] = churn_intervals(
        y,
        {name: np.clip(p, 0.0, 1.0) for name, p in scores.items()},
        rivals(),
        [name for name in rivals() if is_probability(name)],
    )

    periods = np.arange(int(repeats_by_period.period.max()) + 1)
    actual = repeats_by_period.set_index("period").repeats.reindex(periods, fill_value=0)
    first_offsets, times = calibration_offset - table["T"].to_numpy(), periods + 1.0
    if clv.season is not None:  # both on the seasonal clock, from the log's first day
        origin = cutoff_days(table)[0] - calibration_offset * clv.season.unit_days
        first_offsets, times = (
            clv.season.clock(origin + v * clv.season.unit_days) - clv.season.clock(origin)
            for v in (first_offsets, times)
        )
    plots = {
        "tracking": pd.DataFrame(
            {
                "period": periods,
                "actual": actual.cumsum().to_numpy(),
                "predicted": expected_cumulative_repeats(
                    clv.purchase, clv.point, first_offsets, times
                ),
            }
        ),
        "calibration_holdout": calibration_vs_holdout(
            table.frequency, table.holdout_purchases, pred.expected_purchases
        ),
        "repeat_histogram": diagnostics.repeat_histogram(clv, table),
        "holdout_by_recency": diagnostics.conditional_by_recency(table, pred.expected_purchases),
        "heterogeneity": diagnostics.heterogeneity(clv),
        "p_alive_paths": diagnostics.p_alive_paths(clv, table),
        "churn_roc": pd.concat(
            thinned_roc(roc_curve_points(y, scores[name])).assign(model=name)
            for name in PLOTTED_SCORES
        ),
        "churn_calibration": pd.concat(
            calibration_curve_points(y, scores[name]).assign(model=name)
            for name in PLOTTED_SCORES
            if is_probability(name)
        ),
    }
    return results, plots
