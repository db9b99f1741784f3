"""A season and the purchase model chosen out of time, through the real stages: on a seasonal
log the choice is seasonal and forecasts the quiet months; a season asked for is refused where
the log holds less than a year before the cutoff."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from pipeline.cli import main
from tests.conftest import REPO, SAMPLE_RUN, run_cvm, write_params

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_seasonal_log_gets_a_seasonal_model_chosen_out_of_time(tmp_path, monkeypatch):
    cutoff = "2025-07-31"  # the quiet months follow: a stationary model runs high there
    suite = {
        "out": str(tmp_path / "backtest.json"),
        "work_dir": str(tmp_path / "work"),
        "overrides": [
            "clv.method=map",
            "clv=auto",
            "clv.candidates=[bgnbd,mbgcnbd]",  # two of the family: each with and without a season
            "tracking.enabled=false",
            "features.train_cutoffs=3",
            "churn.n_estimators=200",
        ],
        "logs": {
            "seasonal": {
                "simulate": {
                    "customers": 6000,
                    "cohort_days": 540,
                    "horizon_days": 800,
                    "seasonality": 0.5,
                    "seed": 5,
                },
                "overrides": ["data=simulated"],
                "cutoffs": [cutoff],
            }
        },
    }
    path = tmp_path / "seasonal.yaml"
    path.write_text(yaml.safe_dump(suite))
    monkeypatch.chdir(REPO)  # the project's conf/; every output goes to tmp_path
    assert main(["backtest", "--suite", str(path)]) == 0
    (case,) = json.loads((tmp_path / "backtest.json").read_text())["cases"]
    assert abs(case["clv"]["purchases"]["aggregate_error_pct"]) < 10
    assert case["clv_model"].endswith("+season")
    (report,) = (tmp_path / "work").rglob("fit_report.json")
    fits = json.loads(report.read_text())
    assert fits["model"] == "auto"
    for name in ("calibration", "scoring"):
        fit, choice = fits[name], fits[name]["choice"]
        assert fit["season"]["amplitude"] == pytest.approx(0.5, abs=0.1)
        assert choice["season"] is True and choice["choice"] == fit["model"]
        assert len(choice["scores"]) == 4 and choice["reason"]


def test_a_season_is_refused_on_less_than_a_year_of_history(pipeline_outputs, tmp_path):
    """A named model on the seasonal clock is refused at the fit's cutoff; the seasonal
    candidates of the choice (the default) at the validation cutoff, where they are scored."""
    project = tmp_path / "project"
    shutil.copytree(pipeline_outputs, project)
    fit_report = (project / "artifacts/clv/fit_report.json").read_bytes()
    write_params(project, *SAMPLE_RUN, "clv=bgnbd", "clv.season=true")
    done = run_cvm(project, "stage", "fit_clv")
    assert done.returncode == 2
    assert "cvm: error: fit_clv (calibration fit, 2,357 customers): clv.season: a yearly " in (
        done.stderr
    )
    assert "before the cutoff 1997-09-30; the log starts 1997-01-01 (272 days)" in done.stderr
    assert "Traceback" not in done.stderr
    assert (project / "artifacts/clv/fit_report.json").read_bytes() == fit_report
    write_params(project, *SAMPLE_RUN, "clv.season=true")
    done = run_cvm(project, "stage", "fit_clv")
    assert done.returncode == 2
    assert (
        "cvm: error: fit_clv (calibration fit): the purchase model cannot be chosen at the "
        "validation cutoff 1997-04-03 (2,357 customers): clv.season: a yearly season needs at "
        "least 365 days of history before the cutoff 1997-04-03; the log starts 1997-01-01 (92 "
        "days); with clv.season=auto the candidates without a season compete too"
    ) in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
    assert (project / "artifacts/clv/fit_report.json").read_bytes() == fit_report
