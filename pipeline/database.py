"""Publishing tables to the SQL database downstream teams read (``export.database``).

Each table is first written under a temporary name; then, in one transaction, every previous
version is dropped and the new tables take their names. Readers see the previous set of tables
or the new one, never a half-written table or a mixture. A publication that stops before that
transaction leaves the previous tables as they were; the next one drops its temporary tables.
The scored files are published between the two steps (:func:`scored_staged`): a database that
refuses the new tables (down, locked, full, a value it cannot hold) leaves the files as they
were too.

URLs: ``duckdb:///path/to/file.duckdb`` (relative to the project, the default;
``duckdb:////absolute/path``) and ``postgresql://user@host:port/dbname`` (``?host=/socket/dir``
for a Unix socket; the password from ``PGPASSWORD`` or ``~/.pgpass`` rather than the config).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import faults, stops
from pipeline.credentials import redact
from pipeline.errors import CvmError, first_line

NEW = "__cvm_new"  # suffix of a table being written
AS_OF = "as_of_date"  # a day: DATE in the database
PREVIOUS_AS_OF = "previous_as_of_date"  # the KPI history's day before
SCHEMES = ("duckdb", "postgresql")
PIPELINE_PREFIX = "pipeline_"  # the score stage's tables, beside those cvm score / retrain publish


@dataclass(frozen=True)
class DatabaseSettings:
    """``export.database``: where the scored table and the segment summary are published."""

    url: str | None
    schema: str
    tables: dict[str, str]  # what is published ("customers", "segments") → table name
    from_pipeline: bool = False  # the score stage publishes its own tables too (for_pipeline)

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> DatabaseSettings:
        return cls(
            section["url"], section["schema"], dict(section["tables"]), section["from_pipeline"]
        )

    def for_pipeline(self) -> DatabaseSettings:
        """Where the score stage publishes (with ``from_pipeline``): beside the tables teams
        read, under names of its own (``pipeline_customers``...), never in their place."""
        names = {key: PIPELINE_PREFIX + name for key, name in self.tables.items()}
        return DatabaseSettings(self.url, self.schema, names, self.from_pipeline)

    @property
    def where(self) -> str:
        """The database without its password, for messages and summaries."""
        return redact(self.url)


def publish(frames: dict[str, pd.DataFrame], settings: DatabaseSettings) -> dict[str, int]:
    """Replace the tables of ``settings`` with ``frames`` (keyed like ``settings.tables``), all
    together; returns the rows of each table."""
    with staged(frames, settings) as rows:
        pass
    return rows


@contextmanager
def staged(
    frames: dict[str, pd.DataFrame],
    settings: DatabaseSettings,
    comments: dict[str, dict[str, str]] | None = None,
) -> Iterator[dict]:
    """The new tables written (and committed) under temporary names before the block, and
    swapped in, all together, after it: what files published in the block wait for, so that
    a database that refuses the tables leaves the files as they were. The block failing drops
    the staged tables; the swap failing after it names what stays. Yields the rows of each.

    A column ``as_of_date`` is a DATE; a column named in a table's ``comments`` (by the key of
    its frame) carries its text as the column's comment (what a reader's SQL client shows)."""
    tables = {key: settings.tables[key] for key in frames}
    with _transaction(settings, "cannot write the new tables") as (con, load, schema):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for key, frame in frames.items():
            new = f"{schema}.{_quote(tables[key] + NEW)}"
            con.execute(f"DROP TABLE IF EXISTS {new}")
            load(con, frame, new)
            for day in {AS_OF, PREVIOUS_AS_OF} & set(frame.columns):
                con.execute(f"ALTER TABLE {new} ALTER COLUMN {_quote(day)} TYPE DATE")
            docs = (comments or {}).get(key, {})
            for column in set(docs) & set(frame.columns):
                text = docs[column].replace("'", "''")
                con.execute(f"COMMENT ON COLUMN {new}.{_quote(column)} IS '{text}'")
    faults.checkpoint("database:written")
    try:
        yield {key: len(frame) for key, frame in frames.items()}
    except BaseException:
        with suppress(CvmError), _transaction(settings, "") as (con, _, schema):
            for table in tables.values():
                con.execute(f"DROP TABLE IF EXISTS {schema}.{_quote(table + NEW)}")
        raise
    stays = (
        "cannot replace the previous tables with the new ones, written beside them as "
        f"{', '.join(t + NEW for t in tables.values())}; everything else was published, the "
        "database still holds the previous tables: run the command again to publish them"
    )
    with stops.held(), _transaction(settings, stays) as (con, _, schema):
        for table in tables.values():
            con.execute(f"DROP TABLE IF EXISTS {schema}.{_quote(table)}")
            con.execute(f"ALTER TABLE {schema}.{_quote(table + NEW)} RENAME TO {_quote(table)}")


@contextmanager
def _transaction(settings: DatabaseSettings, failing: str) -> Iterator[tuple[Any, Any, str]]:
    """A connection, the function that loads a frame into a new table and the quoted schema,
    committed after the block. The driver's errors (a server down, a lock, a permission, a bad
    name) become a :class:`CvmError` naming the database (without its password) and what was
    ``failing``."""
    scheme = _scheme(settings)
    try:
        with _connect(scheme, settings.url) as (con, load, catalog):
            yield con, load, catalog + _quote(settings.schema)
            _commit(con)
    except CvmError:
        raise
    except Exception as err:
        raise CvmError(f"{settings.where}: {failing} ({redact(first_line(err))})") from None


def _scheme(settings: DatabaseSettings) -> str:
    scheme = settings.url.split("://", 1)[0] if settings.url else None
    if scheme not in SCHEMES:
        raise CvmError(
            f"export.database.url is {redact(str(settings.url))!r}; expected a URL starting with "
            f"{' or '.join(s + '://' for s in SCHEMES)}"
        )
    return scheme


@contextmanager
def scored_staged(
    table: pd.DataFrame,
    settings: DatabaseSettings | None,
    history: dict[str, pd.DataFrame] | None = None,
) -> Iterator[dict | None]:
    """The scored table, its segment summary and the KPI ``history`` (:mod:`pipeline.history`)
    staged in the database for the block (see :func:`staged`; nothing without settings or a
    URL); the table and the summary carry the as-of date and the models that scored. Yields
    what is published."""
    from models.kpis import COLUMN_DOCS as KPI_DOCS
    from models.scoring import COLUMN_DOCS
    from models.value_views import segment_summary

    if settings is None or settings.url is None:
        yield None
        return
    stamp = ["as_of_date", "clv_model", "churn_model"]
    segments = segment_summary(table).assign(**{c: table[c].iloc[0] for c in stamp})
    frames = {"customers": table, "segments": segments, **(history or {})}
    comments = {"customers": COLUMN_DOCS} | {kind: KPI_DOCS[kind] for kind in history or {}}
    with staged(frames, settings, comments) as rows:
        tables = {key: f"{settings.schema}.{settings.tables[key]}" for key in rows}
        yield {"url": settings.where, "tables": tables, "rows": rows}


def read(settings: DatabaseSettings, key: str) -> pd.DataFrame:
    """A published table, as a downstream reader sees it."""
    scheme = settings.url.split("://", 1)[0]
    with _connect(scheme, settings.url) as (con, _, catalog):
        table = f"{catalog}{_quote(settings.schema)}.{_quote(settings.tables[key])}"
        cur = con.execute(f"SELECT * FROM {table}")
        columns = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


@contextmanager
def _connect(scheme: str, url: str) -> Iterator[tuple[Any, Any]]:
    """A connection in a transaction, the function that loads a frame into a new table, and
    the prefix naming the database (DuckDB names it after its file, like a schema may be)."""
    if scheme == "duckdb":
        import duckdb

        path = Path(url.removeprefix("duckdb:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
        con.execute("BEGIN TRANSACTION")
        try:
            (catalog,) = con.execute("SELECT current_database()").fetchone()
            yield con, _load_duckdb, _quote(catalog) + "."
        finally:
            con.close()  # uncommitted work is rolled back
    else:
        import psycopg

        with psycopg.connect(url) as con:
            yield con, _load_postgres, ""


def _commit(con) -> None:
    if type(con).__module__.startswith("duckdb"):
        con.execute("COMMIT")
        con.execute("BEGIN TRANSACTION")
    else:
        con.commit()


def _load_duckdb(con, frame: pd.DataFrame, table: str) -> None:
    con.register("cvm_frame", frame)
    con.execute(f"CREATE TABLE {table} AS SELECT * FROM cvm_frame")
    con.unregister("cvm_frame")


_PG_TYPES = {"i": "BIGINT", "u": "BIGINT", "f": "DOUBLE PRECISION", "b": "BOOLEAN"}


def _load_postgres(con, frame: pd.DataFrame, table: str) -> None:
    columns = ", ".join(f"{_quote(c)} {_pg_type(frame[c])}" for c in frame.columns)
    con.execute(f"CREATE TABLE {table} ({columns})")
    values = frame.astype(object).where(frame.notna(), None)
    with con.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        for row in values.itertuples(index=False, name=None):
            copy.write_row(row)


def _pg_type(column: pd.Series) -> str:
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if column.dtype.kind == "M":
        return "TIMESTAMP"
    return _PG_TYPES.get(column.dtype.kind, "TEXT")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
