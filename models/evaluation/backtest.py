"""The backtest verdict: per case (log, cutoff), the churn model against its strongest baseline
on each measure, with the targets it must meet, and the CLV forecast against its targets and
the stationary BG/NBD's."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.churn.baselines import BASELINES, rivals
from models.evaluation.metrics import churn_metrics, value_metrics


@dataclass(frozen=True)
class Targets:
    """What the churn model must do on every case: ROC-AUC and Brier no worse than the
    strongest baseline (within the tolerances), mean predicted churn within ``citl`` of the
    observed rate, ECE at most the best baseline's plus ``ece``."""

    roc_auc: float = 0.002
    brier: float = 0.002
    citl: float = 0.01
    ece: float = 0.005


@dataclass(frozen=True)
class ClvTargets:
    """What the CLV forecast must do on every case: |aggregate error| of holdout purchases at
    most ``purchases`` and of spend at most ``spend`` percent where the log holds a year before
    the cutoff (a season can be fit), ``short_history`` percent for both elsewhere; a customer
    MAE no worse than the stationary BG/NBD's beyond the bootstrap interval of the difference."""

    purchases: float = 10.0
    spend: float = 12.0
    short_history: float = 15.0
    ceiling: float = 3.0


def clv_ceiling_accuracy(expected: np.ndarray, table: pd.DataFrame, purchases: int) -> dict:
    """The CLV ceiling's forecast (``expected``) of the holdout purchases of a simulated log's
    customers (``table``: the features at the cutoff, with ``holdout_purchases``): its aggregate
    error in percent and its customer MAE.

    The truth counts purchases, the features purchase days (a heavy buyer's purchases on one
    day are one), so the forecast is scaled by the log's purchase days per purchase before the
    cutoff: the table's repeat purchase days over the log's ``purchases`` up to the cutoff, less
    each customer's first (``days_per_purchase``, also returned)."""
    repeats = purchases - len(table)
    days_per_purchase = float(table["frequency"].sum()) / max(repeats, 1)
    expected = expected * days_per_purchase
    actual = table["holdout_purchases"].to_numpy(dtype=float)
    return {
        "aggregate_error_pct": float(100 * (expected.sum() / max(actual.sum(), 1.0) - 1)),
        "mae": float(np.abs(expected - actual).mean()),
        "days_per_purchase": days_per_purchase,
    }


def clv_verdict(
    evaluation: dict,
    full_year: bool,
    targets: ClvTargets = ClvTargets(),
    ceiling: dict | None = None,
) -> dict:
    """The CLV forecast of a case against its targets (``evaluation`` as the evaluate stage
    writes it; ``full_year``: the log holds a year before the cutoff). On a simulated log,
    ``ceiling`` (:func:`clv_ceiling_accuracy`): the aggregate purchases error within
    ``targets.ceiling`` points of the true model's own."""
    clv, reference = evaluation["clv"], evaluation["clv_reference"]
    limits = {"purchases": targets.purchases, "spend": targets.spend}
    out: dict = {"full_year": full_year}
    for part, values in clv.items():
        if values:  # no spend on a purchase-only log
            limit = limits[part] if full_year else targets.short_history
            error = values["aggregate_error_pct"]
            out[part] = {"aggregate_error_pct": error, "limit": limit, "met": abs(error) <= limit}
    difference = reference["intervals"]["difference"]
    mae, reference_mae = clv["purchases"]["mae"], reference["purchases"]["mae"]
    out["mae"] = {
        "model": mae,
        "reference": reference_mae,
        "improvement_pct": 100 * (1 - mae / reference_mae),
        "interval": reference["intervals"]["mae"],
        "difference": difference,
        "met": difference["low"] <= 0,
    }
    if ceiling is not None:
        gap = clv["purchases"]["aggregate_error_pct"] - ceiling["aggregate_error_pct"]
        out["ceiling"] = ceiling | {
            "gap_points": gap,
            "limit": targets.ceiling,
            "met": abs(gap) <= targets.ceiling,
        }
    out["all_met"] = all(v["met"] for v in out.values() if isinstance(v, dict))
    return out


def stacked_accuracy(predicted: pd.DataFrame, table: pd.DataFrame) -> dict:
    """The stacked forecast's accuracy on the holdout (``predicted``:
    :meth:`models.btyd.stacked.StackedForecast.predict` of the customers ``table``, with
    ``holdout_purchases`` and ``holdout_spend``): per part, the aggregate error in percent, the
    customer MAE (as the evaluate stage measures the CLV model's: :func:`value_metrics`), the
    share of customers inside their interval and its mean width."""
    out = {}
    for part in ("purchases", "spend"):
        if f"expected_{part}" not in predicted:
            continue
        actual = table[f"holdout_{part}"].to_numpy(dtype=float)
        accuracy = value_metrics(actual, predicted[f"expected_{part}"].to_numpy())
        low, high = predicted[f"{part}_low"].to_numpy(), predicted[f"{part}_high"].to_numpy()
        out[part] = {
            "aggregate_error_pct": accuracy["aggregate_error_pct"],
            "mae": accuracy["mae"],
            "coverage": float(np.mean((actual >= low) & (actual <= high))),
            "mean_width": float(np.mean(high - low)),
        }
    return out


PARTS = ("purchases", "spend", "mae", "ceiling")  # the CLV targets, as the table names them


def clv_table(cases: list[dict]) -> str:
    """One line per case: the purchase model, the aggregate errors and the customer MAE against
    the stationary BG/NBD's, and the targets missed."""
    header = (
        f"{'log':<20} {'cutoff':<10} {'purchase model':<20} {'purch %':>8} {'spend %':>8} "
        f"{'MAE':>6} {'95% interval':>13} {'BG/NBD':>6} {'better':>7} {'ceiling':>14} "
        f"{'stacked':>15} targets"
    )
    lines = [header, "-" * len(header)]
    for case in cases:
        v = case["clv_verdict"]
        spend = v.get("spend", {}).get("aggregate_error_pct")
        missed = [p for p in PARTS if p in v and not v[p]["met"]]
        ceiling = v.get("ceiling")
        ceiling = f"{ceiling['aggregate_error_pct']:+.1f} {ceiling['mae']:.3f}" if ceiling else ""
        interval = v["mae"]["interval"]
        stacked = case.get("stacked", {}).get("purchases")
        stacked = f"{stacked['aggregate_error_pct']:+.1f} {stacked['mae']:.3f}" if stacked else ""
        lines.append(
            f"{case['log']:<20} {case['cutoff']:<10} {case['clv_model']:<20} "
            f"{v['purchases']['aggregate_error_pct']:>+8.1f} "
            f"{'' if spend is None else f'{spend:+.1f}':>8} {v['mae']['model']:>6.3f} "
            f"{f'{interval["low"]:.3f}-{interval["high"]:.3f}':>13} "
            f"{v['mae']['reference']:>6.3f} {v['mae']['improvement_pct']:>+6.1f}% "
            f"{ceiling:>14} {stacked:>15} {'met' if not missed else 'MISSED ' + ','.join(missed)}"
        )
    return "\n".join(lines)


CLV_LEGEND = (
    "purch %, spend %: aggregate error of the holdout forecast (targets 10 % and 12 % where the "
    "log holds a year before the cutoff, 15 % elsewhere); MAE: customer MAE of holdout "
    "purchases with its 95% bootstrap interval; BG/NBD: the stationary BG/NBD's on the same "
    "customers; better: the MAE's improvement on it (target: never worse beyond the interval "
    "of the difference); ceiling: on a simulated log, the true model's own forecast, its "
    "aggregate error and MAE (target: the purchases error within 3 points of it); stacked: the "
    "forecast learnt on the stacked past cutoffs on top of the purchase model's "
    "(models/btyd/stacked.py), its aggregate error and MAE (no target: a comparison)"
)


def _best(churn: dict, names: tuple[str, ...], metric: str, higher: bool) -> tuple[str, float]:
    values = {n: churn[n][metric] for n in names if churn.get(n, {}).get(metric) is not None}
    name = (max if higher else min)(values, key=values.get)
    return name, values[name]


def case_verdict(evaluation: dict, targets: Targets = Targets()) -> dict:
    """The churn model against the strongest baseline on ROC-AUC, Brier and ECE, its
    calibration in the large, and which targets it meets (``evaluation`` as the evaluate
    stage writes it). A missed target is ``within_noise`` when the bootstrap interval of the
    measure (:mod:`models.evaluation.uncertainty`) reaches it: on that many customers, a score
    that meets it could have measured as this one did."""
    churn = evaluation["churn"]
    model = churn["churn_model"]
    intervals = evaluation["churn_intervals"]
    probabilities = tuple(b.name for b in BASELINES if b.rival and b.probability)
    out: dict = {}
    for metric, higher, names, tolerance in (
        ("roc_auc", True, rivals(), targets.roc_auc),
        ("brier", False, probabilities, targets.brier),
        ("ece", False, probabilities, targets.ece),
    ):
        name, value = _best(churn, names, metric, higher)
        margin = model[metric] - value if higher else value - model[metric]  # > 0: model ahead
        interval = intervals["margins"][metric][name]
        out[metric] = {
            "model": model[metric],
            "baseline": name,
            "baseline_value": value,
            "margin": margin,
            "interval": interval,
            "met": margin >= -tolerance,
            "within_noise": margin < -tolerance <= interval["high"],
        }
    citl = model["calibration_in_the_large"]
    interval = intervals["calibration_in_the_large"]
    out["calibration_in_the_large"] = {
        "model": citl,
        "interval": interval,
        "met": abs(citl) <= targets.citl,
        "within_noise": abs(citl) > targets.citl
        and interval["low"] <= targets.citl
        and interval["high"] >= -targets.citl,
    }
    out["pr_auc"] = {"model": model["pr_auc"], "baseline": _best(churn, rivals(), "pr_auc", True)}
    verdicts = [v for v in out.values() if isinstance(v, dict) and "met" in v]
    out["all_met"] = all(v["met"] for v in verdicts)
    out["all_met_or_within_noise"] = all(v["met"] or v["within_noise"] for v in verdicts)
    return out


def ceiling_verdict(churned, ceiling, verdict: dict) -> dict:
    """The churn ceiling of a simulated log (:mod:`models.evaluation.ceiling`) on the case's
    customers: its ROC-AUC and Brier, and its margins over the strongest baselines of the
    churn model's ``verdict`` (the margins there are to take)."""
    m = churn_metrics(churned, ceiling)
    return {
        "roc_auc": m["roc_auc"],
        "brier": m["brier"],
        "calibration_in_the_large": m["calibration_in_the_large"],
        "roc_auc_margin": m["roc_auc"] - verdict["roc_auc"]["baseline_value"],
        "brier_margin": verdict["brier"]["baseline_value"] - m["brier"],
    }


def clv_accuracy(evaluation: dict) -> dict:
    """Holdout purchase (and spend) accuracy of the CLV model: MAE, normalised Gini and the
    aggregate error in percent."""
    keys = ("mae", "normalised_gini", "aggregate_error_pct")
    return {part: {k: values[k] for k in keys} for part, values in evaluation["clv"].items()}


def table(cases: list[dict]) -> str:
    """One line per case: the model against the strongest baseline, the margins and targets."""
    header = (
        f"{'log':<20} {'cutoff':<10} {'ROC-AUC':>7} {'best baseline':<24} {'margin':>7} "
        f"{'±':>6} {'ceiling':>7} {'Brier':>7} {'margin':>7} {'ECE':>6} {'CITL':>7} {'±':>6} "
        f"{'MAE':>6} targets"
    )
    lines = [header, "-" * len(header)]
    for case in cases:
        v, clv = case["churn"], case["clv"]["purchases"]
        missed = [
            m + ("~" if v[m]["within_noise"] else "")
            for m in ("roc_auc", "brier", "ece", "calibration_in_the_large")
            if not v[m]["met"]
        ]
        lines.append(
            f"{case['log']:<20} {case['cutoff']:<10} {v['roc_auc']['model']:>7.4f} "
            f"{v['roc_auc']['baseline']:<24} {v['roc_auc']['margin']:>+7.4f} "
            f"{half_width(v['roc_auc']):>6.4f} {_ceiling(case):>7} "
            f"{v['brier']['model']:>7.4f} {v['brier']['margin']:>+7.4f} "
            f"{v['ece']['model']:>6.4f} {v['calibration_in_the_large']['model']:>+7.4f} "
            f"{half_width(v['calibration_in_the_large']):>6.4f} "
            f"{clv['mae']:>6.3f} {'met' if not missed else 'MISSED ' + ','.join(missed)}"
        )
    return "\n".join(lines)


def _ceiling(case: dict) -> str:
    ceiling = case.get("ceiling")
    return f"{ceiling['roc_auc_margin']:+.4f}" if ceiling else ""


NOISE_LEGEND = (
    "±: half the 95% bootstrap interval (customers resampled) of the ROC-AUC margin and of CITL; "
    "~: missed, but within that interval; ceiling: on a simulated log, the ROC-AUC margin over "
    "the same baseline of the true model's own churn probability, which no score of the same "
    "history beats in expectation"
)


def half_width(verdict: dict) -> float:
    """Half the bootstrap interval of a verdict's measure."""
    return (verdict["interval"]["high"] - verdict["interval"]["low"]) / 2


def summary(cases: list[dict]) -> dict:
    """Targets met per case (and met or missed within sampling noise), and the mean ROC-AUC
    margin over the cases not simulated from the baseline's own model (where matching the
    baseline is the target), with half its 95% interval: the cases' intervals combined as
    independent normal errors."""
    counted = [c for c in cases if not c["simulated_from_baseline_model"]]
    real = [c["churn"]["roc_auc"] for c in counted]
    mean = None
    if real:
        halves = [half_width(v) for v in real]
        mean = {
            "mean": sum(v["margin"] for v in real) / len(real),
            "half_width": math.sqrt(sum(h * h for h in halves)) / len(real),
        }
        ceilings = [c for c in counted if c.get("ceiling")]
        if ceilings:  # on the simulated logs, what there was to take
            mean["simulated"] = {
                "cases": len(ceilings),
                "model": sum(c["churn"]["roc_auc"]["margin"] for c in ceilings) / len(ceilings),
                "ceiling": sum(c["ceiling"]["roc_auc_margin"] for c in ceilings) / len(ceilings),
            }
    not_bgnbd = [c["clv_verdict"]["mae"]["improvement_pct"] for c in counted]
    stacked = [c for c in cases if c.get("stacked")]
    return {
        "cases": len(cases),
        "clv_targets_met": sum(c["clv_verdict"]["all_met"] for c in cases),
        "mean_clv_mae_improvement_pct_not_from_baseline_model": (
            sum(not_bgnbd) / len(not_bgnbd) if not_bgnbd else None
        ),
        "all_targets_met": sum(c["churn"]["all_met"] for c in cases),
        "all_targets_met_or_within_noise": sum(
            c["churn"]["all_met_or_within_noise"] for c in cases
        ),
        "mean_roc_auc_margin_not_from_baseline_model": mean,
        **({"stacked": _stacked_summary(stacked)} if stacked else {}),
    }


def _stacked_summary(cases: list[dict]) -> dict:
    """Over the cases: how often the stacked forecast's aggregate purchases error is smaller
    than the purchase model's, its mean MAE improvement on it, and its intervals' mean
    coverage of the holdout purchases."""
    ours = [(c["stacked"]["purchases"], c["clv"]["purchases"]) for c in cases]
    return {
        "cases": len(ours),
        "smaller_aggregate_error": sum(
            abs(s["aggregate_error_pct"]) < abs(m["aggregate_error_pct"]) for s, m in ours
        ),
        "mean_mae_improvement_pct": sum(100 * (1 - s["mae"] / m["mae"]) for s, m in ours)
        / len(ours),
        "mean_purchases_coverage": sum(s["coverage"] for s, _ in ours) / len(ours),
    }
