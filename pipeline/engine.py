"""The Ibis backend that runs the transaction-level expressions."""

from __future__ import annotations

from typing import Any

from pipeline.errors import CvmError

ENGINES = ("duckdb",)


def connect(engine: dict[str, Any]):
    """An Ibis connection for ``engine`` (the ``engine`` config section)."""
    import ibis

    name = engine.get("name")
    if name == "duckdb":
        con = ibis.duckdb.connect()
        con.raw_sql(f"SET threads = {int(engine.get('threads', 2))}")
        if engine.get("memory_limit"):
            con.raw_sql(f"SET memory_limit = '{engine['memory_limit']}'")
        return con
    raise CvmError(f"engine.name is {name!r}; expected one of {', '.join(ENGINES)}")


def dialect(con) -> str:
    """The backend's name, which picks engine-specific SQL functions."""
    return con.name
