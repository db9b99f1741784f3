"""ingest and features on the bundled CDNOW sample, recorded in a real MLflow store."""

import json

import mlflow
import pandas as pd
import pytest

from pipeline.cli import main
from tests.conftest import CDNOW_SAMPLE


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cdnow")
    mp = pytest.MonkeyPatch()
    from pipeline import config
    from tests.conftest import REPO

    cfg = config.compose(
        [
            "data=cdnow_sample",
            f"data.path={CDNOW_SAMPLE}",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        ],
        REPO / "conf",
    )
    config.write_params(cfg, tmp / "params.yaml")
    mp.chdir(tmp)
    assert main(["run"]) == 0
    yield tmp
    mp.undo()


def test_ingest_keeps_every_sample_row(sample_run):
    report = json.loads((sample_run / "data/interim/ingest_report.json").read_text())
    assert report["rows_read"] == 6919 == report["rows_kept"] + report["rows_quarantined"]
    assert report["customers"] == 2357
    assert report["total_amount"] == pytest.approx(244091.94, abs=0.01)


def test_feature_tables_cover_every_customer(sample_run):
    cal = pd.read_parquet(sample_run / "data/features/calibration.parquet")
    scoring = pd.read_parquet(sample_run / "data/features/scoring.parquet")
    train = pd.read_parquet(sample_run / "data/features/train_calibration.parquet")
    assert len(cal) == len(scoring) == 2357
    assert cal.frequency.sum() == 2457 and cal.holdout_purchases.sum() == 1882
    assert cal.churned.notna().all() and scoring["T"].max() == pytest.approx(
        545 / 7
    )  # 1997-01-01 to 1998-06-30
    # training cutoffs leave the whole churn window before the calibration cutoff
    cutoffs = pd.to_datetime(train.cutoff)
    assert (cutoffs + pd.Timedelta(days=180) <= pd.Timestamp("1997-09-30")).all()
    assert cutoffs.nunique() == 4
    assert not cal.isna()[["frequency", "recency", "T", "monetary_value"]].any().any()


def test_each_stage_is_recorded_in_mlflow(sample_run):
    client = mlflow.MlflowClient(f"sqlite:///{sample_run}/mlflow.db")
    exp = client.get_experiment_by_name("cvm")
    runs = {r.data.tags["cvm.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"ingest", "features", "fit_clv"}
    ingest = runs["ingest"]
    assert ingest.data.metrics["rows_read"] == 6919
    assert ingest.data.params["mapping.amount"] == "dollar_value"
    artifacts = [a.path for a in client.list_artifacts(ingest.info.run_id)]
    assert "ingest_report.json" in artifacts
    assert runs["features"].data.metrics["calibration_rows"] == 2357
    assert runs["features"].data.params["features.time_unit"] == "weeks"
