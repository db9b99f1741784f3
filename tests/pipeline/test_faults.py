"""Fault injection: a real `cvm run` or `cvm retrain` is killed (SIGKILL) right after a named write
point (``CVM_KILL_AT``, :mod:`pipeline.faults`), not by timing luck; then what it left is checked
and the next run must recover.

`cvm run`: a project that completed a run on one log (X) runs again on another log (Y) and is
killed in a stage. Every stage's outputs must then be all of X's run or all of Y's (byte for
byte: the same inputs give the same bytes), the stages before the kill Y's, and the next run must
finish the stage with Y's outputs, leaving no temporaries and no MLflow run ``RUNNING``. X's run
is the suite's run of the sample; Y's runs stage by stage once, each stage on a copy of the
project as the stage before it left it, so a test starts from the copy its stage starts from and
kills the stage's process there instead of running every stage before it again.

`cvm retrain`: killed while publishing, the next `cvm score` (or `cvm retrain`) finds the
champion pair and the scored table moved together.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
from pathlib import Path

import mlflow
import pytest

from pipeline import config, faults, outputs
from pipeline.catalog import Catalog
from pipeline.publication import JOURNAL
from tests.conftest import CDNOW_SAMPLE, REPO, built_once, run_cvm, write_params
from tests.pipeline.test_retrain import FAST, as_of, simulated_history, until, write

pytestmark = pytest.mark.faults

STAGE_OUTPUTS = {
    "ingest": ("clean", "quarantine", "ingest_report"),
    "features": (
        "features_calibration",
        "features_scoring",
        "features_train_calibration",
        "features_train_scoring",
        "features_repeats",
        "features_report",
    ),
    "fit_clv": ("clv_calibration", "clv_scoring", "fit_report"),
    "train_churn": ("churn_calibration", "churn_scoring", "train_report"),
    "evaluate": ("evaluation", "plots"),
    "score": (
        "scored.parquet",
        "scored.csv",
        "scored.schema.json",
        "segments.parquet",
        "segments.csv",
        "score_summary",
    ),
    "report": ("report",),
}
STAGES = tuple(STAGE_OUTPUTS)
SAMPLE = ("data=cdnow_sample", "clv.method=map", "tracking.uri=sqlite:///mlflow.db")


def cvm(
    project: Path,
    *args: str,
    kill_at: str | None = None,
    trace: Path | None = None,
    stop: str | None = None,
):
    """``python -m pipeline ARGS`` in ``project``, killed at ``kill_at`` (or sent the signal
    ``stop`` there)."""
    env = {faults.VARIABLE: kill_at} if kill_at else {}
    env |= {faults.TRACE: str(trace)} if trace else {}
    return run_cvm(project, *args, **env, **({faults.STOP_SIGNAL: stop} if stop else {}))


def use_log(project: Path, log: Path, *overrides: str) -> None:
    write_params(project, *overrides, f"data.path={log}")


def catalog(project: Path) -> Catalog:
    return config.Settings(config.load_params(project / "params.yaml")).catalog.under(project)


def entry(cat: Catalog, name: str) -> Path:
    key, _, suffix = name.partition(".")
    path = getattr(cat, key)
    return path.with_suffix(f".{suffix}") if suffix else path


def fingerprint(path: Path):
    """A file's SHA-256, a directory's files' names and SHA-256s, ``None`` when absent."""
    if path.is_dir():
        return tuple((str(p.relative_to(path)), fingerprint(p)) for p in sorted(path.rglob("*")))
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def fingerprints(project: Path) -> dict[str, tuple]:
    cat = catalog(project)
    return {
        stage: tuple(fingerprint(entry(cat, name)) for name in names)
        for stage, names in STAGE_OUTPUTS.items()
    }


def leftovers(project: Path) -> list[Path]:
    """Temporaries, scratch folders and journals of unfinished writes."""
    cat = catalog(project)
    found = [p for d in cat.directories() if d.is_dir() for p in d.glob(".*") if p != cat.state]
    return found + (list(cat.state.iterdir()) if cat.state.is_dir() else [])


def point(stage: str, kind: str) -> str:
    """The fault point of ``kind`` (``before_commit``, ``renamed:1``) in ``stage``."""
    cat = Catalog.from_paths(config.compose([], REPO / "conf")["paths"])
    target = entry(cat, STAGE_OUTPUTS[stage][0])
    return f"outputs:{kind}:{target.parent.name}/{target.name}"


def runs_with_status(project: Path, status: str = "RUNNING") -> list:
    """The runs of a process (a stage, a retrain) with ``status``; a pipeline execution's own
    run stays open across its stages' processes until the report stage closes it."""
    client = mlflow.MlflowClient(f"sqlite:///{project}/mlflow.db")
    ids = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(ids, f"attributes.status = '{status}'")
    return [run for run in found if "cvm.pid" in run.data.tags]


@pytest.fixture(scope="session")
def two_logs(tmp_path_factory, pipeline_outputs):
    """X: the suite's `cvm run` on the CDNOW sample (``pipeline_outputs``). Y: the sample
    without its last 1,500 lines, run stage by stage on copies of X's project: ``y<k>`` holds
    X's outputs with the first ``k`` stages run again on Y (``y7``: Y's complete run). With the
    fingerprints of both runs' outputs and the fault points Y's stages passed."""

    def build(root: Path) -> None:
        lines = CDNOW_SAMPLE.read_text().splitlines(keepends=True)
        (root / "sample_y.txt").write_text("".join(lines[:-1500]))
        shutil.copytree(pipeline_outputs, root / "y0")
        use_log(root / "y0", root / "sample_y.txt", *SAMPLE)
        for k, stage in enumerate(STAGES):
            shutil.copytree(root / f"y{k}", root / f"y{k + 1}")
            done = cvm(root / f"y{k + 1}", "stage", stage, trace=root / "y.trace")
            assert done.returncode == 0, done.stderr

    root = built_once(tmp_path_factory, "faults_two_logs", build)
    runs = {"x": fingerprints(pipeline_outputs), "y": fingerprints(root / f"y{len(STAGES)}")}
    assert all(runs["x"][s] != runs["y"][s] for s in ("ingest", "fit_clv", "score"))
    points = (root / "y.trace").read_text().splitlines()
    return {"root": root, "y_log": root / "sample_y.txt", "points": points, **runs}


@pytest.mark.parametrize("stage", STAGES)
def test_cvm_run_killed_at_a_write_point_leaves_whole_outputs(two_logs, tmp_path, stage):
    """Killed before the stage's commit, then between its renames: each time the stage's outputs
    are all X's run, then all Y's; the next run finishes the stage."""
    # X's project, the log switched to Y and the stages before this one run on it: what the
    # run killed in this stage had done; the process killed runs this stage (the run itself
    # for the first stage)
    project = tmp_path / "project"
    shutil.copytree(two_logs["root"] / f"y{STAGES.index(stage)}", project)
    assert config.load_params(project / "params.yaml")["data"]["path"] == str(two_logs["y_log"])
    command = ("run",) if stage == STAGES[0] else ("stage", stage)
    before = STAGES[: STAGES.index(stage)]
    for kind, expected in (("before_commit", two_logs["x"]), ("renamed:1", two_logs["y"])):
        where = point(stage, kind)
        assert where in two_logs["points"]  # the point exists and the uninterrupted run passed it
        killed = cvm(project, *command, kill_at=where)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert leftovers(project)  # killed in the middle of a write

        # what every run does first; then each stage's outputs are one run's, whole
        cat = catalog(project)
        outputs.recover(cat.state, cat.directories())
        found = fingerprints(project)
        assert {s: found[s] for s in before} == {s: two_logs["y"][s] for s in before}, kind
        assert found[stage] == expected[stage], kind
        for later in STAGES[STAGES.index(stage) + 1 :]:
            assert found[later] == two_logs["x"][later], kind

    # the next run finishes the stage: Y's outputs, nothing left behind, no run left RUNNING
    again = cvm(project, "stage", stage)
    assert again.returncode == 0, again.stderr
    assert fingerprints(project)[stage] == two_logs["y"][stage]
    assert not leftovers(project)
    assert not runs_with_status(project)
    if command == ("run",):  # the killed `cvm run`s' own parent runs were closed too
        closed = runs_with_status(project, "KILLED")
        assert "pipeline" in {r.data.tags["cvm.stage"] for r in closed}


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_project_moved_or_copied_after_a_kill_finishes_its_own_write(two_logs, tmp_path, how):
    """`cvm run` killed between the renames of the ingest outputs, then the project moved (or
    copied, ``cp -a``): the next command there finishes the write of its own files (the next
    stage runs on Y's whole log), and a copy leaves the original as it was."""
    project = tmp_path / "project"
    shutil.copytree(two_logs["root"] / "y0", project)
    killed = cvm(project, "run", kill_at=point("ingest", "renamed:1"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = fingerprints(project)
    there = tmp_path / how
    if how == "moved":
        project.rename(there)
    else:
        shutil.copytree(project, there, symlinks=True)
    done = cvm(there, "stage", "features")
    assert done.returncode == 0, done.stderr
    found = fingerprints(there)
    assert {s: found[s] for s in STAGES[:2]} == {s: two_logs["y"][s] for s in STAGES[:2]}
    assert not leftovers(there)
    if how == "copied":
        assert fingerprints(project) == before and leftovers(project)


@pytest.mark.parametrize(("stop", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stopped_run_ends_cleanly_and_marks_its_runs_killed(two_logs, tmp_path, stop, code):
    """`systemctl stop` (SIGTERM) or Ctrl-C (SIGINT) in the middle of a stage's write: the
    run says it was interrupted and exits 128 + the signal; the write is undone (the stage's
    outputs are the previous run's, nothing left behind) and no MLflow run stays RUNNING: the
    execution's is KILLED. The next run finishes the stage."""
    project = tmp_path / "project"
    shutil.copytree(two_logs["root"] / "y1", project)
    stopped = cvm(project, "run", kill_at=point("features", "before_commit"), stop=stop)
    assert stopped.returncode == code, stopped.stderr
    assert stopped.stderr.endswith(
        "cvm: interrupted; the outputs are as the last complete write left them\n"
    )
    assert "Traceback" not in stopped.stderr
    found = fingerprints(project)
    assert (
        found["features"] == two_logs["x"]["features"]
        and found["ingest"] == two_logs["y"]["ingest"]
    )
    assert not leftovers(project)
    assert not runs_with_status(project)
    killed = {r.data.tags["cvm.stage"] for r in runs_with_status(project, "KILLED")}
    assert "pipeline" in killed  # the execution's (the stage records its run once written)
    again = cvm(project, "stage", "features")
    assert again.returncode == 0, again.stderr
    assert fingerprints(project)["features"] == two_logs["y"]["features"]


# --------------------------------------------------------------------------------------------
# cvm retrain, killed while publishing
# --------------------------------------------------------------------------------------------

LENIENT = tuple(
    f"retrain.promotion.metrics.{m}.tolerance=1.0"
    for m in ("churn_roc_auc", "churn_brier", "clv_purchases_mae", "clv_purchases_gini")
)
PUBLISH_POINTS = (
    "publish:journal",
    "outputs:before_commit:published/customers.parquet",
    "outputs:renamed:2:published/customers.csv",
    "publish:table",
    "publish:alias:1",
    "publish:alias:3",
)


@pytest.fixture(scope="session")
def champion_project(tmp_path_factory):
    """A project whose first `cvm retrain` promoted champions, and the next week's log (built
    once; a test works on a copy)."""

    def build(root: Path) -> None:
        history = simulated_history(1500, seed=5)
        first = write(until(history, as_of(0)), root / "week0.csv")
        write(until(history, as_of(1)), root / "week1.csv")
        project = root / "project"
        use_log(project, first, *FAST, *LENIENT, "tracking.uri=sqlite:///mlflow.db")
        done = cvm(project, "retrain", "--as-of", str(as_of(0)))
        assert done.returncode == 0, done.stderr

    root = built_once(tmp_path_factory, "faults_champion_project", build)
    return root / "project", root / "week1.csv"


def registry_state(project: Path) -> dict:
    uri = f"sqlite:///{project}/mlflow.db"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    return {n: dict(client.get_registered_model(n).aliases) for n in ("cvm-clv", "cvm-churn")}


def table_labels(project: Path) -> tuple[str, str]:
    import pandas as pd

    table = pd.read_parquet(project / "data/published/customers.parquet")
    return table.clv_model.iloc[0], table.churn_model.iloc[0]


@pytest.mark.parametrize("where", PUBLISH_POINTS)
def test_retrain_killed_while_publishing_moves_champions_with_the_table(
    champion_project, tmp_path, where
):
    origin, log = champion_project
    project = tmp_path / "project"
    shutil.copytree(origin, project)
    before = registry_state(project)
    killed = cvm(project, "retrain", "--as-of", str(as_of(1)), "--log", str(log), kill_at=where)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    lock = project / "artifacts/retrain/cvm.lock"
    assert lock.read_text()  # the dead run's pid is still in the lock file
    assert runs_with_status(project)

    # the next command completes the publication or rolls it back: never a split pair
    scored = cvm(project, "score", "--as-of", str(as_of(1)), "--log", str(log))
    assert scored.returncode == 0, scored.stderr
    after = registry_state(project)
    champions = {n: after[n]["champion"] for n in after}
    assert table_labels(project) == tuple(f"{n}/{v}" for n, v in champions.items())
    assert len(set(champions.values())) == 1  # both from one retraining run
    moved = where not in ("publish:journal", "outputs:before_commit:published/customers.parquet")
    assert (after != before) == moved
    assert not (project / ".cvm" / JOURNAL).exists()
    assert lock.read_text() == ""
    assert not runs_with_status(project)
    killed_runs = runs_with_status(project, "KILLED")
    assert any(r.data.tags.get("cvm.stage") == "retrain" for r in killed_runs)

    if where == PUBLISH_POINTS[-1]:  # and the next retrain runs as usual
        again = cvm(project, "retrain", "--as-of", str(as_of(1)), "--log", str(log))
        assert again.returncode in (0, 4), again.stderr
        assert not leftovers(project)


def test_a_retrain_stopped_while_publishing_rolls_back_and_says_so(champion_project, tmp_path):
    """SIGTERM (a unit stopped, a timeout) after the publication's journal was written: the
    retraining puts the aliases back, records the run as interrupted (KILLED in MLflow) and exits
    143; the table and the champions stay as they were, and `cvm status` names the stop."""
    origin, log = champion_project
    project = tmp_path / "project"
    shutil.copytree(origin, project)
    before = registry_state(project), table_labels(project)
    args = ("retrain", "--as-of", str(as_of(1)), "--log", str(log))
    stopped = cvm(project, *args, kill_at="publish:journal", stop="SIGTERM")
    assert stopped.returncode == 143, stopped.stderr
    assert "interrupted" in stopped.stderr and "Traceback" not in stopped.stderr
    assert (registry_state(project), table_labels(project)) == before
    assert not (project / ".cvm" / JOURNAL).exists() and not runs_with_status(project)
    retrains = [
        r for r in runs_with_status(project, "KILLED") if r.data.tags["cvm.stage"] == "retrain"
    ]
    assert len(retrains) == 1 and retrains[0].data.tags["cvm.exit_code"] == "143"
    status = cvm(project, "status")
    assert status.returncode == 1 and "interrupted" in status.stdout, status.stdout


def test_a_retrain_after_a_killed_publication_removes_its_temporaries(champion_project, tmp_path):
    """The probe: a killed publication left its temporaries beside the published table, which
    only `cvm score` removed."""
    origin, log = champion_project
    project = tmp_path / "project"
    shutil.copytree(origin, project)
    args = ("retrain", "--as-of", str(as_of(1)), "--log", str(log))
    killed = cvm(project, *args, kill_at="outputs:before_commit:published/customers.parquet")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    published = project / "data/published"
    assert list(published.glob(".*"))  # the killed publication's temporaries
    again = cvm(project, *args)
    assert again.returncode in (0, 4), again.stderr
    assert not list(published.glob(".*"))
