"""Logs without spend, and logs too small or too flat for a model."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from models.simulate import SimulationSettings, simulate_log
from pipeline.cli import main

FAST = (
    "data=simulated",
    "data.format=csv",
    "data.calibration_end=2024-09-29",
    "clv.method=map",
    "features.train_cutoffs=2",
    "churn.n_estimators=200",
    "churn.min_child_samples=50",
)


def _log(customers: int = 3000, seed: int = 4) -> pd.DataFrame:
    return simulate_log(SimulationSettings(customers=customers, seed=seed))[0]


@pytest.mark.e2e
def test_a_log_without_amounts_runs_purchase_only(make_params, tmp_path):
    log = _log().drop(columns=["amount"])
    log.to_csv(tmp_path / "visits.csv", index=False)
    make_params(*FAST, f"data.path={tmp_path}/visits.csv", "data.mapping.amount=null")
    assert main(["run"]) == 0
    table = pd.read_parquet(tmp_path / "data/scored/customers.parquet")
    assert table.clv.isna().all() and table.expected_spend.isna().all()
    assert table.expected_purchases.notna().all() and table.churn_probability.between(0, 1).all()
    # tiers rank expected purchases: the best tier expects the most
    best = table[table.value_tier == "platinum"].expected_purchases.min()
    assert best >= table[table.value_tier == "bronze"].expected_purchases.max()
    assert (table.rfm_monetary == 0).all()
    # the value views: no money, but a priority, an action and the tier x stage summary
    assert table.historical_value.isna().all() and table.value_at_risk.isna().all()
    assert table.value_segment.isna().all() and table.recommended_action.notna().all()
    assert sorted(table.retention_priority) == list(range(1, len(table) + 1))
    segments = pd.read_parquet(tmp_path / "data/scored/customers_segments.parquet")
    assert set(segments.view) == {"tier_lifecycle"} and segments.customers.sum() == len(table)
    assert segments.total_clv.isna().all()
    report = json.loads((tmp_path / "artifacts/clv/fit_report.json").read_text())
    assert set(report["scoring"]["map"]) == {"purchase"}
    evaluation = json.loads((tmp_path / "reports/evaluation.json").read_text())
    assert set(evaluation["clv"]) == {"purchases"}
    assert "the log has no amounts" in (tmp_path / "reports/report.html").read_text()
    # no money anywhere: null, not 0.0 (README: "money columns are null")
    summary = json.loads((tmp_path / "reports/score_summary.json").read_text())
    ingest = json.loads((tmp_path / "data/interim/ingest_report.json").read_text())
    assert summary["total_clv"] is None and ingest["total_amount"] is None


def _fit_clv_fails(make_params, tmp_path, capsys, log: pd.DataFrame) -> str:
    log.to_csv(tmp_path / "log.csv", index=False)
    # the observation period runs to mid-2025 however early the last purchase is
    end = ("data.holdout_end=2025-06-29", "data.scoring_date=2025-06-29")
    make_params(*FAST, f"data.path={tmp_path}/log.csv", "tracking.enabled=false", *end)
    assert main(["stage", "ingest"]) == 0 and main(["stage", "features"]) == 0
    started = time.monotonic()
    assert main(["stage", "fit_clv"]) == 2
    assert time.monotonic() - started < 30  # refused before any sampling
    assert not (tmp_path / "artifacts/clv").exists()
    err = capsys.readouterr().err
    assert "\ncvm: error: fit_clv" in f"\n{err}" and "Traceback" not in err
    return err[err.index("cvm: error: fit_clv") :]  # after the stage's progress lines


def test_constant_spend_is_refused_with_the_purchase_only_way_out(make_params, tmp_path, capsys):
    err = _fit_clv_fails(make_params, tmp_path, capsys, _log().assign(amount=25.0))
    assert "no variation in spend" in err and "data.mapping.amount: null" in err
    assert "distinct_amounts is 1" in err


def test_a_log_without_repeat_buyers_is_refused(make_params, tmp_path, capsys):
    log = _log()
    once = log.sort_values("timestamp").drop_duplicates("customer_id")
    err = _fit_clv_fails(make_params, tmp_path, capsys, once)
    assert "0 with a repeat purchase" in err


def test_a_single_customer_is_refused(make_params, tmp_path, capsys):
    log = _log()
    err = _fit_clv_fails(make_params, tmp_path, capsys, log[log.customer_id == log.customer_id[0]])
    assert "1 customer(s)" in err


def test_a_single_churn_class_is_refused(make_params, tmp_path, capsys):
    log = _log(800)
    # every customer buys again within the churn horizon of every cutoff: no one churns
    days = pd.date_range("2024-01-01", "2025-06-30", freq="30D")
    steady = pd.DataFrame(
        [(c, d, 10.0 + i % 7) for i, c in enumerate(log.customer_id.unique()[:300]) for d in days],
        columns=["customer_id", "timestamp", "amount"],
    )
    steady.to_csv(tmp_path / "log.csv", index=False)
    make_params(*FAST, f"data.path={tmp_path}/log.csv", "tracking.enabled=false")
    for stage in ("ingest", "features", "fit_clv"):
        assert main(["stage", stage]) == 0
    assert main(["stage", "train_churn"]) == 2
    err = capsys.readouterr().err
    assert "single class" in err and "Traceback" not in err
