"""Failures a user causes (a full disk, a file in the way, a locked or damaged MLflow store, a
registered model whose files are gone, a log whose every row is quarantined): `cvm: error:`
naming what and how to mend it, exit 2, the previous outputs intact. Never a traceback."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.cli import main
from pipeline.errors import explain
from tests.conftest import CSV_MAPPING, REPO, run_cvm

pytestmark = pytest.mark.e2e


def _outputs(project: Path, folder: str) -> dict[str, tuple[int, bytes]]:
    """The files of a folder of the project: inode and bytes (a replaced file has another)."""
    return {
        str(p.relative_to(project)): (p.stat().st_ino, p.read_bytes())
        for p in sorted((project / folder).rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def project(pipeline_outputs, tmp_path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(pipeline_outputs, copy)
    return copy


def _fail(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("cvm: error:") and all(w in last for w in words), last
    return last


def test_a_write_the_disk_refuses_leaves_the_previous_outputs(project):
    """The features stage cannot write its tables (a file-size limit makes every large write
    fail, as a full disk would): the message names the file and the cause."""
    before = _outputs(project, "data/features")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tracking"]["enabled"] = False  # the store's file would hit the limit first
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "stage", "features"],
        cwd=project,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        preexec_fn=limited,
        capture_output=True,
        text=True,
    )
    _fail(done, "File too large", "the previous outputs are intact")
    assert _outputs(project, "data/features") == before


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_what_the_operating_system_refuses_is_named_with_what_to_do(code, words):
    message = explain(OSError(code, os.strerror(code), "data/scored/customers.parquet"))
    assert message.startswith("data/scored/customers.parquet: " + os.strerror(code))
    assert words in message
    assert explain(KeyError("a bug")) is None  # a bug keeps its traceback


def test_a_file_in_the_way_of_an_output_folder_is_named(project):
    (project / "blocked").write_text("a file, not a folder")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["paths"]["scored"] = "blocked/customers"
    params["paths"]["segments"] = "blocked/segments"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    _fail(run_cvm(project, "stage", "score"), "blocked", "a file stands where a folder is needed")


@pytest.mark.parametrize("damage", ["truncated", "locked"])
def test_a_damaged_or_locked_tracking_store_is_named(project, damage):
    store = project / "mlflow.db"
    before = _outputs(project, "reports")
    holder = None
    if damage == "truncated":
        with store.open("r+b") as f:
            f.truncate(store.stat().st_size // 2)
    else:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_SQLITE, str(store)], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout.readline() == "holding\n"
    try:
        last = _fail(run_cvm(project, "stage", "evaluate"), "MLflow tracking store")
    finally:
        if holder:
            holder.kill()
            holder.wait()
    hint = "damaged" if damage == "truncated" else "another process holds it"
    assert hint in last
    assert _outputs(project, "reports") == before


HOLD_SQLITE = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("holding", flush=True)
time.sleep(600)
"""


def test_a_champion_whose_files_are_gone_is_named(project):
    uri = f"sqlite:///{project}/mlflow.db"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    for name in ("cvm-clv", "cvm-churn"):
        client.set_registered_model_alias(name, "champion", "1")
    model_id = client.get_model_version("cvm-clv", "1").source.removeprefix("models:/")
    (files,) = project.glob(f"mlruns/*/models/{model_id}/artifacts")
    shutil.rmtree(files)  # the artifact store cleaned by hand
    _fail(run_cvm(project, "score"), "cvm-clv version", "cannot be loaded", "cvm retrain")


def test_a_log_whose_every_row_is_quarantined_stops_before_the_features(make_params, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("cust,when,value,qty\n" + "c1,2024-01-05,n/a,1\n" * 3)
    make_params(f"data.path={log}", *CSV_MAPPING)
    assert main(["stage", "ingest"]) == 0  # the quarantine is there to read
    done = run_cvm(tmp_path, "stage", "features")
    _fail(done, "holds no transaction", "every row", "non_numeric_amount 3", "quarantine")
    assert not (tmp_path / "data/features").exists()
