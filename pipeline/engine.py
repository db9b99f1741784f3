"""The engine that runs the transaction-level Ibis expressions: DuckDB in-process, or Spark.

A stage opens the engine with :func:`session` and closes it at the end. Everything engine-specific
about reading a raw log and writing a Parquet file lives here; the transforms themselves are the
same Ibis expressions on both (``features/``).
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import outputs
from pipeline.errors import CvmError

if TYPE_CHECKING:
    import pandas as pd

ENGINES = ("duckdb", "spark")
LOG4J_CONFIG = Path(__file__).with_name("spark-log4j2.properties")

# Spark settings the pipeline relies on; ``engine.conf`` may override any of them.
SPARK_DEFAULTS: dict[str, str] = {
    # timestamps without a time zone, as in DuckDB and in the Parquet files pandas reads
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.debug.maxToStringFields": "1000",  # no warning about long plans
}


@contextmanager
def session(engine: dict[str, Any]) -> Iterator[Any]:
    """An Ibis connection for ``engine`` (the ``engine`` config section), closed on exit.

    DuckDB gets ``threads``, ``memory_limit`` and ``temp_directory`` (where it spills; a
    temporary directory removed on exit when null). Spark starts a session from ``master`` and
    ``conf`` and stops it on exit, unless a session was already running (a notebook or a test):
    that one is used as it is and left running. The caller's Ctrl-C handler stays in place.
    """
    name = engine.get("name")
    if name == "duckdb":
        with ExitStack() as stack:
            spill = engine.get("temp_directory") or stack.enter_context(
                tempfile.TemporaryDirectory(prefix="cvm-duckdb-")
            )
            con = _duckdb(engine, spill)
            stack.callback(con.disconnect)
            yield con
    elif name == "spark":
        handler = signal.getsignal(signal.SIGINT)
        spark, started = _spark_session(engine)
        if started and threading.current_thread() is threading.main_thread() and handler:
            # the SparkContext put its own Ctrl-C handler in place of the caller's (`cvm`'s,
            # which defers a stop while outputs are committed) and leaves it after it stops
            signal.signal(signal.SIGINT, handler)
        try:
            yield _ibis_spark(spark)
        finally:
            if started:
                spark.stop()
    else:
        raise CvmError(f"engine.name is {name!r}; expected one of {', '.join(ENGINES)}")


def connect(engine: dict[str, Any]):
    """An Ibis connection for ``engine`` that the caller keeps open (see :func:`session`)."""
    name = engine.get("name")
    if name == "duckdb":
        return _duckdb(engine, engine.get("temp_directory"))
    if name == "spark":
        return _ibis_spark(_spark_session(engine)[0])
    raise CvmError(f"engine.name is {name!r}; expected one of {', '.join(ENGINES)}")


def dialect(con) -> str:
    """The backend's name (``duckdb`` or ``pyspark``), which picks engine-specific functions."""
    return con.name


def _duckdb(engine: dict[str, Any], spill: str | None):
    import ibis

    con = ibis.duckdb.connect()
    con.raw_sql(f"SET threads = {int(engine.get('threads', 2))}")
    # progress is measured (for query_fraction) but never printed by DuckDB itself
    con.raw_sql("SET enable_progress_bar = true")
    con.raw_sql("SET enable_progress_bar_print = false")
    con.raw_sql("SET progress_bar_time = 0")
    if engine.get("memory_limit"):
        con.raw_sql(f"SET memory_limit = '{engine['memory_limit']}'")
    if spill:
        Path(spill).mkdir(parents=True, exist_ok=True)
        con.raw_sql(f"SET temp_directory = '{_sql_text(str(spill))}'")
    return con


def query_progress(con, label: str, size: int, unit: str = "rows", queries: int = 1):
    """A context manager showing on a terminal the progress of the ``queries`` queries it runs
    over ``size`` ``unit``, with rate and ETA from the engine's own estimate; it gives the
    function to call after each query (see :func:`pipeline.progress.tracked`)."""
    from pipeline.progress import Progress, tracked

    return tracked(Progress(label, unit), size, query_fraction(con), queries)


def query_fraction(con) -> Callable[[], float]:
    """A function returning the engine's estimate (0 to 1) of how much of the query it is
    running is done: DuckDB's query progress, or the finished share of the tasks of Spark's
    active stages. Safe to call from another thread while the query runs."""
    if dialect(con) == "duckdb":
        raw = con.con
        return lambda: max(raw.query_progress(), 0.0) / 100.0
    tracker = con._session.sparkContext.statusTracker()

    def spark_fraction() -> float:
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        stages = [s for s in stages if s is not None]
        total = sum(s.numTasks for s in stages)
        return sum(s.numCompletedTasks for s in stages) / total if total else 0.0

    return spark_fraction


def spark_conf(engine: dict[str, Any]) -> dict[str, str]:
    """The Spark settings of ``engine``: the defaults, then ``engine.conf`` (nested or dotted),
    with the project's log configuration among the driver's Java options."""
    conf = dict(SPARK_DEFAULTS)
    conf.update({k: _spark_value(v) for k, v in _flatten(engine.get("conf") or {}).items()})
    if str(engine.get("master", "local[2]")).startswith("local"):
        conf.setdefault("spark.driver.bindAddress", "127.0.0.1")
        conf.setdefault("spark.driver.host", "127.0.0.1")
    # Spark's quiet log configuration joins the driver's own Java options unless they name one
    options = conf.get("spark.driver.extraJavaOptions", "")
    if "log4j2.configurationFile" not in options:
        quiet = f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"
        conf["spark.driver.extraJavaOptions"] = f"{quiet} {options}".strip()
    return conf


def _spark_session(engine: dict[str, Any]):
    """(session, started): the running Spark session, or a new one from ``engine``."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - pyspark is a dependency
        raise CvmError("engine.name is 'spark' but pyspark is not installed") from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    master = str(engine.get("master", "local[2]"))
    if master.startswith("local"):
        # the Python workers run this interpreter; no warning about the host's address
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(master).appName(str(engine.get("app_name", "cvm")))
    for key, value in spark_conf(engine).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # the JVM's error: no Java, a bad master URL, a bad setting
        raise CvmError(f"engine: cannot start Spark (master {master}): {err}") from None
    spark.sparkContext.setLogLevel(str(engine.get("log_level", "WARN")).upper())
    return spark, True


def _ibis_spark(spark):
    import ibis

    return ibis.pyspark.connect(spark)


def _flatten(conf: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in conf.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _spark_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


# --- reading a raw log -------------------------------------------------------------------------


def text_lines(con, path: Path, lenient: bool = False, lf_only: bool = False):
    """Every line of a text file: ``source_row`` (1-based line number), ``line`` (text), and
    ``reason`` and ``detail`` for a line that cannot be read as text (its ``line`` is NULL).

    With ``lf_only`` a line ends at LF alone (its CR before the LF dropped), so that a CR inside
    a field does not end one: the engines' line readers split at a lone CR too. DuckDB then
    reads the file whole into memory.

    Lines are read in file order and numbered without a sort: DuckDB numbers them as it streams
    the file; Spark numbers each split of the file and adds the lines of the splits before it.
    An empty line is an empty string. Without ``lenient`` every line must be UTF-8 (the caller
    checked); with it, a line that is not is an ``invalid_utf8`` row (and on DuckDB a line it
    cannot read at all a ``malformed_line``).
    """
    if dialect(con) == "duckdb":
        if lf_only:
            return _duckdb_view(
                con,
                "cvm_lines",
                "SELECT i AS source_row, regexp_replace(parts[i], '\\r$', '') AS line, "
                "NULL::VARCHAR AS reason, NULL::VARCHAR AS detail FROM ("
                "SELECT string_split(content, chr(10)) AS parts "
                f"FROM read_text('{_sql_text(str(path))}')), range(1, len(parts) + 1) t(i) "
                "WHERE i < len(parts) OR parts[i] <> ''",
            )
        if lenient:
            return _duckdb_lenient_lines(con, path)
        return _duckdb_view(
            con,
            "cvm_lines",
            "SELECT row_number() OVER () AS source_row, coalesce(line, '') AS line, "
            f"NULL::VARCHAR AS reason, NULL::VARCHAR AS detail FROM {_duckdb_lines(path)}",
        )
    from pyspark.sql import functions as F

    spark = con._session
    reader = spark.read.option("lineSep", "\n") if lf_only else spark.read
    value = F.regexp_replace("value", "\r$", "") if lf_only else F.col("value")
    ids = reader.text(_absolute(path)).select(
        F.monotonically_increasing_id().alias("_id"), value.alias("line")
    )
    # the id is (split index << 33) + position in the split: count the lines of each split
    split = F.shiftright("_id", 33)
    counts = dict(ids.groupBy(split.alias("s")).count().collect())
    offsets, total = [], 0
    for s in range(max(counts, default=-1) + 1):
        offsets.append(total)
        total += counts.get(s, 0)
    if not offsets:
        offsets = [0]
    start = F.element_at(F.array(*[F.lit(o) for o in offsets]), (split + 1).cast("int"))
    # Spark keeps a line's bytes as they are: a line that is not UTF-8 is found, not replaced
    text = F.expr("is_valid_utf8(line)") if lenient else F.lit(True)
    lines = ids.select(
        (start + F.col("_id").bitwiseAND((1 << 33) - 1) + 1).alias("source_row"),
        F.when(text, F.coalesce(F.col("line"), F.lit(""))).alias("line"),
        F.when(~text, F.lit("invalid_utf8")).cast("string").alias("reason"),
        F.when(~text, F.lit(_NOT_UTF8)).cast("string").alias("detail"),
    )
    return _spark_view(con, lines, "cvm_lines")


_NOT_UTF8 = "the line is not UTF-8 text"
_REJECTED = {"INVALID ENCODING": ("invalid_utf8", _NOT_UTF8)}


def _duckdb_lines(path: Path, options: str = "") -> str:
    """DuckDB's ``read_csv`` of ``path`` as one text column ``line``, a row per line."""
    return (
        f"read_csv('{_sql_text(str(path))}', columns = {{'line': 'VARCHAR'}}, header = false, "
        "delim = '\\0', quote = '', escape = '', auto_detect = false, "
        f"encoding = 'utf-8'{options})"
    )


def _duckdb_lenient_lines(con, path: Path):
    """The lines of ``path`` when some are not UTF-8: DuckDB skips the lines it cannot read and
    records their numbers in a table of rejects (one extra pass); the k-th line it keeps is
    numbered past the rejects whose number minus their rank is below k (an as-of join)."""
    import ibis.util

    rejects = ibis.util.gen_name("cvm_rejects")
    skip = ", ignore_errors = true"
    store = f"{skip}, store_rejects = true, rejects_table = '{rejects}', "
    con.raw_sql(
        f"SELECT count(*) FROM {_duckdb_lines(path, store + f"rejects_scan = '{rejects}_scan'")}"
    ).fetchall()
    utf8 = "error_type = 'INVALID ENCODING'"
    return _duckdb_view(
        con,
        "cvm_lines",
        f"""WITH rejected AS (
            SELECT CAST(line AS BIGINT) AS line, min(error_type)::VARCHAR AS error_type
            FROM "{rejects}" GROUP BY 1
        ), ranked AS (
            SELECT *, row_number() OVER (ORDER BY line) AS rank FROM rejected
        ), shifts AS (
            SELECT line - rank AS kept_before, max(rank) AS skipped FROM ranked GROUP BY 1
        ), kept AS (
            SELECT row_number() OVER () AS k, coalesce(line, '') AS line
            FROM {_duckdb_lines(path, skip)}
        )
        SELECT k + coalesce(skipped, 0) AS source_row, kept.line,
            NULL::VARCHAR AS reason, NULL::VARCHAR AS detail
        FROM kept ASOF LEFT JOIN shifts ON kept.k > shifts.kept_before
        UNION ALL
        SELECT line, NULL::VARCHAR,
            CASE WHEN {utf8} THEN 'invalid_utf8' ELSE 'malformed_line' END,
            CASE WHEN {utf8} THEN '{_NOT_UTF8}'
                ELSE 'the engine cannot read the line (' || lower(error_type) || ')' END
        FROM ranked""",
    )


def parquet_rows(con, path: Path, columns: list[str]):
    """``source_row`` (1-based row number in the file) and ``columns`` of a Parquet file."""
    if dialect(con) == "duckdb":
        cols = ", ".join(f'"{c}"' for c in columns)
        return _duckdb_view(
            con,
            "cvm_parquet",
            f"SELECT file_row_number + 1 AS source_row, {cols} "
            f"FROM read_parquet('{_sql_text(str(path))}', file_row_number = true)",
        )
    from pyspark.sql import functions as F

    frame = con._session.read.parquet(_absolute(path))
    rows = frame.select(
        (F.col("_metadata.row_index") + 1).alias("source_row"), *[F.col(f"`{c}`") for c in columns]
    )
    return _spark_view(con, rows, "cvm_parquet")


def read_parquet(con, path: Path):
    """A Parquet file as a table of the engine."""
    return con.read_parquet(_absolute(path))


def _absolute(path: Path) -> str:
    # Spark resolves a relative path against the directory its JVM started in, not the current one
    return str(Path(path).resolve())


def _duckdb_view(con, prefix: str, query: str):
    import ibis.util

    name = ibis.util.gen_name(prefix)
    con.raw_sql(f'CREATE TEMP VIEW "{name}" AS {query}')
    return con.table(name)


def _spark_view(con, frame, prefix: str):
    import ibis.util

    name = ibis.util.gen_name(prefix)
    frame.createOrReplaceTempView(name)
    return con.table(name)


# --- writing -----------------------------------------------------------------------------------


def write_parquet(con, expr, path: Path) -> int:
    """Write ``expr`` to the Parquet file ``path`` from the engine; returns its rows.

    Columns get the types of ``expr``'s schema (DuckDB sums integers to HUGEINT, which Parquet
    would store as double). When ``expr`` ends in ``order_by`` on columns, the file is in that
    order. DuckDB streams the result to the file, its sort spilling to disk beyond the memory
    limit. Spark writes it as one partition into a directory beside ``path`` and moves the single
    part file into place.
    """
    import pyarrow.parquet as pq

    body, keys = _split_order(expr)
    con._run_pre_execute_hooks(body)  # registers in-memory tables, as Ibis's own writers do
    if dialect(con) == "duckdb":
        _duckdb_copy(con, con.compile(body), body.schema(), path, keys)
    else:
        frame = con._session.sql(con.compile(body))
        if keys:
            frame = frame.orderBy(
                *[
                    frame[n].asc_nulls_last() if asc else frame[n].desc_nulls_last()
                    for n, asc in keys
                ]
            )
        with outputs.scratch(Path(path).resolve().parent, path.name) as parts:
            frame.coalesce(1).write.mode("overwrite").parquet(str(parts / "out"))
            (part,) = (parts / "out").glob("part-*.parquet")
            os.replace(part, path)
    return pq.read_metadata(path).num_rows


def stage(con, expr, path: Path):
    """``expr`` computed once into the Parquet file ``path``, and read back from it.

    Later queries read the file: nothing of it is held in the engine's memory.
    """
    write_parquet(con, expr, path)
    return read_parquet(con, path)


def _duckdb_copy(con, query: str, types, path: Path, keys=()) -> None:
    mapper = con.compiler.type_mapper
    cols = ", ".join(
        f"CAST({_quote(n)} AS {mapper.from_ibis(t).sql('duckdb')}) AS {_quote(n)}"
        for n, t in types.items()
    )
    copy = (
        f"COPY (SELECT {cols} FROM ({query}) AS body{_order_sql(keys)}) "
        f"TO '{_sql_text(str(path))}' (FORMAT parquet)"
    )
    if not keys:
        con.raw_sql(copy)
        return
    # the sort fixes the order; keeping its input's order as well only makes DuckDB hold more
    # in memory (a sorted 4-cutoff training table at 4 M customers ran out of 2 GB with it)
    con.raw_sql("SET preserve_insertion_order = false")
    try:
        con.raw_sql(copy)
    finally:
        con.raw_sql("SET preserve_insertion_order = true")


def _split_order(expr) -> tuple[Any, list[tuple[str, bool]]]:
    """(``expr`` without its final ``order_by``, the sort keys as (column, ascending))."""
    import ibis.expr.operations as ops

    op = expr.op()
    if not isinstance(op, ops.Sort):
        return expr, []
    keys = []
    for key in op.keys:
        if not isinstance(key.arg, ops.Field):
            raise ValueError(f"write_parquet sorts by columns only, not {key.arg}")
        keys.append((key.arg.name, key.ascending))
    return op.parent.to_expr(), keys


def _order_sql(keys: list[tuple[str, bool]]) -> str:
    if not keys:
        return ""
    parts = [f"{_quote(n)} {'ASC' if asc else 'DESC'} NULLS LAST" for n, asc in keys]
    return " ORDER BY " + ", ".join(parts)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def map_on_spark(engine_cfg: dict, features_path: Path, scorer, features: pd.DataFrame):
    """``scorer`` (a frame of customers -> ``customer_id``, float and text columns) run by
    Spark's executors over partitions of the feature file (``mapInPandas``, the scorer
    broadcast); the result aligned with ``features``."""
    import pandas as pd
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    example = scorer(features.iloc[:1])
    schema = StructType(
        [StructField("customer_id", StringType(), False)]
        + [
            StructField(c, DoubleType() if pd.api.types.is_float_dtype(t) else StringType(), True)
            for c, t in example.dtypes.items()
            if c != "customer_id"
        ]
    )
    with session(engine_cfg) as con:
        spark = con._session
        shared = spark.sparkContext.broadcast(scorer)

        def score_partition(batches):
            score = shared.value
            for batch in batches:
                yield score(batch)

        frame = spark.read.parquet(str(features_path.resolve()))
        scores = frame.mapInPandas(score_partition, schema).toArrow().to_pandas()
        shared.destroy()
    scores = scores.set_index("customer_id").reindex(features["customer_id"].astype(str))
    if scores["churn_probability"].isna().any() or len(scores) != len(features):
        raise RuntimeError("Spark scored a different set of customers than the feature table")
    return scores.reset_index()
