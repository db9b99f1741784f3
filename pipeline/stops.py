"""Stop signals: Ctrl-C (SIGINT) and SIGTERM (``systemctl stop``, a timeout) end a command
cleanly, as an exception it unwinds with, except while a commit is under way (:func:`held`): a
stop that arrives then waits until the commit is complete, so that a stopped command leaves
every output as one whole run left it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(KeyboardInterrupt):
    """A stop asked for by a signal; the command ends with :func:`exit_code`."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        _RECEIVED.append(signum)


_RECEIVED: list[int] = []  # the stops received: a library may catch one and raise its own
_HOLDING: list[bool] = []  # commits under way
_WAITING: list[int] = []  # stops that arrived during one


def handler(signum: int, frame) -> None:
    """The handler of SIGINT and SIGTERM (installed by the CLI)."""
    if _HOLDING:
        _WAITING.append(signum)
        return
    raise Interrupted(signum)


@contextmanager
def held() -> Iterator[None]:
    """A block a stop does not break into: one that arrives meanwhile is raised after it."""
    _HOLDING.append(True)
    try:
        yield
    finally:
        _HOLDING.pop()
    if not _HOLDING and _WAITING:
        raise Interrupted(_WAITING.pop())


def exit_code(err: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a process the signal stopped: 130 for Ctrl-C
    (SIGINT), 143 for SIGTERM (also when a library caught the stop and raised its own)."""
    return 128 + getattr(err, "signum", _RECEIVED[-1] if _RECEIVED else signal.SIGINT)
