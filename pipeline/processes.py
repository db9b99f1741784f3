"""Who left something behind, and whether it still runs.

A journal, a temporary file or an MLflow run left by a killed command is finished or closed by
the next one, but only once its writer is gone. A bare pid cannot tell: pids are reused, so a
later process with the same pid would keep a journal unfinished forever. A process is named by
its pid and its start time (:func:`identity`), which no later process shares.
"""

from __future__ import annotations

import os

import psutil


def identity() -> str:
    """``<pid>-<start time in centiseconds>`` of this process."""
    return f"{os.getpid()}-{_started(os.getpid())}"


def running(name: str) -> bool:
    """Whether the process named ``name`` (an :func:`identity`, or a bare pid as older records
    hold) runs on this host."""
    pid, _, started = name.partition("-")
    if not pid.isdigit():
        return False
    try:
        if psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE:
            return False  # killed, not yet reaped by its parent
        return not started or str(_started(int(pid))) == started
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process
        return True


def _started(pid: int) -> int:
    try:
        return round(psutil.Process(pid).create_time() * 100)
    except psutil.AccessDenied:  # another user's process: it runs, its start is unknown
        return 0
