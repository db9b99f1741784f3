"""`cvm backtest`: the real stages on rolling cutoffs of a log, the verdict per case."""

from __future__ import annotations

import json

import pytest
import yaml

from pipeline.cli import main
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
CANDIDATES = yaml.safe_load((REPO / "conf/clv/bgnbd.yaml").read_text())["candidates"]


def test_a_suite_runs_every_cutoff_and_names_the_strongest_baseline(tmp_path, monkeypatch, capsys):
    suite = {
        "out": str(tmp_path / "backtest.json"),
        "work_dir": str(tmp_path / "work"),
        "overrides": [
            "clv=bgnbd",  # the stationary model named: its own reference
            "clv.method=map",
            "tracking.enabled=false",
            "features.train_cutoffs=3",
            "churn.n_estimators=200",
            "churn.min_child_samples=100",
        ],
        "logs": {
            "small": {
                "simulate": {"customers": 3000, "cohort_days": 300, "horizon_days": 800, "seed": 3},
                "overrides": ["data=simulated"],
                "cutoffs": ["2025-01-31", "2025-03-31"],
                "from_baseline_model": True,
            }
        },
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    monkeypatch.chdir(REPO)  # the project's conf/; every output goes to tmp_path
    assert main(["backtest", "--suite", str(path)]) == 0
    results = json.loads((tmp_path / "backtest.json").read_text())
    assert [c["cutoff"] for c in results["cases"]] == ["2025-01-31", "2025-03-31"]
    for case in results["cases"]:
        verdict = case["churn"]
        assert verdict["roc_auc"]["baseline"] in (
            "clv_p_no_purchase",
            "clv_expected_purchases",
            "recency_days",
            "base_rate",
        )
        assert verdict["roc_auc"]["margin"] == pytest.approx(
            verdict["roc_auc"]["model"] - verdict["roc_auc"]["baseline_value"]
        )
        churn = case["metrics"]["churn_model"]
        assert churn["calibration_in_the_large"] == verdict["calibration_in_the_large"]["model"]
        assert set(case["clv"]) == {"purchases", "spend"}
        assert case["churn_model"]["choice"] in ("clv_as_is", "clv", "stack", "booster")
        # the purchase models the score's prior and level come from: the CLV model's own or
        # another of the family's candidates (clv.candidates, with or without a season)
        family = {f"{m}{s}" for m in CANDIDATES for s in ("", "+season")}
        assert {case["churn_model"]["prior"], case["churn_model"]["level"]} <= family | {"clv"}
        # the CLV forecast against its targets and the stationary BG/NBD on the same customers
        clv = case["clv_verdict"]
        assert (
            clv["purchases"]["aggregate_error_pct"]
            == case["clv"]["purchases"]["aggregate_error_pct"]
        )
        assert clv["purchases"]["limit"] == (10.0 if clv["full_year"] else 15.0)
        assert case["clv_model"] == "bgnbd"  # the model the suite names: its own reference
        assert clv["mae"]["model"] == pytest.approx(clv["mae"]["reference"], rel=1e-6)
        assert clv["mae"]["difference"]["low"] <= 0 <= clv["mae"]["difference"]["high"]
        assert clv["mae"]["interval"]["low"] < clv["mae"]["model"] < clv["mae"]["interval"]["high"]
        # simulated: the true model's own churn probability beside the baselines
        ceiling = case["ceiling"]
        assert ceiling["roc_auc_margin"] == pytest.approx(
            ceiling["roc_auc"] - verdict["roc_auc"]["baseline_value"]
        )
        assert abs(ceiling["calibration_in_the_large"]) < 0.05
        # and its own forecast of the holdout purchases: BG/NBD's, as the model fit to its log
        truth = clv["ceiling"]
        assert abs(truth["aggregate_error_pct"]) < 10 and truth["mae"] > 0
        gap = clv["purchases"]["aggregate_error_pct"] - truth["aggregate_error_pct"]
        assert truth["gap_points"] == pytest.approx(gap)
        assert truth["met"] == (abs(gap) <= 3) and 0.9 < truth["days_per_purchase"] <= 1
        # the forecast learnt on the stacked past cutoffs on top of BG/NBD's, beside it; with
        # too few cutoffs whose windows end by the latest, no trees: BG/NBD's own forecast
        stacked = case["stacked"]
        assert set(stacked) == {"purchases", "spend", "rounds", "judge"}
        assert 0.8 < stacked["purchases"]["coverage"] <= 1
        assert 0.8 < stacked["spend"]["coverage"] <= 1
        if not stacked["judge"]["trees"]:
            assert stacked["rounds"] == {"purchases": 0, "spend": 0}
            assert stacked["purchases"]["aggregate_error_pct"] == pytest.approx(
                case["clv"]["purchases"]["aggregate_error_pct"], abs=0.5
            )
    assert results["summary"]["cases"] == 2
    assert results["summary"]["stacked"]["cases"] == 2
    out = capsys.readouterr().out
    assert "best baseline" in out and "small" in out and "ceiling" in out
    assert "cases meet every target" in out
    assert "purchase model" in out and "CLV: " in out and "stacked" in out
