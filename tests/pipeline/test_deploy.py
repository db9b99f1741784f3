"""The files that put cvm on a schedule (``deploy/``): each command line runs as printed (the
shell's quoting, systemd's escapes, Airflow's template) and gives arguments that cvm's own
parser accepts, with the day before as the as-of date; the schedules and exit codes are those
docs/operations.md promises."""

from __future__ import annotations

import ast
import configparser
import os
import shlex
import subprocess
from datetime import date, timedelta
from pathlib import Path

import jinja2
import pytest

from pipeline.cli import _parser
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def run_as_printed(script: str, project: Path) -> list[str]:
    """``script`` run by ``sh`` in ``project``, whose ``.venv/bin/cvm`` writes down the
    arguments it is given (and exits 0); the arguments."""
    cvm = project / ".venv/bin/cvm"
    cvm.parent.mkdir(parents=True)
    cvm.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$(dirname "$0")/args"\n')
    cvm.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "CVM_PROJECT": str(project)}
    subprocess.run(["sh", "-c", script], cwd=project, env=env, check=True)
    return (cvm.parent / "args").read_text().splitlines()


def assert_scheduled(args: list[str], command: str) -> None:
    parsed = _parser().parse_args(args)
    assert parsed.command == command
    assert parsed.as_of == YESTERDAY
    assert parsed.wait > 0 and parsed.quiet
    assert parsed.log_file == Path(f"logs/{command}.log")


@pytest.mark.parametrize(
    ("command", "calendar", "success"),
    [("retrain", "Mon *-*-* 03:00:00", "3 4"), ("score", "*-*-* 06:00:00", None)],
)
def test_the_systemd_units_run_cvm_on_their_calendar(tmp_path, command, calendar, success):
    service = unit(f"cvm-{command}.service")["Service"]
    shell, flag, script = shlex.split(service["ExecStart"])
    assert (shell, flag) == ("/bin/sh", "-c")
    # systemd's own escapes: $$ is a dollar sign, %% a percent sign
    args = run_as_printed(script.replace("$$", "$").replace("%%", "%"), tmp_path)
    assert_scheduled(args, command)
    assert service["Type"] == "oneshot" and service.get("SuccessExitStatus") == success
    assert "MLFLOW_DISABLE_TELEMETRY=true" in service["Environment"].split()
    timer = unit(f"cvm-{command}.timer")
    assert timer["Timer"]["OnCalendar"] == calendar and timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


def dag_module() -> ast.Module:
    return ast.parse((DEPLOY / "airflow/cvm_dags.py").read_text())


def dag_constants() -> dict:
    """The DAG file's module-level constants, evaluated as Python would (airflow itself is not
    installed here: its imports and the DAGs it builds are left out)."""
    constants = [
        node
        for node in dag_module().body
        if isinstance(node, ast.Assign) and "_dag(" not in ast.unparse(node.value)
    ]
    names: dict = {"os": os}
    exec(compile(ast.Module(constants, []), "cvm_dags.py", "exec"), names)
    return names


def rendered(template: str) -> str:
    """An Airflow template as Airflow renders it for a run whose data interval ends today."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["ds"] = lambda day: day.isoformat()

    class Macros:
        @staticmethod
        def ds_add(ds: str, days: int) -> str:  # airflow.macros.ds_add
            return (date.fromisoformat(ds) + timedelta(days=days)).isoformat()

    return env.from_string(template).render(macros=Macros, data_interval_end=date.today())


@pytest.mark.parametrize(("dag", "command"), [("cvm_retrain", "retrain"), ("cvm_score", "score")])
def test_the_airflow_dags_run_cvm_as_printed(tmp_path, dag, command):
    constants = dag_constants()
    script = rendered(constants[command.upper()])
    assert_scheduled(run_as_printed(script, tmp_path), command)
    assert constants["SCHEDULES"][dag] == {"retrain": "0 3 * * 1", "score": "0 6 * * *"}[command]
    calls = [n for n in ast.walk(dag_module()) if isinstance(n, ast.Call)]
    operators = [c for c in calls if ast.unparse(c.func) == "BashOperator"]
    (operator,) = operators
    keywords = {k.arg: ast.unparse(k.value) for k in operator.keywords}
    assert keywords["skip_on_exit_code"] == "[3]"  # nothing to do: skipped, not failed
    assert {ast.unparse(c.args[0]) for c in calls if ast.unparse(c.func) == "_dag"} == {
        "'cvm_retrain'",
        "'cvm_score'",
    }


def test_a_refused_promotion_is_a_success_for_airflow_and_other_codes_are_kept(tmp_path):
    """The retraining's exit code 4 (champions kept, table re-scored) succeeds; 2 fails."""
    script = rendered(dag_constants()["RETRAIN"])
    cvm = tmp_path / ".venv/bin/cvm"
    cvm.parent.mkdir(parents=True)
    env = {"PATH": os.environ["PATH"], "CVM_PROJECT": str(tmp_path)}
    for code, expected in ((4, 0), (2, 2), (3, 3), (0, 0)):
        cvm.write_text(f"#!/bin/sh\nexit {code}\n")
        cvm.chmod(0o755)
        assert subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env).returncode == expected
