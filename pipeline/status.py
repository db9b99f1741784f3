"""`cvm status`: whether the scheduled work of a project is healthy, as one line and an exit code
a health check acts on.

It reads what the runs leave, and changes nothing: the last line of the retraining's history
(``<work_dir>/history.jsonl``), the published table (``retrain.scored``: when it was last
written and its as-of date) and the project's lock file (a run holding it now). In that order of
precedence: the last retraining failed (exit 1); the published table is older than the age
allowed, or missing (exit 6); a run holds the lock (exit 5, the code of a run turned away by
it); else healthy (exit 0). A `cvm score` that fails leaves no record of its own: the table it
did not write grows stale.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pipeline import lock

EXIT = {"ok": 0, "failed": 1, "running": 5, "stale": 6}
DEFAULT_MAX_AGE_DAYS = 8.0  # a weekly retraining and a day's grace


def status(
    work_dir: Path, scored: Path, lock_file: Path, max_age_days: float, now: datetime | None = None
) -> dict:
    """The health of the project whose retraining works in ``work_dir``, publishes the table
    at ``scored`` and locks ``lock_file`` (``retrain.*``): ``status`` (a key of :data:`EXIT`),
    ``exit_code``, ``reason`` (one line) and what it was read from: ``last_retrain``,
    ``published``, ``lock``."""
    now = now or datetime.now(UTC)
    last = _last_retrain(work_dir / "history.jsonl")
    published = _published(scored.with_suffix(".parquet"), now)
    holder = lock.holder(lock_file)
    if last is not None and last.get("status") == "failed":
        state = "failed"
        reason = f"the last retraining (as of {last.get('as_of')}, {last.get('finished')}) "
        reason += str(last.get("reason") or "failed")
    elif published is None:
        state, reason = "stale", f"no table published at {scored}.parquet yet"
    elif published["age_days"] > max_age_days:
        state = "stale"
        reason = (
            f"the published table was written {published['age_days']:.1f} days ago (as of "
            f"{published['as_of']}); at most {max_age_days:g} days are allowed (--max-age-days)"
        )
    elif holder is not None:
        state = "running"
        reason = (
            f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}) has held {lock_file} since "
            f"{holder.get('started', '?')}"
        )
    else:
        state = "ok"
        reason = f"the table written {published['age_days']:.1f} days ago is as of "
        reason += f"{published['as_of']}"
        if last is not None:
            reason += f"; the last retraining (as of {last.get('as_of')}): {last.get('status')}"
    return {
        "status": state,
        "exit_code": EXIT[state],
        "reason": reason,
        "last_retrain": last,
        "published": published,
        "lock": holder,
    }


def _last_retrain(history: Path) -> dict | None:
    """The last complete line of the retraining's history, if any."""
    if not history.is_file():
        return None
    for line in reversed(history.read_text().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
    return None


def _published(parquet: Path, now: datetime) -> dict | None:
    """When the published table was written, how long ago, and its as-of date."""
    import pyarrow.parquet as pq

    if not parquet.is_file():
        return None
    written = datetime.fromtimestamp(parquet.stat().st_mtime, UTC)
    first = pq.ParquetFile(parquet).read_row_group(0, columns=["as_of_date"]).slice(0, 1)
    day = first.column("as_of_date")[0].as_py()
    return {
        "path": str(parquet),
        "written": written.isoformat(timespec="seconds"),
        "age_days": (now - written).total_seconds() / 86400,
        "as_of": day.date().isoformat() if day is not None else None,
    }
