"""`cvm` processes for the tests (:func:`run_cvm`, and the `cvm` command DVC runs:
:func:`command_on_path`), forked from a server of this module's own.

A fresh interpreter spends about 4 s importing the pipeline and its libraries (MLflow and its
SQL store, LightGBM, PyMC...), longer than most stages take on the CDNOW sample; the tests start
about a hundred `cvm` processes. This server imports them once, then listens on a Unix socket and
forks one child per request (a JSON message: ``argv``, ``cwd``, ``env``, with the descriptors of the
caller's standard output and error): the child leaves the server loop, runs
``pipeline.cli.main(argv)`` in ``cwd`` with exactly ``env`` and those two descriptors, and ends
as ``python -m pipeline`` would (threads joined, exit handlers run: :func:`end`). The server
answers each request with the child's exit status (``-9`` when a fault point killed it) and stops
when its stdin closes. It runs nothing itself, so the fork copies a process with one thread and
no open OpenMP pool or database.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cvm(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`cvm ARGS` as a process of its own in ``project``, with ``env`` added to the environment
    (and no fault point inherited): a child of this process's fork server, which imported the
    pipeline and its libraries once."""
    environ = {k: v for k, v in os.environ.items() if k != "CVM_KILL_AT"}
    environ |= {"PYTHONPATH": str(REPO)} | env
    request = {"argv": list(args), "cwd": str(project), "env": environ}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        status = _ask(_fork_server(), request, out.fileno(), err.fileno())
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(["cvm", *args], status, out.read(), err.read())


@functools.cache
def command_on_path() -> Path:
    """A folder holding a `cvm` command that runs as a child of this process's fork server (its
    arguments, working directory, environment and standard streams) and exits as the child did,
    for commands such as `dvc repro` that start `cvm` themselves: put it first on their
    ``PATH``."""
    address = _fork_server()
    directory = Path(address).parent / "bin"
    directory.mkdir()
    command = directory / "cvm"
    command.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from tests.cvm_forks import forward\n"
        f"forward({address!r})\n"
    )
    command.chmod(0o755)
    return directory


def forward(address: str) -> None:
    """This process's `cvm` command run by the fork server at ``address``; ends as it did."""
    request = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
    status = _ask(address, request, sys.stdout.fileno(), sys.stderr.fileno())
    if status < 0:
        os.kill(os.getpid(), -status)
    sys.exit(status)


def _ask(address: str, request: dict, stdout: int, stderr: int) -> int:
    """The exit status of ``request`` run by the fork server at ``address``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as connection:
        connection.connect(address)
        socket.send_fds(connection, [json.dumps(request).encode()], [stdout, stderr])
        if not select.select([connection], [], [], 900)[0]:
            raise TimeoutError(f"cvm {' '.join(request['argv'])} ran for more than 900 s")
        status = connection.recv(64)
    assert status, "the cvm fork server stopped"
    return int(status)


@functools.cache
def _fork_server() -> str:
    """The address of this process's `cvm` fork server, started on first use; it stops when
    this process ends (its stdin closes)."""
    folder = tempfile.mkdtemp(prefix="cvm-forks-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    address = os.path.join(folder, "socket")
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__)), address],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout.readline() == "ready\n", f"no cvm fork server (exit {server.wait()})"
    _servers.append(server)  # its stdin stays open while this process runs
    return address


_servers: list[subprocess.Popen] = []


def preload() -> None:
    """What the server imports before it forks anything: every module of the project, and the
    libraries its stages import inside functions or MLflow imports when a run starts (IPython
    and GitPython for its run context, its SQL store's SQLite dialect and migrations), which each
    child would otherwise import again (about 0.7 s a stage)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `cvm` sets it before LightGBM loads
    import importlib
    import pkgutil

    import alembic.command  # noqa: F401
    import duckdb  # noqa: F401
    import git  # noqa: F401
    import ibis.backends.duckdb  # noqa: F401
    import IPython  # noqa: F401
    import lightgbm  # noqa: F401
    import matplotlib.backends.backend_agg  # noqa: F401
    import mlflow.pyfunc  # noqa: F401
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import mlflow.tracing.processor.otel  # noqa: F401
    import netCDF4  # noqa: F401
    import numba  # noqa: F401
    import pymc  # noqa: F401
    import sqlalchemy.dialects.sqlite  # noqa: F401
    from mlflow.utils import requirements_utils

    import features
    import models
    import pipeline

    for package in (features, models, pipeline):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith("__main__"):  # `python -m pipeline` would run the CLI
                importlib.import_module(module.name)

    # the installed packages, which MLflow reads (about 1.5 s) before it logs a model
    requirements_utils._init_packages_to_modules_map()


def serve(listener: socket.socket) -> tuple[dict, list[int]] | None:
    """Fork a child per request and answer its exit status; the child returns its request and
    the descriptors of its standard output and error."""
    while True:
        ready = select.select([listener, sys.stdin], [], [])[0]
        if sys.stdin in ready and not sys.stdin.readline():
            return None
        if listener not in ready:
            continue
        connection, _ = listener.accept()
        message, fds, _, _ = socket.recv_fds(connection, 1 << 20, 2)
        pid = os.fork()
        if pid == 0:
            listener.close()
            connection.close()
            return json.loads(message), fds
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        connection.send(str(os.waitstatus_to_exitcode(status)).encode())
        connection.close()


def become(request: dict, fds: list[int]) -> None:
    """This child as the requested `cvm` process: directory, environment, standard streams."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    for fd, source in ((0, os.open(os.devnull, os.O_RDONLY)), (1, fds[0]), (2, fds[1])):
        os.dup2(source, fd)
        os.close(source)
    sys.argv = ["cvm", *request["argv"]]


def end(code: object) -> None:
    """End this child as the interpreter would end `cvm` (non-daemon threads joined, exit
    handlers run, standard streams flushed), without tearing down its inherited heap: freeing
    the objects the server imported copies each of their memory pages, about 2 s per child."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # what the interpreter's own shutdown calls first
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(sys.argv[1])
    listener.listen()
    print("ready", flush=True)
    if (request := serve(listener)) is not None:
        become(*request)
        from pipeline.cli import main

        try:
            code = main(request[0]["argv"])
        except SystemExit as exit_:
            code = exit_.code
        end(code)


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
