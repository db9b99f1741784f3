"""Named points where a fault-injection test may kill the process (``CVM_KILL_AT=<name>``).

The tests stop a real ``cvm`` process with SIGKILL right after a named step, not by timing luck,
then check that the next run finds consistent outputs. A point's name is a path of parts joined
by ``:`` (``outputs:renamed:1:transactions.parquet``); ``CVM_KILL_AT`` names a point or any
leading parts of one (``outputs:renamed`` is the first rename reached). ``CVM_FAULT_TRACE``
names a file that every point reached is appended to, which is how a test lists them. Unset,
a checkpoint does nothing. ``CVM_STOP_SIGNAL`` (``SIGTERM``, ``SIGINT``) sends that signal
instead of SIGKILL: a stop the process handles (``systemctl stop``, Ctrl-C).
"""

from __future__ import annotations

import os
import signal

VARIABLE = "CVM_KILL_AT"
TRACE = "CVM_FAULT_TRACE"
STOP_SIGNAL = "CVM_STOP_SIGNAL"


def checkpoint(name: str) -> None:
    """SIGKILL this process (or send it ``CVM_STOP_SIGNAL``) when ``CVM_KILL_AT`` names this
    point (or leading parts of it)."""
    if trace := os.environ.get(TRACE):
        with open(trace, "a") as handle:
            handle.write(name + "\n")
    kill_at = os.environ.get(VARIABLE)
    if kill_at and (name == kill_at or name.startswith(kill_at + ":")):
        os.kill(os.getpid(), signal.Signals[os.environ.get(STOP_SIGNAL, "SIGKILL")])
