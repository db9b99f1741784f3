"""`cvm` processes for the tests (:func:`run_cvm`), forked from a server of this module's own.

A fresh interpreter spends about 4 s importing the pipeline and its libraries (MLflow and its
SQL store, LightGBM, PyMC...), longer than most stages take on the CDNOW sample; the tests start
about a hundred `cvm` processes. This server imports them once, then forks one child per request
read from stdin (a JSON line: ``argv``, ``cwd``, ``env``, ``stdout``, ``stderr``): the child
leaves the server loop, runs ``pipeline.cli.main(argv)`` in ``cwd`` with exactly ``env``, its
output in the two files, and ends as ``python -m pipeline`` would (``sys.exit``: threads joined,
exit handlers run). The server answers each request with the child's exit status (``-9`` when
a fault point killed it) and stops when stdin closes. It runs nothing itself, so the fork copies
a process with one thread and no open OpenMP pool or database.
"""

from __future__ import annotations

import functools
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cvm(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`cvm ARGS` as a process of its own in ``project``, with ``env`` added to the environment
    (and no fault point inherited): a child of this process's fork server, which imported the
    pipeline and its libraries once."""
    environ = {k: v for k, v in os.environ.items() if k != "CVM_KILL_AT"}
    request = {
        "argv": list(args),
        "cwd": str(project),
        "env": environ | {"PYTHONPATH": str(REPO)} | env,
    }
    with tempfile.TemporaryDirectory() as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        server = _fork_server()
        server.stdin.write(json.dumps(request | {"stdout": str(out), "stderr": str(err)}) + "\n")
        server.stdin.flush()
        if not select.select([server.stdout], [], [], 900)[0]:
            raise TimeoutError(f"cvm {' '.join(args)} ran for more than 900 s")
        status = server.stdout.readline()
        assert status, f"the cvm fork server stopped (exit {server.wait()})"
        return subprocess.CompletedProcess(
            ["cvm", *args], int(status), out.read_text(), err.read_text()
        )


@functools.cache
def _fork_server() -> subprocess.Popen:
    """This process's `cvm` fork server, started on first use; it stops when this process
    ends (its stdin closes)."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__))],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout.readline() == "ready\n", f"no cvm fork server (exit {server.wait()})"
    return server


def preload() -> None:
    """What the server imports before it forks anything."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `cvm` sets it before LightGBM loads
    import lightgbm  # noqa: F401
    import mlflow.pyfunc  # noqa: F401
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import pymc  # noqa: F401

    import models.btyd.clv  # noqa: F401
    import models.churn.classifier  # noqa: F401
    import models.evaluation.report  # noqa: F401
    import pipeline.cli  # noqa: F401
    import pipeline.retrain  # noqa: F401
    import pipeline.stages.evaluate  # noqa: F401
    import pipeline.stages.features  # noqa: F401
    import pipeline.stages.fit_clv  # noqa: F401
    import pipeline.stages.ingest  # noqa: F401
    import pipeline.stages.report  # noqa: F401
    import pipeline.stages.score  # noqa: F401
    import pipeline.stages.train_churn  # noqa: F401


def serve() -> dict | None:
    """Fork a child per request and answer its exit status; the child returns its request."""
    while line := sys.stdin.readline():
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            return request
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    return None


def become(request: dict) -> None:
    """This child as the requested `cvm` process: directory, environment, standard streams."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        handle = os.open(path, flags)
        os.dup2(handle, fd)
        os.close(handle)
    sys.argv = ["cvm", *request["argv"]]


if __name__ == "__main__":
    preload()
    print("ready", flush=True)
    if (request := serve()) is not None:
        become(request)
        from pipeline.cli import main

        sys.exit(main(request["argv"]))


def start_holding_the_lock(project: Path, lock_file: Path, *args: str) -> subprocess.Popen:
    """`python -m pipeline ARGS` started in ``project`` (an interpreter of its own, not a fork),
    returned once it holds the project's lock ``lock_file``. The caller waits for it or kills
    it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while str(process.pid) not in (lock_file.read_text() if lock_file.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"`cvm {' '.join(args)}` never held the lock:\n{out}\n{err}")
        time.sleep(0.02)
    return process
