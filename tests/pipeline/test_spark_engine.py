"""engine=spark runs the same expressions as DuckDB: identical clean logs, features and scores.

One Spark session (local[2], from conf/engine/spark.yaml) serves the module; the stages find it
running, use it and leave it running. A separate process checks that a stage that starts Spark
itself is quiet and stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline import config, engine, io
from pipeline.cli import main
from pipeline.errors import CvmError
from tests.conftest import CDNOW_SAMPLE, CSV_MAPPING, REPO, input_roots, read_raw

pytestmark = pytest.mark.spark
# the tests of the module's Spark session run on one pytest-xdist worker: one session to start
ONE_SESSION = pytest.mark.xdist_group("spark")

INGEST_OUTPUTS = ("interim/transactions.parquet", "interim/quarantine.parquet")
FEATURE_TABLES = ("calibration", "scoring", "train_calibration", "train_scoring")
# Spark tuned for logs of a few thousand lines, which it reads in many small jobs: a JVM that
# compiles less (C1 only, serial GC), no generated code per query, two partitions. About a third
# less CPU for this module; the engine's own settings (conf/engine/spark.yaml) are for real logs.
SMALL_LOGS = {
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
}
KEYS = {"transactions": ["source_row"], "quarantine": ["source_row"]}


@pytest.fixture(scope="module")
def spark():
    settings = config.compose(["engine=spark"], REPO / "conf")["engine"]
    settings["conf"].update(SMALL_LOGS)
    with engine.session(settings) as con:
        yield con


def params(directory: Path, *overrides: str, roots: tuple[Path, ...] = ()) -> Path:
    """params.yaml in ``directory`` whose outputs all land in ``directory`` (or the other output
    ``roots``: outside the project the stages run in, the tests' working directory)."""
    d = directory
    cfg = config.compose(
        [
            "tracking.enabled=false",
            f"paths.output_roots=[{','.join(repr(str(r)) for r in (d, *roots))}]",
            input_roots(d),
            f"retrain.lock_file={d}/cvm.lock",
            f"paths.clean={d}/interim/transactions.parquet",
            f"paths.quarantine={d}/interim/quarantine.parquet",
            f"paths.ingest_report={d}/interim/ingest_report.json",
            f"paths.ingest_metrics={d}/interim/ingest_metrics.json",
            f"paths.features_dir={d}/features",
            f"paths.features_report={d}/features/report.json",
            f"paths.scored={d}/scored/customers",
            f"paths.reports_dir={d}/reports",
            *overrides,
        ],
        REPO / "conf",
    )
    if cfg["engine"]["name"] == "spark":
        cfg["engine"]["conf"].update(SMALL_LOGS)
    d.mkdir(parents=True, exist_ok=True)
    config.write_params(cfg, d / "params.yaml")
    return d / "params.yaml"


def run_on_both(tmp_path: Path, stages: tuple[str, ...], *overrides: str) -> tuple[Path, Path]:
    """Run ``stages`` on DuckDB and on Spark into two directories."""
    dirs = []
    for name in ("duckdb", "spark"):
        p = params(tmp_path / name, f"engine={name}", *overrides)
        for stage in stages:
            assert main(["stage", stage, "--params", str(p)]) == 0, (name, stage)
        dirs.append(tmp_path / name)
    return dirs[0], dirs[1]


def assert_same_file(a: Path, b: Path, keys: list[str]) -> None:
    """Same columns and Parquet types; rows sorted by ``keys`` equal (floats to 1e-12)."""
    sa, sb = pq.read_schema(a), pq.read_schema(b)
    assert sa.names == sb.names
    assert [str(t) for t in sa.types] == [str(t) for t in sb.types]
    x = pd.read_parquet(a).sort_values(keys).reset_index(drop=True)
    y = pd.read_parquet(b).sort_values(keys).reset_index(drop=True)
    assert len(x) == len(y)
    for col in x.columns:
        if pd.api.types.is_float_dtype(x[col]):
            np.testing.assert_allclose(y[col], x[col], rtol=1e-12, atol=1e-12, err_msg=col)
        else:
            pd.testing.assert_series_equal(y[col], x[col], check_exact=True)


def assert_same_outputs(a: Path, b: Path, features: bool) -> None:
    for name in INGEST_OUTPUTS:
        assert_same_file(a / name, b / name, ["source_row"])
    report = json.loads((a / "interim/ingest_report.json").read_text())
    assert json.loads((b / "interim/ingest_report.json").read_text()) == report
    if features:
        for name in FEATURE_TABLES:
            table = f"features/{name}.parquet"
            assert_same_file(a / table, b / table, ["cutoff", "customer_id"])
        assert json.loads((b / "features/report.json").read_text()) == json.loads(
            (a / "features/report.json").read_text()
        )


@ONE_SESSION
def test_the_cdnow_sample_gives_the_same_log_and_features(spark, tmp_path):
    duck, spk = run_on_both(
        tmp_path,
        ("ingest", "features"),
        "data=cdnow_sample",
        f"data.path={CDNOW_SAMPLE}",
        "features.train_cutoffs=2",
    )
    assert_same_outputs(duck, spk, features=True)
    assert len(pd.read_parquet(spk / "features/calibration.parquet")) == 2357


@ONE_SESSION
def test_a_simulated_parquet_log_gives_the_same_log_and_features(spark, tmp_path):
    from models.simulate import SimulationSettings, simulate_log

    log = tmp_path / "transactions.parquet"
    transactions, _ = simulate_log(SimulationSettings(customers=300, seed=3))
    io.write_parquet(transactions, log)
    duck, spk = run_on_both(
        tmp_path,
        ("ingest", "features"),
        "data=simulated",
        f"data.path={log}",
        "features.time_unit=days",
        "features.train_cutoffs=2",
    )
    assert_same_outputs(duck, spk, features=True)
    clean = pd.read_parquet(spk / "interim/transactions.parquet")
    assert len(clean) == len(transactions) and clean.source_row.min() == 1


MESSY = (
    "cust,when,value,qty\n"
    "c1,2024-01-05,10.50,1\n"
    ",2024-01-06,3.00,1\n"
    "c2,,3.00,1\n"
    "c2,2024-13-45,3.00,1\n"
    "c2,2024-01-06,,1\n"
    "c2,2024-01-06,twelve,1\n"
    "c2,2024-01-06,inf,1\n"
    "c2,2024-01-06,NaN,1\n"
    "c2,2024-01-06,3.00,two\n"
    "c2,2023-12-31,3.00,1\n"
    "c2,2025-01-01,3.00,1\n"
    "c2,2024-01-06,-3.00,1\n"
    "c1,2024-01-05,10.50,1\n"
    "c2\n"
    "\n"
    '"c,5","2024-03-01","7.25","2"\n'
    '"c6",2024-03-02,"1,5",1\n'
    "c3,2024-02-01,5,1\n"
    "c4,2024-03-01,0,1\n"
)


@ONE_SESSION
def test_a_messy_csv_is_classified_alike(spark, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text(MESSY)
    duck, spk = run_on_both(
        tmp_path,
        ("ingest",),
        f"data.path={log}",
        *CSV_MAPPING,
        "data.rules.zero_amounts=quarantine",
    )
    assert_same_outputs(duck, spk, features=False)
    report = json.loads((spk / "interim/ingest_report.json").read_text())
    assert report["rows_read"] == 19 and report["rows_kept"] == 3
    assert report["quarantined_by_reason"] == {
        "duplicate": 1,
        "missing_amount": 1,
        "blank_line": 1,
        "missing_customer_id": 1,
        "missing_timestamp": 2,  # the empty field and the short line
        "non_finite_amount": 2,  # inf and NaN
        "non_numeric_amount": 2,  # twelve and a quoted 1,5
        "non_numeric_quantity": 1,
        "return": 1,
        "timestamp_after_end": 1,
        "timestamp_before_start": 1,
        "unparseable_timestamp": 1,
        "zero_amount": 1,
    }
    clean = pd.read_parquet(spk / "interim/transactions.parquet")
    assert clean.customer_id.tolist() == ["c,5", "c1", "c3"]
    assert clean.source_row.tolist() == [17, 2, 19]


IDS = (
    b"cust,when,value,qty\n"
    b"77,2024-01-05,10,1\n"
    b'" 77",2024-02-05,11,1\n'
    b'"77 ",2024-03-05,12,1\n'
    b'"7\x008",2024-03-06,12,1\n'  # a NUL byte
    b'"7\t9",2024-03-07,3,1\n'
)


@ONE_SESSION
@pytest.mark.parametrize(
    ("rule", "ids", "trimmed"),
    [("trim", ["77", "77", "77", "7\t9"], 2), ("exact", [" 77", "77", "77 ", "7\t9"], 0)],
)
def test_customer_ids_are_kept_or_trimmed_alike_and_counted(spark, tmp_path, rule, ids, trimmed):
    """Ids that differ only by blanks were merged silently; a NUL byte broke the export."""
    log = tmp_path / "log.csv"
    log.write_bytes(IDS)
    rules = (f"data.rules.customer_ids={rule}",)
    duck, spk = run_on_both(tmp_path, ("ingest",), f"data.path={log}", *CSV_MAPPING, *rules)
    assert_same_outputs(duck, spk, features=False)
    report = json.loads((spk / "interim/ingest_report.json").read_text())
    assert report["quarantined_by_reason"] == {"nul_byte_in_customer_id": 1}
    assert report["customer_ids_trimmed"] == trimmed
    assert report["customers"] == len(set(ids))
    clean = pd.read_parquet(spk / "interim/transactions.parquet")
    assert sorted(clean.customer_id) == sorted(ids)


BAD_LINES = (
    b"cust,when,value,qty\n"
    b"c1,2024-01-05,10.50,1\n"
    b"c2,2024-01-06,3.00,1,extra\n"  # ragged
    b'"c3"x,2024-01-06,3.00,1\n'  # a broken quoted field
    b"c\xe9,2024-01-07,4,1\n"  # not UTF-8
    b"   \n"
    b'"c5\nsecond ""line""",2024-01-08,5,1\n'  # a quoted line break: one row
    b'c6,"2024-01-09","6,5",1,x,y\n'
    b"c7,2024-01-10,7,1\n"
)


@ONE_SESSION
def test_bad_lines_are_quarantined_alike(spark, tmp_path):
    log = tmp_path / "log.csv"
    log.write_bytes(BAD_LINES)
    duck, spk = run_on_both(tmp_path, ("ingest",), f"data.path={log}", *CSV_MAPPING)
    assert_same_outputs(duck, spk, features=False)
    quarantine = pd.read_parquet(spk / "interim/quarantine.parquet")
    assert dict(zip(quarantine.source_row, quarantine.reason, strict=True)) == {
        3: "malformed_line",
        4: "malformed_line",
        5: "invalid_utf8",
        6: "blank_line",
        9: "malformed_line",
    }
    clean = pd.read_parquet(spk / "interim/transactions.parquet")
    assert dict(zip(clean.source_row, clean.customer_id, strict=True)) == {
        2: "c1",
        7: 'c5\nsecond "line"',
        10: "c7",
    }


@ONE_SESSION
def test_a_file_that_is_not_a_log_stops_with_the_same_message_on_spark(spark, tmp_path):
    cases = {
        "ragged.csv": ("cust,when,value\nc1,2024-01-05,3\nc2,2024,4,5\nc3,5,6,7\n", "2 of its 3"),
        "header.csv": ("cust,when,value\n", "no data rows"),
    }
    for name, (text, message) in cases.items():
        log = tmp_path / name
        log.write_text(text)
        for con in (spark, None):
            with pytest.raises(CvmError, match=message):
                if con is None:
                    read_raw(log, "csv", ["cust", "when", "value"])
                else:
                    io.raw_table(con, log, "csv", ["cust", "when", "value"])


@ONE_SESSION
def test_spark_scores_customers_like_duckdb(spark, pipeline_outputs, tmp_path):
    """The score stage on Spark, with the models and features of the DuckDB pipeline run."""
    out = pipeline_outputs
    p = params(
        tmp_path,
        "engine=spark",
        "data=cdnow_sample",
        f"data.path={CDNOW_SAMPLE}",
        f"paths.features_dir={out}/data/features",
        f"paths.features_report={out}/data/features/report.json",
        f"paths.clv_dir={out}/artifacts/clv",
        f"paths.churn_dir={out}/artifacts/churn",
        roots=(out,),
    )
    assert main(["stage", "score", "--params", str(p)]) == 0
    duck = pd.read_parquet(out / "data/scored/customers.parquet")
    spk = pd.read_parquet(tmp_path / "scored/customers.parquet")
    assert list(spk.columns) == list(duck.columns) and len(spk) == len(duck) == 2357
    for col in duck.columns:
        if pd.api.types.is_float_dtype(duck[col]):
            np.testing.assert_allclose(spk[col], duck[col], rtol=1e-12, atol=1e-12, err_msg=col)
        else:
            pd.testing.assert_series_equal(spk[col], duck[col], check_exact=True)
    assert json.loads((tmp_path / "reports/score_summary.json").read_text())["customers"] == 2357


def test_the_driver_s_own_java_options_keep_spark_quiet():
    base = {"name": "spark", "master": "local[2]"}
    mine = engine.spark_conf({**base, "conf": {"spark.driver.extraJavaOptions": "-Xss4m"}})
    options = mine["spark.driver.extraJavaOptions"].split()
    assert options[1:] == ["-Xss4m"] and options[0].startswith("-Dlog4j2.configurationFile=")
    own = {"spark": {"driver": {"extraJavaOptions": "-Dlog4j2.configurationFile=my.properties"}}}
    theirs = engine.spark_conf({**base, "conf": own})
    assert theirs["spark.driver.extraJavaOptions"] == "-Dlog4j2.configurationFile=my.properties"


def test_a_stage_starts_spark_quietly_and_stops_it(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("customer_id,date,dollar_value,number_of_cds\n1,19970101,3,1\n2,1997,4,1\n")
    p = params(tmp_path, "engine=spark", f"data.path={log}", "data.format=csv")
    script = textwrap.dedent(
        f"""
        import signal
        from pathlib import Path
        from pyspark import SparkContext
        from pyspark.sql import SparkSession
        from pipeline import config, engine
        from pipeline.cli import main
        assert main(["stage", "ingest", "--params", {str(p)!r}]) == 0
        assert SparkSession.getActiveSession() is None
        assert SparkContext._active_spark_context is None
        print("stopped")
        # the caller's Ctrl-C handler (`cvm`'s defers a stop during a commit) stays in place:
        # Spark's own, which it leaves behind when it stops, does not replace it
        def caller(number, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGINT, caller)
        with engine.session(config.load_params(Path({str(p)!r}))["engine"]):
            assert signal.getsignal(signal.SIGINT) is caller
        assert signal.getsignal(signal.SIGINT) is caller
        print("handler kept")
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["stopped", "handler", "kept"]
    # the JVM's own notice about incubator modules is the only line on stderr
    noise = [
        line
        for line in run.stderr.splitlines()
        if line.strip() and not line.startswith("WARNING: Using incubator modules")
    ]
    assert noise == []
    report = json.loads((tmp_path / "interim/ingest_report.json").read_text())
    assert report["quarantined_by_reason"] == {"unparseable_timestamp": 1}


@ONE_SESSION
def test_spark_reports_the_progress_of_its_running_job(spark):
    import threading
    import time

    fraction = engine.query_fraction(spark)
    assert fraction() == 0.0  # no job
    session = spark._session
    seen: list[float] = []
    # a job of many short tasks: the share of finished tasks climbs while it runs
    frame = session.range(0, 2_000_000, numPartitions=200).selectExpr("sum(id)")
    job = threading.Thread(target=frame.collect)
    job.start()
    while job.is_alive():
        seen.append(fraction())
        time.sleep(0.005)
    job.join()
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert any(0.0 < f < 1.0 for f in seen), seen[-20:]


EXCEL = (  # a spreadsheet's CSV export: CRLF line ends, line breaks inside quoted cells
    b"cust,when,value,qty\r\n"
    b'"a\r\nb",2024-01-05,10,1\r\n'  # a quoted line break
    b"c2,2024-01-06,3,1\r\n"
    b'"c\rd",2024-01-07,4,1\r\n'  # a quoted CR alone
    b'"e",2024-01-08,x,1\r\n'  # a bad amount: quarantined by row
    b"c3,2024-02-01,5,1\r\n"
)


@ONE_SESSION
@pytest.mark.parametrize("lone_cr", [True, False])
def test_a_crlf_csv_with_line_breaks_in_quoted_fields_is_read_by_row_alike(
    spark, tmp_path, lone_cr
):
    """RFC 4180: a CRLF file whose quoted fields hold a line break or a CR alone was refused
    whole; each record is a row, at the line it starts on."""
    log = tmp_path / "log.csv"
    log.write_bytes(EXCEL if lone_cr else EXCEL.replace(b'"c\rd"', b'"c d"'))
    duck, spk = run_on_both(tmp_path, ("ingest",), f"data.path={log}", *CSV_MAPPING)
    assert_same_outputs(duck, spk, features=False)
    report = json.loads((spk / "interim/ingest_report.json").read_text())
    assert report["rows_read"] == 5 and report["quarantined_by_reason"] == {"non_numeric_amount": 1}
    clean = pd.read_parquet(spk / "interim/transactions.parquet")
    found = dict(zip(clean.source_row, clean.customer_id, strict=True))
    assert found == {2: "a\nb", 4: "c2", 5: "c\rd" if lone_cr else "c d", 7: "c3"}
    quarantine = pd.read_parquet(spk / "interim/quarantine.parquet")
    assert quarantine.source_row.tolist() == [6]
