"""A project moved to another folder finds its runs and registered models, and writes new runs
into its own ``mlruns/``, not the old place. The project: a copy of the suite's `cvm run` on the
sample (``pipeline_outputs``, models registered), repointed where it was copied."""

import shutil

import mlflow
import pandas as pd
import pytest

from pipeline import config
from pipeline.relocate import relocate
from tests.conftest import run_cvm

pytestmark = pytest.mark.e2e


def cvm(project, *args):
    done = run_cvm(project, *args)
    assert done.returncode == 0, done.stderr


def test_a_moved_project_reads_its_models_and_writes_runs_in_place(pipeline_outputs, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(pipeline_outputs, old)
    cfg = config.load_params(old / "params.yaml")
    assert cfg["tracking"]["uri"] == "sqlite:///mlflow.db"  # the project's own store
    assert cfg["tracking"]["register"]
    # the copy's runs and models are repointed to it: the project as if it had run in ``old``
    assert relocate(f"sqlite:///{old}/mlflow.db") == str(pipeline_outputs.resolve() / "mlruns")
    shutil.move(old, new)

    cvm(new, "stage", "report")  # a command in the moved project
    assert not old.exists()  # nothing was written to the old place
    uri = f"sqlite:///{new}/mlflow.db"
    assert relocate(uri) is None  # repointed once, by the first command
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("cvm")
    assert experiment.artifact_location == str(new / "mlruns" / experiment.experiment_id)
    (report,) = client.search_runs(
        [experiment.experiment_id],
        "tags.`cvm.stage` = 'report'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert report.info.artifact_uri.startswith(str(new / "mlruns"))
    assert "report.html" in [a.path for a in client.list_artifacts(report.info.run_id)]

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/cvm-clv/1")  # saved before the move
    features = pd.read_parquet(new / "data/features/scoring.parquet").head(20)
    assert len(model.predict(features)) == 20


def test_mlflow_s_schema_still_has_every_column_relocate_updates(tmp_path):
    """relocate.py writes MLflow's private SQLite schema: an MLflow release that renames or
    drops one of those columns must fail here, before a moved project loses its models."""
    import sqlite3

    import mlflow

    from pipeline.relocate import COLUMNS

    database = tmp_path / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{database}").search_experiments()  # creates the schema
    with sqlite3.connect(database) as con:
        present = {
            (table, row[1])
            for table in {t for t, _ in COLUMNS}
            for row in con.execute(f"PRAGMA table_info({table})")
        }
    missing = [f"{table}.{column}" for table, column in COLUMNS if (table, column) not in present]
    assert not missing, f"MLflow {mlflow.__version__} has no {missing}: update pipeline/relocate.py"
