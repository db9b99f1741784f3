"""params.yaml is the composition of conf/, by our command and by DVC's Hydra support alike."""

import yaml
from dvc.utils.hydra import compose_and_dump

from pipeline import config
from tests.conftest import REPO


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
