"""Progress of long steps: one updating line with rate and ETA on a terminal, silence in CI logs."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


def interactive(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr) is a terminal and no ``CI`` variable is set."""
    stream = stream or sys.stderr
    return bool(stream.isatty()) and not os.environ.get("CI")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """``progress(done, total)`` redraws ``label  done/total unit  pct  rate/s  ETA mm:ss``.

    Redraws at most every ``interval`` seconds and always at completion. Disabled (the default
    off a terminal or in CI) it does nothing, so callers never branch on it.
    """

    def __init__(
        self,
        label: str,
        unit: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.2,
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = interactive(self.stream) if enabled is None else enabled
        self.interval = interval
        self.start = time.perf_counter()
        self._last = -float("inf")

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        finished = done >= total
        if not finished and now - self._last < self.interval:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = _clock((total - done) / rate) if rate > 0 else "--:--"
        tail = f"in {_clock(elapsed)}" if finished else f"ETA {eta}"
        line = (
            f"{self.label}  {done:,}/{total:,} {self.unit}  {100 * done / max(total, 1):5.1f}%  "
            f"{rate:,.0f} {self.unit}/s  {tail}"
        )
        self.stream.write(f"\r{line}\033[K" + ("\n" if finished else ""))
        self.stream.flush()


@contextmanager
def tracked(
    progress: Progress,
    size: int,
    fraction: Callable[[], float],
    queries: int = 1,
    interval: float = 0.5,
) -> Iterator[Callable[[], None]]:
    """Redraw ``progress`` while the block runs ``queries`` engine queries of ``size`` units.

    ``fraction()`` is the engine's own estimate (0 to 1) of how much of its running query is
    done; the block calls the function it is given after each query. A thread polls every
    ``interval`` seconds; the line never moves back, and completes when the block does.
    Disabled, no thread starts.
    """
    finished = 0

    def query_done() -> None:
        nonlocal finished
        finished += 1

    if not progress.enabled:
        yield query_done
        return
    stop = threading.Event()

    def poll() -> None:
        done = 0
        while not stop.wait(interval):
            now = int(size * (finished + min(fraction(), 1.0)) / queries)
            done = max(done, min(now, size - 1))
            progress(done, size)

    thread = threading.Thread(target=poll, name=f"progress: {progress.label}", daemon=True)
    thread.start()
    try:
        yield query_done
    finally:
        stop.set()
        thread.join()
    progress(size, size)
