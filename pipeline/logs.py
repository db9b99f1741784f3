"""What a `cvm` command writes to its console and to its log file.

The console (standard error) shows cvm's own progress (``INFO``; ``--quiet``: warnings and
errors only) and a library's errors; the warnings and notices of the libraries cvm drives
(MLflow's serialisation and schema hints, its registry notices, Python warnings) stay out of it and
go, with everything else, to the log file when ``--log-file`` names one. ``--log-format json``
writes one JSON object per line (``time``, ``level``, ``logger``, ``message``) to both, for a
scheduler's log collector. The command's one-line result goes to standard output either way.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

OURS = ("pipeline", "models", "features", "cvm")  # loggers of cvm's own code
TEXT = "%(asctime)s %(name)s %(message)s"
FILE_TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"
FORMATS = ("text", "json")


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class _Text(logging.Formatter):
    """``TEXT``, but a command's error (logger ``cvm``) as it is: ``cvm: error: ...``."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage() if record.name == "cvm" else super().format(record)


def _console_filter(level: int):
    def keep(record: logging.LogRecord) -> bool:
        ours = record.name.split(".")[0] in OURS
        return record.levelno >= (level if ours else logging.ERROR)

    return keep


def error(text: str) -> None:
    """A command's error (``cvm: error: ...``) on the console and in the log file."""
    logging.getLogger("cvm").error("%s", text)


def configure(quiet: bool = False, log_file: Path | None = None, fmt: str = "text") -> None:
    """Route the records of this process as the module says (replaces what an earlier call
    installed, leaves other handlers alone)."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # MLflow's own console handler
    logging.captureWarnings(True)
    json_lines = fmt == "json"
    console = logging.StreamHandler(sys.stderr)
    console.addFilter(_console_filter(logging.WARNING if quiet else logging.INFO))
    console.setFormatter(_Json() if json_lines else _Text(TEXT))
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        handlers[-1].setFormatter(_Json() if json_lines else logging.Formatter(FILE_TEXT))
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "cvm", False)]:
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        handler.cvm = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    mlflow = logging.getLogger("mlflow")  # configured already when MLflow was imported first
    for handler in list(mlflow.handlers):
        mlflow.removeHandler(handler)
    mlflow.propagate = True


@contextlib.contextmanager
def printed_as_records(name: str) -> Iterator[None]:
    """What a library prints to standard error meanwhile (MLflow's registry notices), as
    ``INFO`` records of logger ``name`` instead."""
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        yield
    log = logging.getLogger(name)
    for line in printed.getvalue().splitlines():
        if line.strip():
            log.info("%s", line)
