"""One writer per project: `cvm run`, `cvm stage` (what `dvc repro` runs), `cvm retrain` and
`cvm score` take an exclusive lock on one file (``retrain.lock_file``).

The lock is the operating system's (``flock``): it is released when the holder exits, however it
exits (a crash or ``kill -9`` leaves no stale lock behind). The file itself stays; while the lock
is held it names the holder (process id, host, command, start time), which the message of a
second run quotes. It must live on a local file system: ``flock`` does not work across hosts.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import CvmError


class LockHeld(CvmError):
    """Another run holds the lock."""


_HELD: list[str] = []  # the token of the lock this process holds


def held() -> str | None:
    """The token of the project lock this process holds (``None`` outside :func:`exclusive`):
    what a run or a journal is tagged with, so that the next holder, on any host, knows its
    writer ended (it released the lock)."""
    return _HELD[-1] if _HELD else None


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return (
        f"`{info.get('command', '?')}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"started {info.get('started', '?')})"
    )


@contextmanager
def exclusive(path: Path, command: str, wait: float = 0.0) -> Iterator[dict]:
    """Hold the lock on ``path`` for the block; yields what the lock file says about us.

    Waits up to ``wait`` seconds for another holder to finish, then raises :class:`LockHeld`
    naming the holder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(
                        f"{path} is locked by {_holder(fd)}: another cvm run is in progress; "
                        "this one did nothing (run it again later, or pass --wait SECONDS)"
                    ) from None
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0.05)))
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "token": uuid.uuid4().hex,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        _HELD.append(info["token"])
        try:
            yield info
        finally:
            _HELD.remove(info["token"])
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(path: Path) -> dict | None:
    """What the lock file says about a run that holds the lock now, without taking it (a probe
    that took it, however briefly, could turn a starting run away): a holder writes itself into
    the file and empties it on release; a killed one leaves its lines, but its process is gone
    (``alive`` says whether it could be checked: on another host it cannot)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not info:
        return None
    if info.get("host") != socket.gethostname():
        return info | {"alive": None}
    try:
        os.kill(int(info["pid"]), 0)
    except ProcessLookupError:
        return None  # a killed run's lines: the lock went with its process
    except PermissionError:
        pass  # alive: another user's process
    except (KeyError, ValueError, TypeError):
        return info | {"alive": None}  # lines of another format
    return info | {"alive": True}
