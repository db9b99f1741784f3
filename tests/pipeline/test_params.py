"""params.yaml is the composition of conf/, by our command and by DVC's Hydra support alike."""

import json
import shutil
from pathlib import Path

import yaml
from dvc.utils.hydra import compose_and_dump

from pipeline import config
from tests.conftest import CDNOW_SAMPLE, REPO, run_cvm


def test_committed_params_match_conf():
    committed = yaml.safe_load((REPO / "params.yaml").read_text())
    assert committed == config.compose(conf_dir=REPO / "conf"), (
        "params.yaml drifted from conf/: run `make params` and commit it"
    )


def test_dvc_composes_overrides_like_cvm_params(tmp_path):
    overrides = ["data=cdnow_sample", "features.churn_horizon_days=90", "features.time_unit=days"]
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(REPO / "conf"), None, "config", str(REPO), overrides)
    by_dvc = yaml.safe_load(out.read_text())
    assert by_dvc == config.compose(overrides, conf_dir=REPO / "conf")
    assert by_dvc["data"]["path"].endswith("CDNOW_sample.txt")
    assert by_dvc["data"]["mapping"]["amount"] == "dollar_value"  # inherited from data/cdnow
    assert by_dvc["features"]["churn_horizon_days"] == 90


def test_a_bad_override_names_the_key(tmp_path):
    import pytest

    from pipeline.errors import CvmError

    with pytest.raises(CvmError, match="no_such_key"):
        config.compose(["features.no_such_key=1"], conf_dir=REPO / "conf")


def test_the_readme_s_four_key_data_config_runs(tmp_path):
    """The README's "Your own log" template failed: a data config had to spell out every key
    (``customers``, every rule). Its first block, as a user copies it, now composes and ingests."""
    import re
    import shutil

    from tests.conftest import run_cvm

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Your own log") :]
    template = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    (tmp_path / "conf/data/mylog.yaml").write_text(template)
    log = tmp_path / yaml.safe_load(template)["path"]
    log.parent.mkdir(parents=True)
    log.write_text("client,ordered_at,total\nc1,2024-01-05,10\nc1,2024-03-01,4\nc2,2024-02-01,5\n")
    composed = run_cvm(tmp_path, "params", "data=mylog", "tracking.enabled=false")
    assert composed.returncode == 0, composed.stderr
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["data"]["rules"]["duplicates"] == "quarantine"  # from conf/data_defaults.yaml
    assert params["data"]["customers"] is None
    ingested = run_cvm(tmp_path, "stage", "ingest")
    assert ingested.returncode == 0, ingested.stderr
    report = yaml.safe_load((tmp_path / "data/interim/ingest_report.json").read_text())
    assert report["rows_kept"] == 3


def sample_project(root: Path) -> Path:
    """A project folder: conf/ and the CDNOW sample where conf/data/cdnow_sample.yaml reads it."""
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "data/raw/cdnow").mkdir(parents=True)
    shutil.copy(CDNOW_SAMPLE, root / "data/raw/cdnow")
    return root


def dvc_composes(root: Path, *overrides: str) -> dict:
    """``params.yaml`` as `dvc exp run -S OVERRIDE...` composes it in ``root``."""
    compose_and_dump(root / "params.yaml", str(root / "conf"), None, "config", str(root), overrides)
    return yaml.safe_load((root / "params.yaml").read_text())


def test_cvm_params_makes_its_overrides_the_project_s_choices(tmp_path):
    """The probe: after `cvm params data=mylog`, `dvc exp run -S clv=pareto_nbd` recomposed
    conf/ alone and ran on CDNOW. The overrides are now kept in conf/project/choices.yaml, which
    every composition reads, DVC's too; the next `cvm params` replaces them, none removes them."""
    project = sample_project(tmp_path)
    chosen = ("data=cdnow_sample", "clv.method=map", f"paths.input_roots=['{tmp_path}']")
    done = run_cvm(project, "params", *chosen)
    assert done.returncode == 0, done.stderr
    assert (project / "conf/project/choices.yaml").is_file()
    expected = config.compose(list(chosen), REPO / "conf")
    assert yaml.safe_load((project / "params.yaml").read_text()) == expected
    by_dvc = dvc_composes(project, "churn.num_leaves=15")
    assert by_dvc == config.compose([*chosen, "churn.num_leaves=15"], REPO / "conf")
    assert by_dvc["data"]["name"] == "cdnow_sample" and by_dvc["clv"]["method"] == "map"

    assert run_cvm(project, "params", "clv=pareto_nbd").returncode == 0  # replaces them all
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert (params["data"]["name"], params["clv"]["model"]) == ("cdnow", "pareto_nbd")
    assert run_cvm(project, "params").returncode == 0  # none: conf/'s defaults
    assert not (project / "conf/project/choices.yaml").exists()
    assert yaml.safe_load((project / "params.yaml").read_text()) == config.compose(
        [], REPO / "conf"
    )


def test_a_run_on_another_log_than_the_project_s_stops_before_it_reads_it(tmp_path):
    project = sample_project(tmp_path)
    assert run_cvm(project, "params", "data=cdnow_sample", "tracking.enabled=false").returncode == 0
    dvc_composes(project, "data=cdnow")  # `dvc exp run -S data=cdnow`
    stopped = run_cvm(project, "stage", "ingest")
    assert stopped.returncode == 2
    assert stopped.stderr == (
        "cvm: error: params.yaml reads the log cdnow (data/raw/cdnow/CDNOW_master.txt), but this "
        "project's log is cdnow_sample (data/raw/cdnow/CDNOW_sample.txt), the one conf/ composes "
        "to. To work on another log, make it the project's: `cvm params data=cdnow ...`, then "
        "`dvc repro` or `dvc exp run` (whose -S options change anything but the log)\n"
    )
    assert not (project / "data/interim").exists()
    dvc_composes(project, "features.time_unit=days")  # any other experiment runs on the sample
    ran = run_cvm(project, "stage", "ingest")
    assert ran.returncode == 0, ran.stderr
    report = json.loads((project / "data/interim/ingest_report.json").read_text())
    assert report["customers"] == 2357


def test_what_cannot_be_a_choice_is_refused_and_the_choices_stay(tmp_path):
    project = sample_project(tmp_path)
    assert run_cvm(project, "params", "data=cdnow_sample").returncode == 0
    kept = (project / "conf/project/choices.yaml").read_bytes()
    for bad in (("~data.rules.start",), ("clv=no_such_model",), ("~seed",)):
        done = run_cvm(project, "params", *bad)
        assert done.returncode == 2 and done.stderr.startswith("cvm: error: "), done.stderr
        assert "Traceback" not in done.stderr
        assert (project / "conf/project/choices.yaml").read_bytes() == kept
