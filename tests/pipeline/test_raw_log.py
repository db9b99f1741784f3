"""The engine reads raw logs itself: verbatim text, line numbers, clear errors; its settings."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import engine, io
from pipeline.cli import main
from pipeline.errors import CvmError
from tests.conftest import CDNOW_MASTER, read_raw

COLUMNS = ["cust", "when", "value"]
DUCKDB = {"name": "duckdb", "threads": 2}


def read(tmp_path: Path, data: bytes, fmt: str = "csv", **kwargs) -> pd.DataFrame:
    log = tmp_path / "log.txt"
    log.write_bytes(data)
    return read_raw(log, fmt, kwargs.pop("columns", COLUMNS), **kwargs).drop(
        columns=["line_reason", "line_detail"]
    )


def test_quoted_fields_blank_lines_and_crlf_keep_their_text_and_line(tmp_path):
    data = (
        b'\xef\xbb\xbf"cust",when,value\r\n'  # BOM and a quoted header
        b'"c,1","2024-01-05","1,5"\r\n'  # delimiters inside quotes
        b'"a ""b""",2024-01-06,  3 \r\n'  # doubled quotes; spaces stay
        b"\r\n"  # a blank line is a row of missing values (quarantined as blank_line)
        b"c3,2024-01-07\r\n"  # a short line: the absent field is missing
        b'c4,x"y,5'  # a quote inside an unquoted field; no final newline
    )
    rows = read(tmp_path, data).to_dict("records")
    assert [r["source_row"] for r in rows] == [2, 3, 4, 5, 6]
    assert rows[0] == {"source_row": 2, "cust": "c,1", "when": "2024-01-05", "value": "1,5"}
    assert (rows[1]["cust"], rows[1]["value"]) == ('a "b"', "  3 ")
    assert rows[2]["cust"] == "" and pd.isna(rows[2]["when"])
    assert rows[3]["cust"] == "c3" and pd.isna(rows[3]["value"])
    assert (rows[4]["when"], rows[4]["value"]) == ('x"y', "5")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"cust,when,value\nc1,2024-01-05,3,\n", "1 of its 1 rows are not UTF-8 text or do not"),
        (b"cust,when,value\nc1,2024-01-05,3\nc2,\xe9t\xe9,4\nc3,\xff,\n", "are not UTF-8"),
        (b"cust,when,value\r\n", "no data rows"),
        (
            b"cust,when\nc1,2024-01-05\n",
            "missing column(s) value named in data.mapping; the file has cust, when",
        ),
    ],
)
def test_a_bad_file_names_the_file(tmp_path, data, message):
    with pytest.raises(CvmError, match=r"log\.txt: ") as err:
        read(tmp_path, data)
    assert message in str(err.value)


def test_a_delimiter_that_cannot_separate_fields_is_refused(tmp_path):
    with pytest.raises(CvmError, match="data.delimiter is '\"'"):
        read(tmp_path, b'cust"when"value\nc1"2024"3\n', delimiter='"')


def test_a_whitespace_log_ignores_leading_and_repeated_blanks():
    raw = read_raw(CDNOW_MASTER, "whitespace", ["customer_id", "date", "dollar_value"])
    assert len(raw) == 69659 and raw.line_reason.isna().all()
    assert raw.iloc[0].drop(["line_reason", "line_detail"]).to_dict() == {
        "source_row": 2,
        "customer_id": "00001",
        "date": "19970101",
        "dollar_value": "11.77",
    }
    assert raw.source_row.tolist() == list(range(2, 69661))


def test_a_parquet_log_keeps_its_types_and_counts_rows_across_row_groups(tmp_path):
    log = tmp_path / "log.parquet"
    table = pa.table({"cust": [f"c{i}" for i in range(10)], "value": [float(i) for i in range(10)]})
    pq.write_table(table, log, row_group_size=3)
    raw = read_raw(log, "parquet", ["value", "cust"])
    assert raw.source_row.tolist() == list(range(1, 11))
    assert raw.cust.tolist() == [f"c{i}" for i in range(10)] and raw.value.dtype == "float64"


def test_duckdb_settings_are_applied_and_it_spills_to_the_temp_directory(tmp_path):
    spill = tmp_path / "spill"
    settings = {"name": "duckdb", "threads": 1, "memory_limit": "64MB", "temp_directory": spill}
    with engine.session(settings) as con:
        got = con.raw_sql(
            "SELECT current_setting('threads'), current_setting('memory_limit'), "
            "current_setting('temp_directory')"
        ).fetchone()
        assert got[0] == 1 and got[1] in ("64.0 MiB", "61.0 MiB") and Path(got[2]) == spill
        # a table several times the memory limit: its blocks go to the temp directory
        con.raw_sql("CREATE TEMP TABLE big AS SELECT md5(i::VARCHAR) AS h FROM range(3000000) t(i)")
        files = con.raw_sql("SELECT path FROM duckdb_temporary_files()").fetchall()
        assert files and all(Path(p).parent == spill for (p,) in files)
        assert con.raw_sql("SELECT count(DISTINCT h) FROM big").fetchone() == (3000000,)


def test_the_default_spill_directory_is_removed_with_the_session():
    with engine.session(DUCKDB) as con:
        (spill,) = con.raw_sql("SELECT current_setting('temp_directory')").fetchone()
        assert Path(spill).is_dir() and Path(spill).name.startswith("cvm-duckdb-")
    assert not Path(spill).exists()


def test_an_unknown_engine_is_named(make_params, tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("customer_id,date,dollar_value,number_of_cds\n1,19970101,3,1\n")
    params = make_params(
        f"data.path={log}", "data.format=csv", "engine.name=polars", "tracking.enabled=false"
    )
    assert main(["stage", "ingest", "--params", str(params)]) == 2
    assert "engine.name is 'polars'; expected one of duckdb, spark" in capsys.readouterr().err


def test_the_outputs_are_replaced_together(make_params, tmp_path, capsys):
    log = tmp_path / "log.csv"
    log.write_text("customer_id,date,dollar_value,number_of_cds\n1,19970101,3,1\n")
    ok = make_params(f"data.path={log}", "data.format=csv", "tracking.enabled=false")
    assert main(["stage", "ingest", "--params", str(ok)]) == 0
    clean = tmp_path / "data/interim/transactions.parquet"
    before = clean.read_bytes()
    log.write_text("customer_id,date,dollar_value,number_of_cds\n2,19970102,4,1\n")
    (tmp_path / "blocked").write_text("a file where the quarantine's directory should be")
    bad = make_params(
        f"data.path={log}",
        "data.format=csv",
        "tracking.enabled=false",
        f"paths.quarantine={tmp_path}/blocked/quarantine.parquet",
    )
    assert main(["stage", "ingest", "--params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "blocked" in err and "a file stands where a folder is needed" in err, err
    assert clean.read_bytes() == before
    assert sorted(p.name for p in clean.parent.iterdir()) == [
        "ingest_metrics.json",
        "ingest_report.json",
        "quarantine.parquet",
        "transactions.parquet",
    ]


def test_the_engine_writes_the_expression_types_in_order_and_files_concatenate(tmp_path):
    import ibis

    first, both = tmp_path / "first.parquet", tmp_path / "both.parquet"
    with engine.session(DUCKDB) as con:
        t = ibis.memtable({"k": ["b", "a", "b", "c"], "v": [1, 2, 3, 4]})
        totals = t.group_by("k").aggregate(total=t.v.sum()).order_by(ibis.desc("k"))
        assert engine.write_parquet(con, totals, first) == 3
    # DuckDB sums integers to HUGEINT; the file keeps the expression's int64
    assert str(pq.read_schema(first).field("total").type) == "int64"
    assert pd.read_parquet(first).k.tolist() == ["c", "b", "a"]
    assert io.concat_parquet([first, first], both) == 6
    assert pd.read_parquet(both).total.tolist() == [4, 4, 2, 4, 4, 2]
