"""All-or-nothing outputs: a stage's files appear together or not at all, across a SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import clv_store, config, outputs
from pipeline.cli import main
from pipeline.faults import VARIABLE
from tests.conftest import CDNOW_SAMPLE, REPO, input_roots, run_cvm

WRITER = """
import sys
from pathlib import Path
from pipeline import outputs
root = Path(sys.argv[1])
with outputs.atomic_outputs(root / "a.txt", root / "d", state=root / "state") as (a, d):
    a.write_text("new")
    d.mkdir()
    (d / "inside.txt").write_text("new")
"""


def _old(root: Path) -> None:
    (root / "a.txt").write_text("old")
    (root / "d").mkdir()
    (root / "d" / "inside.txt").write_text("old")


def _contents(root: Path) -> tuple[str, str]:
    return (root / "a.txt").read_text(), (root / "d" / "inside.txt").read_text()


def _killed_writer(root: Path, point: str) -> None:
    env = os.environ | {VARIABLE: point, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", WRITER, str(root)], env=env, cwd=REPO)
    assert done.returncode == -signal.SIGKILL


def test_a_failure_in_the_block_leaves_the_previous_outputs(tmp_path):
    _old(tmp_path)
    with (
        pytest.raises(RuntimeError),
        outputs.atomic_outputs(tmp_path / "a.txt", tmp_path / "d", state=tmp_path / "state") as (
            a,
            _,
        ),
    ):
        a.write_text("new")
        raise RuntimeError("the second output failed")
    assert _contents(tmp_path) == ("old", "old")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


def test_a_directory_is_not_replaced_by_a_file(tmp_path):
    (tmp_path / "a.txt").mkdir()
    with (
        pytest.raises(OSError, match="is a directory"),
        outputs.atomic_outputs(tmp_path / "a.txt", state=tmp_path / "state") as (a,),
    ):
        a.write_text("new")
    assert (tmp_path / "a.txt").is_dir()


def test_killed_before_the_commit_the_previous_set_stays_and_leftovers_go(tmp_path):
    _old(tmp_path)
    _killed_writer(tmp_path, "outputs:before_commit")
    assert _contents(tmp_path) == ("old", "old")
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert len(leftovers) == 2  # the two complete temporaries of the dead process
    done = outputs.recover(tmp_path / "state", [tmp_path])
    assert len(done) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


def test_killed_between_renames_the_next_run_completes_the_new_set(tmp_path):
    _old(tmp_path)
    _killed_writer(tmp_path, "outputs:renamed:1")
    assert _contents(tmp_path) == ("new", "old")  # the mixture the journal repairs
    outputs.recover(tmp_path / "state", [tmp_path])
    assert _contents(tmp_path) == ("new", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d", "state"]
    assert list((tmp_path / "state").iterdir()) == []


@pytest.fixture
def fitted_project(pipeline_outputs, make_params, tmp_path):
    """The CDNOW sample through fit_clv (the purchase models chosen out of time, MAP: a copy of
    the suite's run of it), and params for a Pareto/NBD refit."""
    common = ("data=cdnow_sample", f"data.path={CDNOW_SAMPLE}", "tracking.enabled=false")
    shutil.copytree(
        pipeline_outputs,
        tmp_path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("mlflow.db", "mlruns", "params.yaml"),
    )
    params = make_params(*common, "clv.method=map")
    assert "pareto_nbd" not in _kinds(tmp_path)
    overrides = [
        input_roots(tmp_path),
        *common,
        "clv.method=map",
        "clv.model=pareto_nbd",
        "clv.season=false",
    ]
    other = config.compose(overrides, REPO / "conf")
    config.write_params(other, params.parent / "pareto.yaml")
    return params.parent


def _fit_killed_at(project: Path, point: str) -> None:
    done = run_cvm(project, "stage", "fit_clv", "--params", "pareto.yaml", **{VARIABLE: point})
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _kinds(project: Path) -> tuple[str, str, str]:
    clv = project / "artifacts" / "clv"
    report = json.loads((clv / "fit_report.json").read_text())
    return (
        clv_store.load(clv / "calibration").purchase.name,
        clv_store.load(clv / "scoring").purchase.name,
        report["model"],
    )


def test_fit_clv_killed_before_its_commit_leaves_the_previous_pair(fitted_project):
    before = _kinds(fitted_project)
    _fit_killed_at(fitted_project, "outputs:before_commit")
    assert _kinds(fitted_project) == before
    assert main(["stage", "features"]) == 0  # any next stage run cleans up first
    assert not list((fitted_project / "artifacts" / "clv").glob(".*"))


def test_fit_clv_killed_between_its_model_files_is_completed_by_the_next_run(fitted_project):
    before = _kinds(fitted_project)
    _fit_killed_at(fitted_project, "outputs:renamed:1")
    clv = fitted_project / "artifacts" / "clv"
    assert clv_store.load(clv / "calibration").purchase.name == "pareto_nbd"
    assert clv_store.load(clv / "scoring").purchase.name == before[1]  # mixed until recovery
    assert main(["stage", "features"]) == 0  # any next stage run completes the commit first
    assert _kinds(fitted_project) == ("pareto_nbd", "pareto_nbd", "pareto_nbd")
    assert not list(clv.glob(".*"))
