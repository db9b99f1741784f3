"""Split the lines of a text log into its fields, with the same expression on every engine.

The engine reads a text file as numbered lines (``source_row``, ``line``); these expressions turn
each line into text fields, verbatim: nothing is converted, so validation sees what the file
holds. ``csv`` fields are separated by a one-character delimiter and may be quoted with ``"``
(a doubled ``""`` inside quotes is one quote); ``whitespace`` fields are separated by runs of
spaces and tabs, leading and trailing ones ignored. A line with fewer fields than the header
reads the absent ones as NULL; a line with more, or with a broken quoted field, is malformed.
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

TEXT_FORMATS = ("csv", "whitespace")
_FORBIDDEN_DELIMITERS = '"\\^-[]\n\r'
_BLANKS = " \t"


@ibis.udf.scalar.builtin(name="regexp_extract_all")
def _regexp_extract_all(text: str, pattern: str, group: int) -> dt.Array(dt.string):  # type: ignore[valid-type]
    """DuckDB's and Spark's ``regexp_extract_all``: every match of ``pattern`` (its ``group``)."""


def check_delimiter(delimiter: str) -> str | None:
    """Why ``delimiter`` cannot separate csv fields, or None when it can."""
    if len(delimiter) != 1:
        return f"data.delimiter is {delimiter!r}; expected a single character"
    if delimiter in _FORBIDDEN_DELIMITERS:
        return f"data.delimiter is {delimiter!r}; it cannot be one of {_FORBIDDEN_DELIMITERS!r}"
    return None


def split_fields(
    lines: ir.Table, fmt: str, names: list[str], delimiter: str = ",", dialect: str = "duckdb"
) -> ir.Table:
    """``source_row``, one text column per name and ``malformed`` (a bad line, else NULL).

    ``malformed`` says what is wrong with a line: more fields than ``names``, or (csv) a quoted
    field that is not closed or is followed by text before the next delimiter.
    """
    line = lines.line
    width = len(names)
    if fmt == "whitespace":
        fields = _regexp_extract_all(line, f"[^{_BLANKS}]+", 0)
        broken = ibis.literal(False)
        unquote = None
    elif fmt == "csv":
        d = delimiter
        field = f'(?:"(?:[^"]|"")*"|(?:[^{d}"][^{d}]*)?)'
        quoted = line.contains('"')
        # plain lines split on the delimiter; lines with quotes need the (slower) regex
        plain = line.split(d if dialect != "pyspark" else f"[{d}]")
        fields = ibis.ifelse(quoted, _regexp_extract_all(d + line, f"[{d}]({field})", 1), plain)
        broken = quoted & ~line.re_search(f"^{field}(?:[{d}]{field})*$")
        unquote = _unquote
    else:
        raise ValueError(f"unknown text format {fmt!r}; expected one of {TEXT_FORMATS}")
    count = fields.length()
    malformed = ibis.cases(
        (broken, "a broken quoted field (not closed, or text after its closing quote)"),
        (count > width, count.cast("string") + f" fields; expected at most {width}"),
        else_=ibis.null("string"),
    )
    columns = {
        name: ibis.ifelse(
            count > i, unquote(fields[i]) if unquote else fields[i], ibis.null("string")
        )
        for i, name in enumerate(names)
    }
    return lines.select("source_row", **columns, malformed=malformed)


def _unquote(field: ir.StringValue) -> ir.StringValue:
    """A quoted field without its quotes, ``""`` read as ``"``; other fields as they are.

    Only a csv line with quotes has quoted fields: elsewhere no field starts with a quote.
    """
    inner = field.substr(1, field.length() - 2).replace('""', '"')
    return ibis.ifelse(field.substr(0, 1) == '"', inner, field)
