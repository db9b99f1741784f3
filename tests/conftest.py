"""Shared fixtures: the repository, the bundled data and a params.yaml for a temp directory."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
CDNOW_SAMPLE = REPO / "data" / "raw" / "cdnow" / "CDNOW_sample.txt"
CDNOW_MASTER = REPO / "data" / "raw" / "cdnow" / "CDNOW_master.txt"


@pytest.fixture(scope="session")
def reference_values() -> dict:
    return json.loads((FIXTURES / "reference_values.json").read_text())


@pytest.fixture
def make_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Compose conf/ with Hydra overrides into ``tmp_path/params.yaml`` and chdir there.

    Outputs and the MLflow store land in ``tmp_path``.
    """
    from pipeline import config

    def make(*overrides: str) -> Path:
        cfg = config.compose(
            [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", *overrides], REPO / "conf"
        )
        path = tmp_path / "params.yaml"
        config.write_params(cfg, path)
        monkeypatch.chdir(tmp_path)
        return path

    return make
