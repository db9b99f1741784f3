"""The command line and the config take exactly the purchase-model registry's names, one conf
file each, and read them without importing the models."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from models.btyd.family import NAMES
from pipeline.cli import main
from tests.conftest import REPO


def test_every_registered_model_has_its_conf_file_and_no_other_exists() -> None:
    files = {p.stem for p in (REPO / "conf" / "clv").glob("*.yaml")}
    assert files == {*NAMES, "auto"}  # auto: the one of them chosen out of time


@pytest.mark.parametrize("name", NAMES)
def test_the_config_takes_every_registered_model(name: str, tmp_path) -> None:
    assert main(["params", f"clv={name}", "--output", str(tmp_path / "params.yaml")]) == 0
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["clv"]["model"] == name


def test_the_config_allows_exactly_the_registered_models(tmp_path, capsys) -> None:
    assert main(["params", "clv.model=weibull", "--output", str(tmp_path / "params.yaml")]) == 2
    assert (
        f"clv.model is 'weibull'; expected one of auto, {', '.join(NAMES)}"
        in capsys.readouterr().err
    )


def test_cvm_simulate_offers_exactly_the_registered_models(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    assert "{" + ",".join(NAMES) + "}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["simulate", "--model", "weibull", "--out", str(tmp_path)])
    for name in NAMES:  # each with its own default population
        assert main(["simulate", "--model", name, "--customers", "50", "--out", str(tmp_path)]) == 0


def test_the_names_are_read_without_importing_the_models() -> None:
    # config validation and the command line read them at start-up: `cvm params` stays fast
    code = (
        "import sys, pipeline.cli, models.btyd.family; "
        "print(sorted({'pymc', 'pytensor', 'models.btyd.common'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
