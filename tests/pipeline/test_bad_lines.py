"""A bad line of a text log is quarantined with its own reason; only a file that is not a
transaction log at all is refused, and the refusal quotes none of its lines."""

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline import io
from pipeline.cli import main
from pipeline.errors import CvmError
from tests.conftest import CSV_MAPPING, read_raw

HEADER = b"cust,when,value,qty\n"


def ingest(make_params, tmp_path: Path, data: bytes, *overrides: str):
    log = tmp_path / "log.csv"
    log.write_bytes(data)
    params = make_params(f"data.path={log}", *CSV_MAPPING, *overrides)
    assert main(["stage", "ingest", "--params", str(params)]) == 0
    interim = tmp_path / "data/interim"
    clean = pd.read_parquet(interim / "transactions.parquet")
    quarantine = pd.read_parquet(interim / "quarantine.parquet")
    report = json.loads((interim / "ingest_report.json").read_text())
    assert report["rows_read"] == report["rows_kept"] + report["rows_quarantined"]
    return clean, quarantine, report


def good(i: int) -> bytes:
    return b"c%d,2024-01-%02d,%d.50,1\n" % (i, i, i)


def test_ragged_lines_are_quarantined_and_the_rest_kept(make_params, tmp_path):
    data = HEADER + good(1) + b"c2,2024-01-02,3,1,extra\n" + good(3) + good(4)
    data += b'c5,2024-01-05,"5,5",1,x,y\n' + good(6)
    clean, quarantine, report = ingest(make_params, tmp_path, data)
    assert sorted(clean.source_row) == [2, 4, 5, 7]
    assert quarantine[["source_row", "reason", "detail"]].to_dict("records") == [
        {"source_row": 3, "reason": "malformed_line", "detail": "5 fields; expected at most 4"},
        {"source_row": 6, "reason": "malformed_line", "detail": "6 fields; expected at most 4"},
    ]
    assert report["quarantined_by_reason"] == {"malformed_line": 2}
    assert report["rows_read"] == 6


def test_a_broken_quoted_field_is_a_malformed_line(make_params, tmp_path):
    data = HEADER + good(1) + b'"c2"x,2024-01-02,3,1\n' + good(3) + good(4)
    clean, quarantine, _ = ingest(make_params, tmp_path, data)
    assert quarantine.reason.tolist() == ["malformed_line"]
    assert quarantine.detail.iloc[0].startswith("a broken quoted field")
    assert sorted(clean.source_row) == [2, 4, 5]


def test_a_line_that_is_not_utf8_is_quarantined(make_params, tmp_path):
    data = HEADER + good(1) + b"c\xe9,2024-01-02,3,1\n" + "c\u00e9,2024-01-03,4,1\n".encode()
    data += b"\n" + good(5) + b"c6,\xff\xfe,1,1\n" + good(7)
    clean, quarantine, report = ingest(make_params, tmp_path, data)
    assert dict(zip(quarantine.source_row, quarantine.reason, strict=True)) == {
        3: "invalid_utf8",
        5: "blank_line",
        7: "invalid_utf8",
    }
    assert quarantine.raw_cust[quarantine.reason == "invalid_utf8"].isna().all()
    assert quarantine.detail.tolist()[0] == "the line is not UTF-8 text"
    # the lines after a bad one keep their numbers and their text
    assert dict(zip(clean.source_row, clean.customer_id, strict=True)) == {
        2: "c1",
        4: "c\u00e9",
        6: "c5",
        8: "c7",
    }
    assert report["quarantined_by_reason"] == {"blank_line": 1, "invalid_utf8": 2}


def test_blank_lines_are_blank_lines(make_params, tmp_path):
    data = HEADER + good(1) + b"\n" + b"  \t \n" + good(4) + b"\n" + good(6)
    clean, quarantine, report = ingest(make_params, tmp_path, data)
    assert quarantine.source_row.tolist() == [3, 4, 6]
    assert set(quarantine.reason) == {"blank_line"}
    assert sorted(clean.source_row) == [2, 5, 7]


def test_a_quoted_field_with_line_breaks_is_one_row(make_params, tmp_path):
    data = HEADER + good(1) + b'"c2\nsecond ""line""\n",2024-01-02,3,1\n' + good(5)
    data += b'c6,2024-01-06,"7",1\n'
    clean, quarantine, report = ingest(make_params, tmp_path, data)
    assert quarantine.empty and report["rows_read"] == 4
    assert dict(zip(clean.source_row, clean.customer_id, strict=True)) == {
        2: "c1",
        3: 'c2\nsecond "line"',  # the record's first line; blanks around the id are trimmed
        6: "c5",
        7: "c6",
    }


def test_the_scored_csv_cvm_writes_reads_back(tmp_path):
    table = pd.DataFrame(
        {
            "customer_id": ["plain", "two\nlines", 'a "quote"', "comma, here", "=1+1", "\n\n"],
            "clv": [1.5, 2.0, -3.25, 0.0, 7.0, 8.0],
            "note": ["x", "", "y\nz", '"', "", "end"],
        }
    )
    csv = tmp_path / "scored.csv"
    io.write_table_files(table, {}, tmp_path / "s.parquet", csv, tmp_path / "s.json")
    back = read_raw(csv, "csv", ["customer_id", "clv", "note"])
    assert back.line_reason.isna().all()
    assert back.customer_id.tolist() == ["plain", "two\nlines", 'a "quote"', "comma, here"] + [
        "'=1+1",  # the spreadsheet guard's quote
        "\n\n",
    ]
    assert back.clv.astype(float).tolist() == table.clv.tolist()
    assert back.note.fillna("").tolist() == ["x", "", "y\nz", '"', "", "end"]
    assert back.source_row.tolist() == [2, 3, 5, 7, 8, 9]  # a record at its first line


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("shadow", b"root:$6$SALTSECRET$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"),
        ("binary", bytes(range(256)) * 64 + b"SECRET\n" + bytes(range(255, -1, -1)) * 64),
        ("gzip", b"\x1f\x8b\x08\x00SECRET\xff\xfe\n\x00\x01\x80\x81\n" * 100),
    ],
)
def test_a_file_that_is_not_a_log_is_refused_without_quoting_it(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    for header, names in ((True, None), (False, ["cust", "when", "value"])):
        with pytest.raises(CvmError) as err:
            read_raw(path, "csv", ["cust", "when", "value"], header=header, names=names)
        message = str(err.value)
        assert message.startswith(f"{path}: ")
        assert "transaction log" in message
        for secret in ("SECRET", "root", "daemon", "99999"):
            assert secret not in message.removeprefix(str(path))


def test_a_log_mostly_of_ragged_lines_is_refused(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(HEADER + good(1) + b"c2;2024;3,1,9,9,9\n" * 3)
    with pytest.raises(CvmError, match="3 of its 4 rows are not UTF-8 text or do not split"):
        read_raw(path, "csv", ["cust", "when", "value"])


def test_a_long_file_of_bad_lines_numbers_every_line(tmp_path):
    """Lines DuckDB skips are numbered as they come, across its parallel reading of the file."""
    lines = [HEADER]
    for i in range(2, 200_002):
        lines.append(b"c%d,\xe9\n" % i if i % 997 == 0 else b"c%d,2024-01-01,%d\n" % (i, i))
    path = tmp_path / "log.csv"
    path.write_bytes(b"".join(lines))
    raw = read_raw(path, "csv", ["cust", "when", "value"])
    assert raw.source_row.tolist() == list(range(2, 200_002))
    bad = raw.line_reason.notna()
    assert (raw.source_row[bad] % 997 == 0).all() and bad.sum() == 200_001 // 997
    kept = raw[~bad]
    assert (kept.cust == "c" + kept.source_row.astype(str)).all()


def test_a_feed_with_many_ragged_lines_is_stopped_by_the_quarantine_limit(make_params, tmp_path):
    from pipeline import staging

    lines = [good(1 + i % 28) if i % 10 else b"c9,2024-01-09,3,1,extra\n" for i in range(200)]
    _, _, report = ingest(
        make_params, tmp_path, HEADER + b"".join(lines), "data.rules.duplicates=keep"
    )
    assert report["quarantined_by_reason"] == {"malformed_line": 20}
    with pytest.raises(
        CvmError, match=r"20 of 200 rows \(10\.0%\) were quarantined.*malformed_line"
    ):
        staging.check_quarantine(report, 0.05, tmp_path / "log.csv")
    assert staging.check_quarantine(report, 0.2, tmp_path / "log.csv") == 0.1


def test_the_features_report_counts_the_customers_netting_leaves_out(make_params, tmp_path):
    from tests.conftest import CDNOW_SAMPLE

    log = tmp_path / "sample.txt"
    returns = (
        b" 00001 99001 19970105  1  -10.00\r\n"  # returns only, before the calibration cutoff
        b" 00002 99002 19970301  1  -5.00\r\n"
        b" 00002 99002 19971201  1  20.00\r\n"  # a purchase after the calibration cutoff
        b" 00003 99003 19971120  1  -3.00\r\n"  # returns only, after it
    )
    log.write_bytes(CDNOW_SAMPLE.read_bytes() + returns)
    params = make_params(
        "data=cdnow_sample", f"data.path={log}", "data.rules.returns=net", "tracking.enabled=false"
    )
    for stage in ("ingest", "features"):
        assert main(["stage", stage, "--params", str(params)]) == 0
    report = json.loads((tmp_path / "data/features/report.json").read_text())
    dropped = report["customers_dropped_by_netting"]
    assert dropped["calibration"] == 2  # 99001 and 99002 at 1997-09-30
    assert dropped["scoring"] == 2  # 99001 and 99003; 99002 bought since
    cutoffs = report["train_cutoffs"]
    assert dropped["train_calibration"] == sum(
        (c >= "1997-01-05") + (c >= "1997-03-01") for c in cutoffs["calibration"]
    )
    assert dropped["train_scoring"] == sum(
        (c >= "1997-01-05") + ("1997-03-01" <= c < "1997-12-01") + (c >= "1997-11-20")
        for c in cutoffs["scoring"]
    )
    scoring = pd.read_parquet(tmp_path / "data/features/scoring.parquet")
    assert report["scoring_rows"] == 2357 + 1  # 99002 is scored; the other two are not
    assert set(scoring.customer_id) >= {"99002"} and "99001" not in set(scoring.customer_id)
