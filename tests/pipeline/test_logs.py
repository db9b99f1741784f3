"""What a `cvm` process writes: its own progress on the console, the libraries' warnings and
notices in the log file only, ``--quiet``, and JSON lines for a scheduler's log collector."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.conftest import run_cvm

OURS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} pipeline[.\w]* ")


def test_the_console_shows_cvm_and_the_log_file_the_libraries_too(pipeline_outputs, tmp_path):
    project = shutil.copytree(pipeline_outputs, tmp_path / "project")
    # the sample run registers its models: MLflow warns about pickling, the schema, pip
    done = run_cvm(project, "stage", "fit_clv", "--log-file", "logs/cvm.log")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(OURS.match(line) for line in lines), done.stderr
    assert "fitting the scoring pair" in done.stderr
    written = (project / "logs/cvm.log").read_text()
    assert " INFO pipeline.stages.fit_clv fit_clv: fitting the scoring pair" in written
    assert re.search(r" INFO mlflow\.registry Created version '\d+' of model 'cvm-clv'", written)
    assert " WARNING py.warnings " in written and " WARNING mlflow.pyfunc " in written

    quiet = run_cvm(project, "stage", "fit_clv", "--quiet")  # the same progress, not shown
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_json_lines_carry_progress_and_errors(pipeline_outputs, tmp_path):
    project = shutil.copytree(pipeline_outputs, tmp_path / "project")
    done = run_cvm(project, "stage", "fit_clv", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records and {tuple(r) for r in records} == {("time", "level", "logger", "message")}
    assert {r["logger"] for r in records} == {"pipeline.stages.fit_clv"}
    assert {r["level"] for r in records} == {"info"}

    missing = Path(tmp_path / "missing.yaml")
    refused = run_cvm(tmp_path, "stage", "score", "--params", str(missing), "--log-format", "json")
    assert refused.returncode == 2
    (record,) = [json.loads(line) for line in refused.stderr.splitlines()]
    assert record["level"] == "error" and record["logger"] == "cvm"
    assert record["message"] == (
        f"cvm: error: {missing}: not found; run `cvm params` to compose it from conf/"
    )
