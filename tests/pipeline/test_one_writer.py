"""One writer per project: `cvm run`, `cvm stage`, `cvm retrain` and `cvm score` share one lock,
so two runs in one folder never mix their outputs or their MLflow records."""

from __future__ import annotations

import os
import threading
import time

import pytest

from pipeline import lock
from pipeline.cli import main
from tests.conftest import CDNOW_MASTER, CDNOW_SAMPLE
from tests.cvm_forks import start_holding_the_lock

SAMPLE = ("data=cdnow_sample", f"data.path={CDNOW_SAMPLE}", "clv.method=map")


@pytest.mark.parametrize(
    "command", [["run"], ["stage", "ingest"], ["stage", "report"], ["score"], ["retrain"]]
)
def test_a_command_exits_5_naming_the_holder_and_writes_nothing(
    make_params, tmp_path, capsys, command
):
    make_params(*SAMPLE)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}  # params.yaml, the store
    with lock.exclusive(tmp_path / "artifacts/retrain/cvm.lock", "cvm run"):
        assert main(command) == 5
    err = capsys.readouterr().err
    assert f"is locked by `cvm run` (pid {os.getpid()} on " in err
    assert "another cvm run is in progress; this one did nothing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files, "artifacts"])
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


def test_a_stage_waits_for_the_holder_with_wait(make_params, tmp_path):
    make_params(*SAMPLE, "tracking.enabled=false")
    held, released = threading.Event(), []

    def hold() -> None:
        with lock.exclusive(tmp_path / "artifacts/retrain/cvm.lock", "cvm retrain"):
            held.set()
            time.sleep(1.0)
            released.append(time.time())

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    assert main(["stage", "ingest", "--wait", "60"]) == 0
    holder.join()
    clean = tmp_path / "data/interim/transactions.parquet"
    assert clean.stat().st_mtime >= released[0]  # written after the holder let go


@pytest.mark.slow  # a stage of its own on the master log
def test_a_second_run_in_the_folder_exits_while_the_first_runs(make_params, tmp_path, capsys):
    """The probe: two `cvm run`s with different params in one folder both exited 0, and one
    run's MLflow record carried the other's metrics."""
    params = make_params(f"data.path={CDNOW_MASTER}", "tracking.enabled=false")
    lock_file = tmp_path / "artifacts/retrain/cvm.lock"
    first = start_holding_the_lock(tmp_path, lock_file, "stage", "ingest", "--params", str(params))
    try:
        assert main(["run", "--params", str(params)]) == 5
        assert f"`cvm stage ingest` (pid {first.pid} on" in capsys.readouterr().err
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert lock_file.read_text() == ""
