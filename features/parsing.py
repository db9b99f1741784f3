"""Split the lines of a text log into its fields, with the same expression on every engine.

The engine reads a text file as numbered lines (``source_row``, ``line``, and ``reason`` and
``detail`` for a line it could not read as text); these expressions turn each line into text
fields, verbatim: nothing is converted, so validation sees what the file holds. ``csv`` fields are
separated by a one-character delimiter and may be quoted with ``"`` (a doubled ``""`` inside
quotes is one quote, and a quoted field may span lines: :func:`join_quoted_lines`); ``whitespace``
fields are separated by runs of spaces and tabs, leading and trailing ones ignored. A line with
fewer fields than the header reads the absent ones as NULL; a line with more, or with a broken
quoted field, is a ``malformed_line``; an empty or all-blank line is a ``blank_line``.
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
    """``source_row``, one text column per name, ``reason`` and ``detail`` (NULL for a good line).

    ``reason`` is the engine's own for a line it could not read (``lines.reason``, when given),
    ``blank_line`` for an empty or all-blank line, or ``malformed_line`` for more fields than
    ``names`` or (csv) a quoted field that is not closed or is followed by text before the next
    delimiter; ``detail`` says what is wrong.
    """
    line = lines.line
    width = len(names)
    if fmt == "whitespace":
        fields = _regexp_extract_all(line, f"[^{_BLANKS}]+", 0)
        broken = ibis.literal(False)
        unquote = None
        blank = fields.length() == 0
    elif fmt == "csv":
        d = delimiter
        field = _field_pattern(d)
        quoted = line.contains('"')
        # plain lines split on the delimiter; lines with quotes need the (slower) regex
        plain = line.split(d if dialect != "pyspark" else f"[{d}]")
        fields = ibis.ifelse(quoted, _regexp_extract_all(d + line, f"[{d}]({field})", 1), plain)
        broken = quoted & ~line.re_search(f"^{field}(?:[{d}]{field})*$")
        unquote = _unquote
        blank = ~line.re_search(f"[^{_BLANKS}\r]")
    else:
        raise ValueError(f"unknown text format {fmt!r}; expected one of {TEXT_FORMATS}")
    count = fields.length()
    given = lines.reason if "reason" in lines.columns else ibis.null("string")
    given_detail = lines.detail if "detail" in lines.columns else ibis.null("string")
    too_many = count > width
    reason = ibis.cases(
        (given.notnull(), given),
        (blank, "blank_line"),
        (broken | too_many, "malformed_line"),
        else_=ibis.null("string"),
    )
    detail = ibis.cases(
        (given.notnull(), given_detail),
        (blank, ibis.null("string")),
        (broken, "a broken quoted field (not closed, or text after its closing quote)"),
        (too_many, count.cast("string") + f" fields; expected at most {width}"),
        else_=ibis.null("string"),
    )
    columns = {
        name: ibis.ifelse(
            count > i, unquote(fields[i]) if unquote else fields[i], ibis.null("string")
        )
        for i, name in enumerate(names)
    }
    return lines.select("source_row", **columns, reason=reason, detail=detail)


def _field_pattern(d: str, one_line: bool = False) -> str:
    """A csv field: quoted (``""`` inside is a quote), or unquoted and not starting with a quote.

    ``one_line`` keeps line breaks out of unquoted fields: a record joined from several lines
    holds them only inside quotes.
    """
    breaks = "\\n\\r" if one_line else ""
    return f'(?:"(?:[^"]|"")*"|(?:[^{d}"{breaks}][^{d}{breaks}]*)?)'


def odd_quotes(line: ir.StringValue) -> ir.BooleanValue:
    """Whether ``line`` has an odd number of ``"``: it opens or closes a quoted line break."""
    return (line.length() - line.replace('"', "").length()) % 2 == 1


def join_quoted_lines(lines: ir.Table, delimiter: str, dialect: str = "duckdb") -> ir.Table:
    """``lines`` (``source_row``, ``line``) with each csv record whose quoted field spans lines
    as one row: its lines joined by ``\\n``, at its first line's ``source_row``.

    A record starts on a line where the quotes of the lines before it are even. Lines grouped
    so that do not form one valid record (a stray quote inside an unquoted field, a quote never
    closed) stay rows of their own, so a stray quote cannot swallow the lines after it. The
    running count orders the whole file: the caller uses it only for a file with a line of odd
    quotes (:func:`odd_quotes`).
    """
    running = ibis.cumulative_window(order_by="source_row")
    odd = ibis.ifelse(odd_quotes(lines.line.fill_null("")), 1, 0)
    marked = lines.mutate(odd=odd, quotes=odd.sum().over(running))
    starts = ibis.ifelse((marked.quotes - marked.odd) % 2 == 0, 1, 0)  # even before the line
    grouped = marked.mutate(record=starts.sum().over(running))
    grouped = grouped.drop("odd", "quotes")
    grouped = grouped.mutate(size=grouped.count().over(group_by="record"))
    single = grouped.filter(grouped.size == 1).drop("record", "size")
    multi = grouped.filter(grouped.size > 1)
    if dialect == "pyspark":  # Spark cannot order a group_concat: sort (row, line) pairs
        pairs = ibis.struct({"n": multi.source_row, "line": multi.line}).collect().sort()
        text = pairs.map(lambda p: p.line).join("\n")
    else:
        text = multi.line.group_concat("\n", order_by=multi.source_row)
    joined = multi.group_by("record").aggregate(
        source_row=multi.source_row.min(), line=text, unreadable=multi.line.isnull().any()
    )
    d, field = delimiter, _field_pattern(delimiter, one_line=True)
    valid = ~joined.unreadable & joined.line.re_search(f"^{field}(?:[{d}]{field})*$")
    records = joined.filter(valid)
    apart = multi.filter(~multi.record.isin(records.record)).drop("record", "size")
    others = [c for c in lines.columns if c not in ("source_row", "line")]
    records = records.select(
        "source_row", "line", **{c: ibis.null(lines[c].type()) for c in others}
    )
    return ibis.union(single, records.select(*lines.columns), apart)


def _unquote(field: ir.StringValue) -> ir.StringValue:
    """A quoted field without its quotes, ``""`` read as ``"``; other fields as they are.

    Only a csv line with quotes has quoted fields: elsewhere no field starts with a quote.
    """
    inner = field.substr(1, field.length() - 2).replace('""', '"')
    return ibis.ifelse(field.substr(0, 1) == '"', inner, field)
