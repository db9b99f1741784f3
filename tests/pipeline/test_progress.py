"""Progress lines: rate and ETA on a terminal, nothing in CI; engine queries report their own."""

from __future__ import annotations

import io
import re

import pytest

from pipeline import engine
from pipeline.progress import Progress, interactive, tracked


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


# a query DuckDB needs about a second for on two cores, long enough to be polled many times
SLOW_QUERY = "SELECT i % 1000 AS k, sum(i * i), max(hash(i)) FROM range(100000000) t(i) GROUP BY k"


def _counts(output: str) -> list[tuple[int, int]]:
    """(done, total) of every line drawn."""
    found = re.findall(r"([\d,]+)/([\d,]+) ", output)
    return [(int(d.replace(",", "")), int(t.replace(",", ""))) for d, t in found]


def test_a_running_engine_query_moves_the_line_forward() -> None:
    stream = _Terminal()
    with engine.session({"name": "duckdb", "threads": 2}) as con:
        fraction = engine.query_fraction(con)
        assert fraction() == 0.0  # nothing running
        progress = Progress("features: scoring", "rows", stream=stream, enabled=True, interval=0)
        with tracked(progress, 1_000_000, fraction, queries=2, interval=0.02) as query_done:
            for _ in range(2):
                con.raw_sql(SLOW_QUERY).fetchall()
                query_done()
    counts = _counts(stream.getvalue())
    done = [d for d, _ in counts]
    assert all(total == 1_000_000 for _, total in counts)
    assert done == sorted(done), "the line moved back"
    # the engine's estimate moved it while the queries ran, in both queries' halves
    assert any(0 < d < 500_000 for d in done) and any(500_000 < d < 1_000_000 for d in done)
    assert done[-1] == 1_000_000 and "rows/s" in stream.getvalue()
    assert stream.getvalue().endswith("\n") and "in 00:" in stream.getvalue().split("\r")[-1]


def test_disabled_progress_polls_nothing() -> None:
    calls = []
    progress = Progress("ingest: classify", "rows", stream=_Terminal(), enabled=False)
    with tracked(progress, 10, lambda: calls.append(1) or 0.5, interval=0.001) as query_done:
        query_done()
    assert calls == [] and progress.stream.getvalue() == ""
