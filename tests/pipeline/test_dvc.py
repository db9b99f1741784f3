"""The DVC pipeline: a real `dvc repro` on the CDNOW sample, caching, and `dvc exp run -S`."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import CDNOW_SAMPLE, REPO, built_once
from tests.cvm_forks import command_on_path
from tests.pipeline.test_faults import STAGES, fingerprints

pytestmark = [pytest.mark.dvc, pytest.mark.xdist_group("dvc")]

PROJECT_FILES = [
    "conf",
    "features",
    "models",
    "pipeline",
    "data/raw",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
]


def sh(cwd: Path, *cmd: str) -> str:
    """``cmd`` run in ``cwd``; the `cvm` it (or the stages DVC runs) starts is a child of the
    tests' fork server (:mod:`tests.cvm_forks`): the stages as `cvm` runs them, without a fresh
    interpreter importing the pipeline for each."""
    path = f"{command_on_path()}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def copy_project(root: Path) -> None:
    """The project's pipeline files (``PROJECT_FILES``) copied into ``root``."""
    for name in PROJECT_FILES:
        src, dst = REPO / name, root / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def git_commit(root: Path, message: str) -> None:
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def _build_experiment(root: Path) -> None:
    """A git repository of the project's pipeline files, made to run on the CDNOW sample (MAP
    fits) by `cvm params` (the MLflow store is relative, so it lands here): `dvc repro`, `dvc
    repro` again, both outputs kept in ``.out/`` with the fingerprints of what the first wrote;
    the results committed;
    then `dvc exp run -S churn.num_leaves=15` (named ``leaves15``, its output kept too) left in
    the workspace."""
    copy_project(root)
    # the project's choices, which `dvc exp run -S` composes conf/ with too (the installed
    # command itself)
    sh(
        root,
        str(Path(sys.executable).parent / "cvm"),
        "params",
        "data=cdnow_sample",
        "clv.method=map",
    )
    sh(root, "git", "init", "-q")
    (root / ".git/info/exclude").write_text(".out/\n")
    git_commit(root, "project")
    out = root / ".out"
    out.mkdir()
    (out / "repro.txt").write_text(sh(root, "dvc", "repro"))
    (out / "repro_fingerprints.json").write_text(json.dumps(fingerprints(root)))
    (out / "repro_again.txt").write_text(sh(root, "dvc", "repro"))
    git_commit(root, "results")
    exp = sh(root, "dvc", "exp", "run", "-n", "leaves15", "-S", "churn.num_leaves=15")
    (out / "leaves15.txt").write_text(exp)


def sample_experiment(tmp_path_factory) -> Path:
    """The project of ``_build_experiment``, built once for the DVC tests (which only read it,
    or copy it)."""
    return built_once(tmp_path_factory, "dvc_sample_experiment", _build_experiment)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return sample_experiment(tmp_path_factory)


def test_repro_runs_the_cdnow_sample_then_does_nothing(project):
    out = (project / ".out/repro.txt").read_text()
    assert "Running stage 'ingest'" in out and "Running stage 'features'" in out
    report = json.loads((project / "data/interim/ingest_report.json").read_text())
    assert report["rows_read"] == 6919 == report["rows_kept"] + report["rows_quarantined"]
    assert report["customers"] == 2357
    again = (project / ".out/repro_again.txt").read_text()
    assert "Running stage" not in again and "up to date" in again


def test_repro_writes_the_bytes_cvm_run_writes(project, pipeline_outputs):
    """Two runs from scratch in two folders, `dvc repro` and the suite's `cvm run`, write the
    same bytes; only the ingest report names the log as each was told (relative, absolute)."""
    written = json.loads((project / ".out/repro_fingerprints.json").read_text())
    expected = json.loads(json.dumps(fingerprints(pipeline_outputs)))
    assert set(written) == set(STAGES)
    for stage in STAGES:
        if stage != "ingest":
            assert written[stage] == expected[stage], stage
    assert written["ingest"][:2] == expected["ingest"][:2]  # the clean log, the quarantine
    reports = [
        json.loads((p / "data/interim/ingest_report.json").read_text())
        for p in (project, pipeline_outputs)
    ]
    assert reports[0].pop("source") == "data/raw/cdnow/CDNOW_sample.txt"
    assert reports[1].pop("source") == str(CDNOW_SAMPLE)
    assert reports[0] == reports[1]
    parquet = [p for p in pipeline_outputs.rglob("*.parquet") if ".cvm" not in p.parts]
    assert len(parquet) >= 8  # the clean log, the quarantine, five feature tables, the table


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


def test_a_churn_knob_reruns_only_what_follows_the_churn_model(project):
    """... on the project's log: `dvc exp run` recomposed params.yaml with the project's
    choices (the probe: it ran on CDNOW, conf/'s default)."""
    out = (project / ".out/leaves15.txt").read_text()  # `dvc exp run -S churn.num_leaves=15`
    assert ran(out) == {"train_churn", "evaluate", "score", "report"}
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["churn"]["num_leaves"] == 15
    assert (params["data"]["name"], params["clv"]["method"]) == ("cdnow_sample", "map")
    scored = project / "data/scored/customers.parquet"
    assert scored.is_file()
    # the experiment's MLflow runs: one execution run naming the experiment and the revision,
    # the four stage runs its children; no model registered, no published table touched
    names = sh(project, "dvc", "exp", "list", "--name-only").split()
    head = sh(project, "git", "rev-parse", "HEAD").strip()
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlflow.db")
    experiment = client.get_experiment_by_name("cvm").experiment_id
    (parent,) = client.search_runs(
        [experiment], f"tags.`cvm.stage` = 'pipeline' and tags.`cvm.dvc_experiment` = '{names[-1]}'"
    )
    assert parent.data.tags["mlflow.source.git.commit"] == head
    assert parent.data.params["churn.num_leaves"] == "15"
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.data.tags["cvm.stage"] for c in children} == ran(out)
    assert all(c.data.tags["cvm.dvc_experiment"] == names[-1] for c in children)
    assert client.search_registered_models() == []
    assert not (project / "data/published").exists()


def test_a_features_knob_reruns_features_and_leaves_what_follows_stale(project, tmp_path):
    """The experiment runs up to the features stage (what follows it runs as the churn knob's
    experiment shows); DVC then finds every stage reading the features (or the knob: the
    report's glossary states the churn horizon) stale, and nothing else."""
    project = shutil.copytree(project, tmp_path / "project", symlinks=True)
    git_commit(project, "lock")
    out = sh(project, "dvc", "exp", "run", "-S", "features.churn_horizon_days=90", "features")
    assert ran(out) == {"features"}
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["features"]["churn_horizon_days"] == 90
    report = json.loads((project / "data/features/report.json").read_text())
    assert report["train_cutoffs"]["calibration"][0] == "1997-07-02"  # 90 days before 1997-09-30
    stale = json.loads(sh(project, "dvc", "status", "--json"))
    assert set(stale) == {"fit_clv", "train_churn", "evaluate", "score", "report"}


def test_an_experiment_on_another_log_stops_at_its_first_stage(project, tmp_path):
    """`dvc exp run -S data=cdnow` in the project set to the sample: the ingest stage stops
    before it reads anything, naming both logs; nothing after it ran, and `git checkout .` and
    `dvc checkout` give the workspace back (DVC set the stage's outputs aside before it started
    it)."""
    project = shutil.copytree(project, tmp_path / "project", symlinks=True)
    git_commit(project, "lock")
    before = fingerprints(project)
    path = f"{command_on_path()}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    done = subprocess.run(
        ["dvc", "exp", "run", "-S", "data=cdnow"],
        cwd=project,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert (
        "cvm: error: params.yaml reads the log cdnow (data/raw/cdnow/CDNOW_master.txt), but this "
        "project's log is cdnow_sample (data/raw/cdnow/CDNOW_sample.txt)" in done.stderr
    ), done.stderr
    assert ran(done.stdout + done.stderr) == {"ingest"}
    sh(project, "git", "checkout", ".")
    sh(project, "dvc", "checkout")
    assert fingerprints(project) == before


def test_checkout_gives_back_the_baseline_s_outputs_report_too(project, tmp_path):
    """The probe: after `git checkout . && dvc checkout`, reports/report.html still showed the
    experiment (``cache: false``, not in git), and `dvc status` called it modified until a
    `dvc repro`. It is in DVC's cache now, restored with the rest."""
    project = shutil.copytree(project, tmp_path / "project", symlinks=True)
    lock = yaml.safe_load(sh(project, "git", "show", "HEAD:dvc.lock"))
    (report,) = [o for o in lock["stages"]["report"]["outs"] if o["path"].endswith(".html")]
    experiment = (project / report["path"]).read_bytes()
    sh(project, "git", "checkout", ".")
    sh(project, "dvc", "checkout")
    assert hashlib.md5((project / report["path"]).read_bytes()).hexdigest() == report["md5"]
    assert (project / report["path"]).read_bytes() != experiment
    assert "up to date" in sh(project, "dvc", "status")
