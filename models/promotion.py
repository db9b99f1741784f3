"""Champion/challenger: is the challenger worse than the champion beyond a tolerance?

Both are measured on the same labelled window; a metric's figures are looked up by a dotted path
in the evaluation results (``churn.churn_model.roc_auc``). Pure functions of dicts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from models.settings import Flag, NonNegative, settings, text

# the metrics of the evaluation results a promotion can compare: (sections, scores, metrics)
_PROBABILITY = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "calibration_in_the_large")
PROMOTABLE = (
    (
        ("churn",),
        ("churn_model", "base_rate", "clv_not_alive", "clv_p_no_purchase"),
        (*_PROBABILITY, "top_decile_lift"),
    ),
    (
        ("churn",),
        ("recency_days", "clv_expected_purchases"),
        ("roc_auc", "pr_auc", "top_decile_lift"),
    ),
    (
        ("clv",),
        ("purchases", "spend"),
        ("mae", "rmse", "normalised_gini", "spearman", "aggregate_error_pct"),
    ),
)
_PATHS = "|".join(rf"({'|'.join(a)})\.({'|'.join(b)})\.({'|'.join(c)})" for a, b, c in PROMOTABLE)


@settings
class MetricRule:
    """How much worse than the champion the challenger may be on one metric (an entry of
    ``retrain.promotion.metrics``, under the metric's name).

    ``path`` names the metric in the evaluation results. ``better`` is ``higher`` or ``lower``.
    ``tolerance`` is in the metric's units, or a share of the champion's value when
    ``relative``.
    """

    path: text(
        "a metric of reports/evaluation.json: churn.<score>.<metric> (churn_model, base_rate, "
        "clv_not_alive, clv_p_no_purchase: roc_auc, pr_auc, brier, log_loss, ece, "
        "calibration_in_the_large, top_decile_lift; recency_days, clv_expected_purchases: "
        "roc_auc, pr_auc, top_decile_lift) or clv.<purchases|spend>.<mae|rmse|normalised_gini|"
        "spearman|aggregate_error_pct>",
        f"(?-i:{_PATHS})",
    )
    better: Literal["higher", "lower"]
    tolerance: NonNegative
    relative: Flag = False

    def limit(self, champion: float) -> float:
        """The worst challenger value still accepted against ``champion``."""
        slack = self.tolerance * abs(champion) if self.relative else self.tolerance
        return champion - slack if self.better == "higher" else champion + slack


def lookup(results: Mapping[str, Any], path: str) -> float | None:
    """The number at dotted ``path`` in ``results``; ``None`` if absent or not finite."""
    node: Any = results
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if node is None or isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node) if math.isfinite(node) else None


def missing_paths(results: Mapping[str, Any], rules: Mapping[str, MetricRule]) -> list[str]:
    """Rules whose path names nothing in ``results`` (a typo would silently disable a guard)."""
    missing = []
    for name, rule in rules.items():
        node: Any = results
        for key in rule.path.split("."):
            if not isinstance(node, Mapping) or key not in node:
                missing.append(f"{name} ({rule.path})")
                break
            node = node[key]
    return missing


def compare(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any],
    rules: Mapping[str, MetricRule],
) -> list[dict[str, Any]]:
    """One row per rule: both values, the limit, the difference and whether the challenger is
    ``worse`` beyond the tolerance.

    A metric undefined for both (e.g. ROC-AUC on a window with one class) is skipped
    (``worse: False`` with a note); undefined for the challenger only counts as worse.
    """
    rows = []
    for name, rule in rules.items():
        new, old = lookup(challenger, rule.path), lookup(champion, rule.path)
        row: dict[str, Any] = {
            "metric": name,
            "path": rule.path,
            "better": rule.better,
            "tolerance": rule.tolerance,
            "relative": rule.relative,
            "challenger": new,
            "champion": old,
            "difference": None if new is None or old is None else new - old,
            "limit": None if old is None else rule.limit(old),
        }
        if old is None and new is None:
            row |= {"worse": False, "note": "undefined for both on this window"}
        elif new is None:
            row |= {"worse": True, "note": "undefined for the challenger"}
        elif old is None:
            row |= {"worse": False, "note": "undefined for the champion"}
        else:
            limit = row["limit"]
            row["worse"] = bool(new < limit if rule.better == "higher" else new > limit)
        rows.append(row)
    return rows


def worse_metrics(rows: list[dict[str, Any]]) -> list[str]:
    """Names of the metrics on which the challenger is worse beyond the tolerance."""
    return [row["metric"] for row in rows if row["worse"]]
