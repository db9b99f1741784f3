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
