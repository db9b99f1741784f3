"""The exception the CLI turns into a clear message and a non-zero exit, and the messages of the
failures a user causes outside cvm's own checks (a full or read-only disk, a permission, a
locked or damaged MLflow store)."""

from __future__ import annotations

import errno
import json
import re

# what to do about an operating-system error, by errno
_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space and run again",
    errno.EDQUOT: "the disk quota is used up: free space and run again",
    errno.EFBIG: "a file outgrew the size this process may write (ulimit -f)",
    errno.EROFS: "the file system is read-only: point the output elsewhere",
    errno.EACCES: "permission denied: check who owns the folder",
    errno.EPERM: "permission denied: check who owns the folder",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EEXIST: "a file stands where a folder is needed",
    errno.ENOENT: "a folder on the way does not exist or cannot be created",
}


class CvmError(Exception):
    """Bad input or config: the message names the file, row or key and what was expected."""


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (its type when it has none): what a message quotes
    of a driver's or a library's error."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def explain(err: BaseException) -> str | None:
    """The message for ``err`` when a user can cause it and mend it (``None`` otherwise: a bug,
    whose traceback is wanted). Outputs are written whole or not at all, so each such failure
    leaves the previous outputs in place."""
    if isinstance(err, OSError) and err.errno in _OS_HINTS:
        where = f"{err.filename}: " if err.filename else ""
        return _os_message(f"{where}{err.strerror}", err.errno)
    kind = type(err).__module__.split(".")[0]
    if kind in ("duckdb", "_duckdb") and type(err).__name__ == "IOException":
        return _duckdb_io(str(err))
    if kind in ("sqlite3", "sqlalchemy"):
        first = first_line(err.args[0] if err.args else err)
        hint = _store_hint(first)
        return f"the MLflow tracking store (tracking.uri) cannot be used: {first} ({hint})"
    return None


def _duckdb_io(text: str) -> str | None:
    """DuckDB's I/O errors carry the operating system's as JSON: ``{..., "exception_message":
    "Could not write file ...: File too large", "errno": "27"}``."""
    found = re.search(r"\{.*\}", text)
    try:
        detail = json.loads(found.group(0)) if found else {}
        code = int(detail.get("errno", -1))
    except ValueError:
        return None
    return _os_message(detail.get("exception_message"), code) if code in _OS_HINTS else None


def _os_message(what: str, code: int) -> str:
    return f"{what} ({_OS_HINTS[code]}; the previous outputs are intact)"


def _store_hint(message: str) -> str:
    if "locked" in message:
        return "another process holds it, an `mlflow ui` or another command: run again later"
    if "disk is full" in message or "disk I/O error" in message:
        return "the disk is full or failing: free space and run again"
    if "malformed" in message or "not a database" in message:
        return "the file is damaged: restore it from a backup, or move it away to start a new store"
    return "check tracking.uri and the file it names"
