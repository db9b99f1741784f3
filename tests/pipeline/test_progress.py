"""Progress lines: rate and ETA on a terminal, nothing in CI."""

from __future__ import annotations

import io

import pytest

from pipeline.progress import Progress, interactive


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_rate_and_eta_then_total_time() -> None:
    stream = _Terminal()
    progress = Progress("score", "customers", stream=stream, enabled=True, interval=0.0)
    progress(250, 1000)
    progress(1000, 1000)
    first, last = stream.getvalue().split("\r")[1:]
    assert "250/1,000 customers" in first and "25.0%" in first and "ETA " in first
    assert "customers/s" in first
    assert "1,000/1,000" in last and "100.0%" in last and last.endswith("\n") and "in " in last


def test_quiet_in_ci_and_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setenv("CI", "true")
    assert not interactive(terminal)
    Progress("score", stream=terminal)(1, 2)
    assert terminal.getvalue() == ""
    monkeypatch.delenv("CI")
    assert interactive(terminal)
    pipe = io.StringIO()
    assert not interactive(pipe)
    Progress("score", stream=pipe)(1, 2)
    assert pipe.getvalue() == ""
