"""No output may touch an input, another output or the code: the paths are checked when the
config is composed (`cvm params`), when a command loads it and against `--log` and `--out`,
before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline import config, config_check, path_check
from pipeline.cli import main
from pipeline.errors import CvmError
from tests.conftest import CDNOW_SAMPLE, REPO, run_cvm


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (its conf/ and the sample log in data/raw/cdnow/) as the working
    directory."""
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    raw = tmp_path / "data/raw/cdnow"
    raw.mkdir(parents=True)
    shutil.copy(CDNOW_SAMPLE, raw / CDNOW_SAMPLE.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


LOG = f"data/raw/cdnow/{CDNOW_SAMPLE.name}"


def problems(root: Path, *overrides: str) -> list[str]:
    composed = config.compose(
        ["data=cdnow_sample", f"data.path={LOG}", *overrides], REPO / "conf", validate=False
    )
    return path_check.problems(config_check.validate(composed), root)


def write_sample_params(project: Path) -> None:
    """`cvm params data=cdnow_sample` in ``project`` (the working directory)."""
    config.make_params(["data=cdnow_sample"])


def test_the_committed_paths_are_clear_of_each_other_and_of_the_code():
    tree = yaml.safe_load((REPO / "params.yaml").read_text())
    assert path_check.problems(config_check.validate(tree), REPO) == []


def test_cvm_params_refuses_a_plot_folder_on_the_log_s_folder_and_writes_nothing(project):
    """The probe: evaluate replaced the log's folder with plot files and exited 0."""
    done = run_cvm(project, "params", "data=cdnow_sample", "paths.plots=data/raw/cdnow")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "cvm: error: conf with data=cdnow_sample paths.plots=data/raw/cdnow: paths.plots is "
        f"'data/raw/cdnow'; it contains the input data.path ('{LOG}'): an output may not equal "
        "or contain an input\n"
    )
    assert not (project / "params.yaml").exists()


def test_a_stage_refuses_a_params_file_edited_to_write_over_the_log(project):
    params = config.compose(["data=cdnow_sample"], REPO / "conf")
    params["paths"]["plots"] = "data/raw/cdnow"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    log = project / LOG
    before = log.read_bytes()
    with pytest.raises(CvmError, match=r"paths\.plots is 'data/raw/cdnow'; it contains the input"):
        config.load_params(project / "params.yaml")
    assert main(["stage", "evaluate"]) == 2
    assert sorted(p.name for p in log.parent.iterdir()) == [log.name]
    assert log.read_bytes() == before


def test_a_symlink_to_the_log_s_folder_is_seen_through(project):
    (project / "plots").symlink_to(project / "data/raw/cdnow")
    found = problems(project, "paths.plots=plots")
    assert found == [
        f"paths.plots is 'plots'; it contains the input data.path ('{LOG}'): an output may not "
        "equal or contain an input"
    ]


def test_a_log_outside_the_project_is_read_only_from_a_declared_folder(project, tmp_path_factory):
    """The probe: a crafted data config read a system file as a log."""
    found = problems(project, "data.path=/etc/passwd")
    assert found == [
        f"data.path is '/etc/passwd'; expected a log inside the project folder ({project}) or "
        "under paths.input_roots (add the folder it lies in)"
    ]
    elsewhere = tmp_path_factory.mktemp("exports")
    log = elsewhere / "log.csv"
    assert len(problems(project, f"data.path={log}")) == 1
    assert problems(project, f"data.path={log}", f"paths.input_roots=['{elsewhere}']") == []
    # --log too
    write_sample_params(project)
    with pytest.raises(CvmError, match="--log is '/etc/shadow'; expected a log inside"):
        config.check_paths(config.load_params(project / "params.yaml"), Path("/etc/shadow"))
    done = run_cvm(project, "params", "data=cdnow_sample", "data.path=/etc/shadow")
    assert done.returncode == 2 and "paths.input_roots" in done.stderr, done.stderr


def test_outputs_stay_inside_the_project_unless_a_root_is_declared(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    found = problems(project, f"paths.clean={elsewhere}/clean.parquet")
    assert found == [
        f"paths.clean is '{elsewhere}/clean.parquet'; expected a path inside the project folder "
        f"({project}) or under paths.output_roots"
    ]
    assert (
        problems(
            project, f"paths.clean={elsewhere}/clean.parquet", f"paths.output_roots=['{elsewhere}']"
        )
        == []
    )
    # a store named by a URL may lie anywhere clear of the inputs and the code
    assert problems(project, f"tracking.uri=sqlite:///{elsewhere}/mlflow.db") == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "paths.report=reports/plots/report.html",
            "paths.plots is 'reports/plots'; it contains paths.report ('reports/plots/report.html')"
            ": two outputs may not share a path",
        ),
        (
            "paths.quarantine=data/interim/transactions.parquet",
            "paths.clean is 'data/interim/transactions.parquet'; it equals paths.quarantine "
            "('data/interim/transactions.parquet'): two outputs may not share a path",
        ),
        (
            "retrain.scored=data/scored/customers",  # the pipeline's table: allowed, the same
            None,
        ),
        (
            "retrain.summary=data/scored/customers.csv",
            "paths.scored (.csv) is 'data/scored/customers.csv'; it equals retrain.summary "
            "('data/scored/customers.csv'): two outputs may not share a path",
        ),
        (
            "retrain.work_dir=.",
            "retrain.work_dir is '.'; expected a path inside the project folder, not it",
        ),
        (
            "paths.state=conf/state",
            "paths.state is 'conf/state'; it lies inside the project's conf",
        ),
        (
            f"paths.evaluation={REPO}/models/evaluation.json",
            f"paths.evaluation is '{REPO}/models/evaluation.json'; it lies inside cvm's code "
            "(models/)",
        ),
        (
            f"tracking.uri=sqlite:///{LOG}",
            f"tracking.uri (its file) is '{LOG}'; it equals the input data.path ('{LOG}')",
        ),
        (
            f"export.database.url=duckdb:///{LOG}",
            f"export.database.url (its file) is '{LOG}'; it equals the input data.path",
        ),
    ],
)
def test_outputs_clear_of_each_other_and_of_the_code(project, override, expected):
    found = problems(project, f"paths.output_roots=['{REPO}']", override)
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(expected), found


def test_score_refuses_an_out_table_over_its_log(project):
    log = project / "data/raw/feed.parquet"
    log.write_bytes(b"not read: the paths are checked first")
    write_sample_params(project)
    out = project / "data/raw/feed"
    assert main(["score", "--log", str(log), "--out", str(out)]) == 2
    cfg = config.load_params(project / "params.yaml")
    with pytest.raises(CvmError) as err:
        config.check_paths(cfg, log, out)
    assert str(err.value) == (
        f"--out (.parquet) is '{out}.parquet'; it equals the input --log ('{log}'): an output "
        "may not equal or contain an input"
    )
    assert log.read_bytes() == b"not read: the paths are checked first"
    # a table outside the project is the user's choice: clear of the inputs, it is allowed
    config.check_paths(cfg, log, project.parent / "elsewhere/customers")


def test_retrain_refuses_a_log_that_is_one_of_its_outputs(project):
    write_sample_params(project)
    cfg = config.load_params(project / "params.yaml")
    with pytest.raises(CvmError, match=r"retrain\.summary is 'reports/retrain_summary\.json'; "):
        config.check_paths(cfg, Path("reports/retrain_summary.json"))
    assert main(["retrain", "--log", "reports/retrain_summary.json"]) == 2
    assert not (project / "reports").exists()
