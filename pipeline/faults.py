"""Named points where a fault-injection test may kill the process (``CVM_KILL_AT=<name>``).

The tests stop a real ``cvm`` process with SIGKILL right after a named step, not by timing luck,
then check that the next run finds consistent outputs. Unset, a checkpoint does nothing.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "CVM_KILL_AT"


def checkpoint(name: str) -> None:
    """SIGKILL this process when ``CVM_KILL_AT`` names this point."""
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
