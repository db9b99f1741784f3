"""Credentials never reach MLflow, messages or summaries; params.yaml holds no password."""

from __future__ import annotations

import shutil

import mlflow
import pytest

from pipeline import tracking
from pipeline.credentials import has_password, redact
from tests.conftest import REPO, run_cvm


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://ann:hunter2@db:5432/crm", "postgresql://ann:***@db:5432/crm"),
        ("postgresql://ann:p@ss@db/crm", "postgresql://ann:***@db/crm"),
        ("cannot reach 'mysql://u:hunter2@h/x' now", "cannot reach 'mysql://u:***@h/x' now"),
        (
            "postgresql://db/crm?sslmode=require&password=hunter2",
            "postgresql://db/crm?sslmode=require&password=***",
        ),
        ("postgresql://db/crm?PASSWORD=hunter2&x=1", "postgresql://db/crm?PASSWORD=***&x=1"),
        ("postgresql://ann@db:5432/crm", "postgresql://ann@db:5432/crm"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql://postgres:@/postgres?host=/tmp/pg",
        ),
        ("duckdb:///data/published/customers.duckdb", "duckdb:///data/published/customers.duckdb"),
        ("a time 12:30@noon, no URL", "a time 12:30@noon, no URL"),
    ],
)
def test_a_password_in_a_url_is_masked_and_nothing_else(text, expected):
    assert redact(text) == expected
    assert has_password(text) == (text != expected)


@pytest.mark.parametrize(
    "url", ["postgresql://ann:hunter2@db:5432/crm", "postgresql://db/crm?password=hunter2"]
)
def test_cvm_params_refuses_a_password_in_the_export_url_without_printing_it(tmp_path, url):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    done = run_cvm(tmp_path, "params", f"export.database.url='{url}'")
    assert done.returncode == 2
    assert "hunter2" not in done.stderr + done.stdout
    assert f"export.database.url is '{redact(url)}'; expected a URL without a password" in (
        done.stderr
    )
    assert "PGPASSWORD" in done.stderr
    assert not (tmp_path / "params.yaml").exists()


def test_a_bad_url_is_named_without_its_password(tmp_path):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    done = run_cvm(tmp_path, "params", "export.database.url='mysql://ann:hunter2@db/crm'")
    assert done.returncode == 2
    assert "hunter2" not in done.stderr and "mysql://ann:***@db/crm" in done.stderr


def test_mlflow_records_no_password(tmp_path):
    """Whatever the config holds (a tracking store's URL may carry one), the parameters MLflow
    records of a pipeline execution mask it."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    params = {
        "tracking": {"uri": store, "note": "postgresql://ann:hunter2@db/mlflow"},
        "export": {"database": {"url": "postgresql://db/crm?password=hunter2"}},
    }
    config = {"enabled": True, "uri": store, "registry_uri": None, "experiment": "cvm"}
    tracker = tracking.pipeline_tracker(config, params)
    run = mlflow.MlflowClient(store).get_run(tracker.parent_run_id)
    assert run.data.params["tracking.note"] == "postgresql://ann:***@db/mlflow"
    assert run.data.params["export.database.url"] == "postgresql://db/crm?password=***"
    assert not any("hunter2" in v for v in run.data.params.values())
