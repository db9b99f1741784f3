"""Progress of long steps: one updating line with rate and ETA on a terminal, silence in CI logs."""

from __future__ import annotations

import os
import sys
import time
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
