"""The bootstrap intervals of the churn verdict: what part of a margin is sampling noise."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation.backtest import case_verdict, table
from models.evaluation.metrics import churn_metrics
from models.evaluation.uncertainty import _Score, churn_intervals


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 2, n)
    return (rng.random(n) < p).astype(float), p


def test_unit_weights_give_the_plain_metrics_ties_included():
    y, p = _calibrated(3000, 0)
    for score in (p, np.round(p, 1)):  # the rounded score has many ties
        weighted = _Score(score).metrics(y, np.ones(len(y)))
        plain = churn_metrics(y, score)
        for name, value in weighted.items():
            assert value == pytest.approx(plain[name], abs=1e-12)


def test_a_calibrated_score_lies_inside_its_interval_and_the_interval_narrows_with_customers():
    covered, halves = 0, {}
    for n in (500, 50_000):
        for seed in range(20 if n == 500 else 3):
            y, p = _calibrated(n, seed)
            out = churn_intervals(y, {"churn_model": p}, [], [], seed=seed)
            citl = out["calibration_in_the_large"]
            halves.setdefault(n, []).append((citl["high"] - citl["low"]) / 2)
            covered += n == 500 and citl["low"] <= 0 <= citl["high"]
    assert covered >= 17  # a 95% interval; 20 logs
    # the sampling error of a mean falls as 1/sqrt(n): 10 times narrower for 100 times more
    assert np.mean(halves[500]) / np.mean(halves[50_000]) == pytest.approx(10, rel=0.25)


def test_margins_are_paired_and_signed_for_the_model():
    y, p = _calibrated(5000, 1)
    noisy = np.clip(p + np.random.default_rng(2).normal(0, 0.3, len(p)), 0, 1)
    scores = {"churn_model": p, "same": p.copy(), "noisy": noisy}
    out = churn_intervals(y, scores, ["same", "noisy"], ["same", "noisy"])
    for metric in ("roc_auc", "brier", "ece"):
        # the same scores on the same resampled customers: no margin in any replicate
        assert out["margins"][metric]["same"] == {"low": 0.0, "high": 0.0}
        # the model ahead of a noisier copy of itself: positive margins
        assert out["margins"][metric]["noisy"]["low"] > 0


def _evaluation(roc_margin: float, citl: float, half: float) -> dict:
    base = {"roc_auc": 0.8, "brier": 0.15, "ece": 0.02, "calibration_in_the_large": 0.0}
    churn = {
        "churn_model": base
        | {"roc_auc": 0.8 + roc_margin, "calibration_in_the_large": citl, "ece": 0.02},
        "clv_p_no_purchase": base,
        "clv_expected_purchases": {"roc_auc": 0.8, "pr_auc": 0.5},
    }
    churn["churn_model"]["pr_auc"] = churn["clv_p_no_purchase"]["pr_auc"] = 0.5

    def around(value: float) -> dict:
        return {"low": value - half, "high": value + half}

    margins = {
        "roc_auc": {"clv_p_no_purchase": around(roc_margin), "clv_expected_purchases": around(0)},
        "brier": {"clv_p_no_purchase": around(0.0)},
        "ece": {"clv_p_no_purchase": around(0.0)},
    }
    return {
        "churn": churn,
        "churn_intervals": {"margins": margins, "calibration_in_the_large": around(citl)},
    }


@pytest.mark.parametrize(
    ("half", "noise"),
    [(0.02, True), (0.001, False)],
)
def test_a_missed_target_is_within_noise_only_when_its_interval_reaches_it(half, noise):
    verdict = case_verdict(_evaluation(roc_margin=-0.004, citl=0.02, half=half))
    for measure in ("roc_auc", "calibration_in_the_large"):
        assert not verdict[measure]["met"]
        assert verdict[measure]["within_noise"] is noise
    assert not verdict["all_met"]
    assert verdict["all_met_or_within_noise"] is noise
    clv = {"purchases": {"mae": 1.0}}
    case = {"log": "log", "cutoff": "2025-01-01", "churn": verdict, "clv": clv}
    line = table([case]).splitlines()[-1]
    assert ("roc_auc~" in line) is noise and ("calibration_in_the_large~" in line) is noise
    assert f"{half:.4f}" in line  # the half-width beside the margin


def test_a_met_target_is_never_called_noise():
    verdict = case_verdict(_evaluation(roc_margin=0.001, citl=0.005, half=0.05))
    assert verdict["all_met"] and verdict["all_met_or_within_noise"]
    assert not verdict["roc_auc"]["within_noise"]
    assert not verdict["calibration_in_the_large"]["within_noise"]
