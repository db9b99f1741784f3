"""A moved or copied project keeps its MLflow runs and registered models.

MLflow's SQLite store records absolute artifact paths (``/old/place/mlruns/1/...``), so a project
that is renamed, moved or copied would read its models from, and write its runs into, the old
place. When cvm opens a SQLite store whose ``mlruns/`` folder lies beside it but whose recorded
paths point at another ``mlruns/``, it repoints them there, in one transaction, before anything
reads or writes an artifact.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

# every column of MLflow's SQLite schema that holds an artifact path
COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)
_EXPERIMENT = re.compile(r"^(?:file://)?(/.*/mlruns)/([^/]+)$")


def relocate(uri: str) -> str | None:
    """Repoint the artifact paths of the SQLite store at ``uri`` to the ``mlruns`` folder beside
    its file, if they name another one whose experiments that folder holds; returns the old
    folder, or ``None`` when nothing moved."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    if not database.is_file():
        return None
    here = database.resolve().parent / "mlruns"
    with sqlite3.connect(database) as con:
        try:
            locations = [row[0] for row in con.execute("SELECT artifact_location FROM experiments")]
        except sqlite3.OperationalError:  # not an MLflow store yet
            return None
        old = _moved_from(locations, here)
        if old is None:
            return None
        for table, column in COLUMNS:
            for prefix in (old, f"file://{old}"):
                new = str(here) if prefix == old else f"file://{here}"
                con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE substr({column}, 1, ?) = ?",
                    (new, len(prefix) + 1, len(prefix), prefix),
                )
    return old


def _moved_from(locations: list[str], here: Path) -> str | None:
    """The ``mlruns`` folder the experiments were recorded in, when it is not ``here`` and
    ``here`` holds their folders (the project's runs came along)."""
    for location in locations:
        found = _EXPERIMENT.match(location or "")
        if found and found[1] != str(here) and (here / found[2]).is_dir():
            return found[1]
    return None
