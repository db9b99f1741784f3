"""Text logs: fields split from lines, numbers and dates parsed by rules both engines share."""

import ibis
import pandas as pd
import pytest

from features.cleaning import classify, java_pattern
from features.parsing import check_delimiter, join_quoted_lines, split_fields
from features.spec import ColumnMapping, IngestRules


def fields(lines: list[str], fmt: str = "csv", delimiter: str = ",") -> pd.DataFrame:
    table = ibis.memtable({"source_row": list(range(1, len(lines) + 1)), "line": lines})
    return split_fields(table, fmt, ["a", "b", "c"], delimiter).execute()


def test_csv_fields_follow_quotes_and_the_delimiter():
    out = fields(['x;"y;z";"say ""hi"""', "1;;3", ";", "only"], delimiter=";")
    assert out[["a", "b", "c"]].fillna("<null>").values.tolist() == [
        ["x", "y;z", 'say "hi"'],
        ["1", "", "3"],
        ["", "", "<null>"],
        ["only", "<null>", "<null>"],
    ]
    assert out.reason.isna().all() and out.detail.isna().all()


def test_malformed_and_blank_lines_say_what_is_wrong():
    out = fields(['"open,1,2', '"a"b,1,2', "1,2,3,4", "1,2,3", "", " \t ", ","])
    assert out.reason.tolist()[:3] == ["malformed_line"] * 3
    assert out.detail.tolist()[:3] == [
        "a broken quoted field (not closed, or text after its closing quote)",
        "a broken quoted field (not closed, or text after its closing quote)",
        "4 fields; expected at most 3",
    ]
    assert out.reason.fillna("-").tolist()[3:] == ["-", "blank_line", "blank_line", "-"]
    assert out.detail.iloc[3:].isna().all()


def test_a_quoted_field_may_span_lines():
    lines = ['a,"two', 'lines ""quoted""",x', "b,plain,y", 'c,"three', "", 'lines",z', "d,1,2"]
    table = ibis.memtable({"source_row": list(range(1, len(lines) + 1)), "line": lines})
    joined = join_quoted_lines(table, ",")
    out = split_fields(joined, "csv", ["a", "b", "c"]).order_by("source_row").execute()
    assert out.source_row.tolist() == [1, 3, 4, 7]
    assert out.b.tolist() == ['two\nlines "quoted"', "plain", "three\n\nlines", "1"]
    assert out.reason.isna().all()


def test_a_stray_quote_does_not_swallow_the_lines_after_it():
    lines = ['a,x"y,1', "b,2,3", "c,4,5", 'd,"open', "e,6,7"]
    table = ibis.memtable({"source_row": list(range(1, len(lines) + 1)), "line": lines})
    joined = join_quoted_lines(table, ",")
    out = split_fields(joined, "csv", ["a", "b", "c"]).order_by("source_row").execute()
    assert out.source_row.tolist() == [1, 2, 3, 4, 5]
    assert out.b.tolist()[:3] == ['x"y', "2", "4"]
    assert out.reason.fillna("-").tolist() == ["-", "-", "-", "malformed_line", "-"]


def test_whitespace_fields_are_runs_of_non_blanks():
    out = fields(["  a \t b   c  ", "", 'x "y z"'], fmt="whitespace")
    assert out.loc[0, ["a", "b", "c"]].tolist() == ["a", "b", "c"]
    assert out.loc[1, ["a", "b", "c"]].isna().all()
    assert out.loc[2, ["a", "b", "c"]].tolist() == ["x", '"y', 'z"']


@pytest.mark.parametrize("delimiter", ["", ";;", '"', "-"])
def test_unusable_delimiters_are_refused(delimiter):
    assert check_delimiter(delimiter) is not None
    assert check_delimiter(";") is None and check_delimiter("\t") is None


@pytest.mark.parametrize(
    ("fmt", "java"),
    [
        ("%Y%m%d", "yyyyMMdd"),  # codes side by side keep their full width
        ("%Y-%m-%d", "yyyy-M-d"),  # apart, a field takes one or two digits
        ("%d/%m/%Y %H:%M:%S", "d/M/yyyy H:m:s"),
        ("%Y-%m-%dT%H:%M", "yyyy-M-d'T'H:m"),  # letters in the text are quoted
    ],
)
def test_strftime_patterns_become_java_patterns(fmt, java):
    assert java_pattern(fmt) == java


def test_a_format_code_spark_cannot_read_is_named():
    with pytest.raises(ValueError, match="%b"):
        java_pattern("%d %b %Y")


@pytest.mark.parametrize(
    ("amount", "reason"),
    [
        ("12.5", None),
        ("+.5", None),
        ("1e3", None),
        ("3.", None),
        (" 7 ", None),
        ("1_000", "non_numeric_amount"),  # DuckDB's cast would take it, Spark's would not
        ("3d", "non_numeric_amount"),  # Spark's cast would take it, DuckDB's would not
        ("0x1A", "non_numeric_amount"),
        ("1,5", "non_numeric_amount"),
        ("Infinity", "non_finite_amount"),
        ("-inf", "non_finite_amount"),
        ("nan", "non_finite_amount"),
        ("1e400", "non_finite_amount"),  # overflows to infinity
    ],
)
def test_numbers_are_decimal_text(amount, reason):
    raw = ibis.memtable(
        {"source_row": [1], "c": ["c1"], "t": ["2024-01-05"], "a": [amount]},
        schema={"source_row": "int64", "c": "string", "t": "string", "a": "string"},
    )
    mapping = ColumnMapping(customer_id="c", timestamp="t", amount="a")
    (got,) = classify(raw, mapping, IngestRules()).reason.execute().tolist()
    assert (None if pd.isna(got) else got) == reason
