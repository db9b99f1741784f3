"""`cvm status` on a project a real `cvm retrain` published: healthy, then stale, busy and failed
as a health check must tell them apart (exit code and one line), changing nothing."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline import lock
from pipeline.cli import main
from tests.pipeline.test_faults import champion_project  # noqa: F401  (a fixture)
from tests.pipeline.test_retrain import as_of

pytestmark = pytest.mark.e2e


def check(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["status", *args])
    return code, capsys.readouterr().out.strip()


def test_status_tells_healthy_stale_running_and_failed_apart(
    champion_project,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    origin, next_week = champion_project
    project = tmp_path / "project"
    shutil.copytree(origin, project)
    monkeypatch.chdir(project)
    published = project / "data/published/customers.parquet"
    before = published.read_bytes()

    code, line = check(capsys)
    assert code == 0, line
    assert line.startswith("cvm status: ok: the table written 0.0 days ago is as of ")
    assert f"as of {as_of(0)}; the last retraining (as of {as_of(0)}): promoted" in line

    code, line = check(capsys, "--max-age-days", "0")
    assert code == 6 and line.startswith("cvm status: stale: the published table was written")

    with lock.exclusive(project / "artifacts/retrain/cvm.lock", "cvm retrain"):
        code, line = check(capsys, "--log-format", "json")
    found = json.loads(line)
    assert code == 5 == found["exit_code"] and found["status"] == "running"
    assert "`cvm retrain` (pid" in found["reason"] and found["lock"]["alive"] is True

    # next week's log cut short: the retraining refuses it; the table stays, status says why
    cut = project / "cut.csv"
    lines = next_week.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[: len(lines) // 2]))
    capsys.readouterr()
    assert main(["retrain", "--log", str(cut), "--as-of", str(as_of(1))]) == 2
    code, line = check(capsys)
    assert code == 1, line
    assert line.startswith(f"cvm status: failed: the last retraining (as of {as_of(1)}, ")
    assert "broken feed" in line
    assert published.read_bytes() == before


def test_status_of_a_project_that_published_nothing_is_stale(make_params, capsys):
    make_params()
    code, line = check(capsys)
    assert code == 6
    assert line.startswith("cvm status: stale: no table published at data/published/customers")
