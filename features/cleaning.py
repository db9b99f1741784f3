"""Parse, validate and split a raw transaction table into a clean log and a quarantine.

Every input row ends in exactly one of the two outputs; a quarantined row keeps its source row
number, its raw values and the first reason it failed (reasons are checked in ``REASONS`` order).
The first three come from reading a text log (``line_reason`` and ``line_detail`` of the raw
table, :func:`features.parsing.split_fields`); ``detail`` says more where a reason can.
"""

from __future__ import annotations

import re
from datetime import date

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from features.spec import ColumnMapping, IngestRules

REASONS = (
    "invalid_utf8",
    "malformed_line",
    "blank_line",
    "missing_customer_id",
    "nul_byte_in_customer_id",
    "missing_timestamp",
    "unparseable_timestamp",
    "missing_amount",
    "non_numeric_amount",
    "non_finite_amount",
    "amount_out_of_range",
    "non_numeric_quantity",
    "missing_margin",
    "non_numeric_margin",
    "non_finite_margin",
    "margin_out_of_range",
    "missing_cost",
    "non_numeric_cost",
    "non_finite_cost",
    "cost_out_of_range",
    "timestamp_before_start",
    "timestamp_after_end",
    "timestamp_after_as_of",
    "return",
    "zero_amount",
    "duplicate",
    "extreme_amount",
)

# the largest amount a transaction may have: the features sum amounts as DECIMAL(38, 6), which
# holds 32 integral digits; 1e15 a row leaves room for a hundred billion rows of a customer
MAX_AMOUNT = 1e15

CLEAN_COLUMNS = (
    "customer_id",
    "timestamp",
    "amount",
    "quantity",
    "order_id",
    "margin",
    "source_row",
)

_TIMESTAMP = dt.Timestamp()
# strftime codes → Java pattern letters for Spark: (standing alone, next to another code); a
# field standing alone takes one or two digits (as DuckDB's strptime does), next to another
# code it must be zero-padded to its full width
_STRFTIME_TO_JAVA = {
    "%Y": ("yyyy", "yyyy"),
    "%m": ("M", "MM"),
    "%d": ("d", "dd"),
    "%H": ("H", "HH"),
    "%M": ("m", "mm"),
    "%S": ("s", "ss"),
}
# numbers as text: decimal notation with an optional exponent, or inf/infinity/nan in any case.
# Both engines parse exactly these (their own casts disagree on others: "1_000", "3d").
_DECIMAL = "^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
_NON_FINITE = "^[+-]?([iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])$"
_BLANKS = " \t\r\n"


@ibis.udf.scalar.builtin(name="try_strptime")
def _duckdb_try_strptime(text: str, fmt: str) -> _TIMESTAMP:  # type: ignore[valid-type]
    """DuckDB's ``try_strptime``: NULL instead of an error on text that does not parse."""


@ibis.udf.scalar.builtin(name="try_to_timestamp")
def _spark_try_to_timestamp(text: str, fmt: str) -> _TIMESTAMP:  # type: ignore[valid-type]
    """Spark's ``try_to_timestamp``: NULL instead of an error on text that does not parse."""


def parse_timestamp(text: ir.StringValue, fmt: str, dialect: str) -> ir.TimestampValue:
    """Parse text to a timestamp, NULL where it does not match ``fmt`` (strftime or ``iso``)."""
    if fmt == "iso":
        return text.try_cast("timestamp")
    if dialect == "pyspark":
        return _spark_try_to_timestamp(text, java_pattern(fmt))
    return _duckdb_try_strptime(text, fmt)


def java_pattern(fmt: str) -> str:
    """The Java (Spark) datetime pattern of the strftime pattern ``fmt``."""
    parts = re.split("(%.)", fmt)  # literals at even positions, codes at odd ones
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            if part not in _STRFTIME_TO_JAVA:
                raise ValueError(
                    f"timestamp_format code {part} is not supported on the spark engine; "
                    f"use {', '.join(_STRFTIME_TO_JAVA)}"
                )
            alone, padded = _STRFTIME_TO_JAVA[part]
            code_before = i > 1 and parts[i - 1] == ""
            code_after = i + 2 < len(parts) and parts[i + 1] == ""
            out.append(padded if code_before or code_after else alone)
        elif part:
            # literal text: letters and quotes are quoted for Java
            out.append(re.sub("([A-Za-z']+)", lambda m: "'" + m[1].replace("'", "''") + "'", part))
    return "".join(out)


@ibis.udf.scalar.builtin(name="trim")
def _duckdb_trim(text: str, chars: str) -> str:
    """DuckDB's ``trim(text, characters)``."""


@ibis.udf.scalar.builtin(name="btrim")
def _spark_btrim(text: str, chars: str) -> str:
    """Spark's ``btrim(text, characters)``."""


def _text(col: ir.Value, dialect: str) -> ir.StringValue:
    """A source column as text without surrounding blanks, empty text as NULL.

    Blanks are spaces, tabs and line breaks. (Ibis's own ``strip`` cannot be used: on Spark its
    list of characters reaches the SQL as ``\\v\\f``, which Spark reads as the letters v and f.)
    """
    trim = _spark_btrim if dialect == "pyspark" else _duckdb_trim
    return _present(trim(col.cast("string"), _BLANKS))


def _present(text: ir.StringValue) -> ir.StringValue:
    """Text as given, empty text as NULL."""
    return ibis.ifelse(text == "", ibis.null("string"), text)


def _number(
    col: ir.Value, dialect: str
) -> tuple[ir.StringValue, ir.BooleanValue, ir.FloatingValue]:
    """(present-as-text, is a number, parsed float) for a source column that should be numeric.

    Text counts as a number when it is decimal notation or inf/infinity/nan; NaN stays a
    number here (a value, not a missing one), so the checks can tell it from garbage.
    """
    if col.type().is_numeric():
        text = col.cast("string")
        return text, text.notnull(), col.cast("float64")
    text = _text(col, dialect)
    valid = text.re_search(_DECIMAL) | text.re_search(_NON_FINITE)
    return text, valid, ibis.ifelse(valid, text.try_cast("float64"), ibis.null("float64"))


def _non_finite(value: ir.FloatingValue) -> ir.BooleanValue:
    """NaN or ±inf (``isinf`` does not compile on Spark; a comparison does on both)."""
    return value.isnan() | (value.abs() == ibis.literal(float("inf")))


def _timestamp(col: ir.Value, fmt: str, dialect: str) -> tuple[ir.Value, ir.TimestampValue]:
    if col.type().is_timestamp() or col.type().is_date():
        return col.cast("string"), col.cast("timestamp")
    text = _text(col, dialect)
    return text, parse_timestamp(text, fmt, dialect)


def classify(
    raw: ir.Table,
    mapping: ColumnMapping,
    rules: IngestRules,
    dialect: str = "duckdb",
    as_of: date | None = None,
) -> ir.Table:
    """Canonical columns plus ``reason`` (NULL for a clean row) for every raw row.

    A row dated after ``as_of`` (the run's as-of date) cannot have happened yet: it is
    quarantined rather than taken as the end of the data.

    ``raw`` holds the mapped source columns (text or already typed) and ``source_row``; they are
    kept as ``raw_<name>`` so the quarantine can show the values as they came. A text log's
    ``line_reason`` and ``line_detail`` (a line that could not be read into fields) come first.
    """
    null_s = ibis.null("string")
    line_reason = raw.line_reason if "line_reason" in raw.columns else null_s
    line_detail = raw.line_detail if "line_detail" in raw.columns else null_s
    raw = raw.select(
        "source_row",
        **{f"raw_{c}": raw[c] for c in mapping.source_columns()},
        line_reason=line_reason,
        detail=line_detail,
    )

    def src(name: str | None) -> ir.Value:
        return raw[f"raw_{name}"]

    given = src(mapping.customer_id).cast("string")
    cid = _text(given, dialect) if rules.customer_ids == "trim" else _present(given)
    ts_text, ts = _timestamp(src(mapping.timestamp), mapping.timestamp_format, dialect)
    null_f = ibis.null("float64")
    absent = (None, None, null_f)
    amt_text, amt_ok, amt = _number(src(mapping.amount), dialect) if mapping.amount else absent
    qty_text, qty_ok, qty = _number(src(mapping.quantity), dialect) if mapping.quantity else absent
    kind = mapping.profit  # the line's margin, or its cost
    given_profit = getattr(mapping, kind) if kind else None
    mrg_text, mrg_ok, mrg = _number(src(given_profit), dialect) if kind else absent
    order = _text(src(mapping.order_id), dialect) if mapping.order_id else ibis.null("string")

    checks: list[tuple[ir.BooleanValue, str | ir.StringValue]] = [
        (raw.line_reason.notnull(), raw.line_reason),
        (cid.isnull(), "missing_customer_id"),
        (cid.contains("\x00"), "nul_byte_in_customer_id"),  # PostgreSQL refuses it in text
        (ts_text.isnull(), "missing_timestamp"),
        (ts.isnull(), "unparseable_timestamp"),
    ]
    if amt_text is not None:
        checks += [
            (amt_text.isnull(), "missing_amount"),
            (~amt_ok, "non_numeric_amount"),
            (_non_finite(amt), "non_finite_amount"),
            (amt.abs() >= MAX_AMOUNT, "amount_out_of_range"),
        ]
    if qty_text is not None:
        checks.append((qty_text.notnull() & (~qty_ok | qty.isnan()), "non_numeric_quantity"))
    if mrg_text is not None:  # a line's margin is summed as its amount is: one each
        checks += [
            (mrg_text.isnull(), f"missing_{kind}"),
            (~mrg_ok, f"non_numeric_{kind}"),
            (_non_finite(mrg), f"non_finite_{kind}"),
            (mrg.abs() >= MAX_AMOUNT, f"{kind}_out_of_range"),
        ]
        if kind == "cost":
            mrg = amt - mrg
    if rules.start is not None:
        checks.append((ts < ibis.timestamp(rules.start.isoformat()), "timestamp_before_start"))
    if rules.end is not None:
        day_after = ibis.date(rules.end.isoformat()) + ibis.interval(days=1)
        checks.append((ts >= day_after.cast("timestamp"), "timestamp_after_end"))
    if as_of is not None:
        day_after = ibis.date(as_of.isoformat()) + ibis.interval(days=1)
        checks.append((ts >= day_after.cast("timestamp"), "timestamp_after_as_of"))
    if rules.returns == "quarantine" and amt_text is not None:
        checks.append((amt < 0, "return"))
    if rules.zero_amounts == "quarantine" and amt_text is not None:
        checks.append((amt == 0, "zero_amount"))

    typed = raw.mutate(
        customer_id=cid,
        customer_id_trimmed=cid.notnull() & (cid != given),
        timestamp=ts,
        amount=amt,
        quantity=qty,
        order_id=order,
        margin=mrg,
        reason=ibis.cases(*checks, else_=ibis.null("string")),
    ).drop("line_reason")
    if rules.duplicates == "quarantine":
        keys = ["customer_id", "timestamp", "amount", "quantity", "order_id", "margin", "reason"]
        rank = ibis.row_number().over(group_by=keys, order_by="source_row")
        typed = typed.mutate(
            reason=ibis.ifelse(typed.reason.isnull() & (rank > 0), "duplicate", typed.reason)
        )
    return typed


def extreme_limit(classified: ir.Table, rules: IngestRules) -> ir.Scalar:
    """The amount above which a clean row is extreme: ``rules.extreme_factor`` times the 99th
    percentile of the positive amounts (NULL without any)."""
    positive = classified.filter(classified.reason.isnull() & (classified.amount > 0))
    return positive.amount.quantile(0.99) * rules.extreme_factor


def mark_extreme(classified: ir.Table, limit: float | None, rules: IngestRules) -> ir.Table:
    """``classified`` with its extreme amounts (above ``limit``) handled as ``rules`` say:
    quarantined (reason ``extreme_amount``), capped at the limit, or kept."""
    if limit is None or rules.extreme_amounts == "warn":
        return classified
    extreme = classified.reason.isnull() & (classified.amount > limit)
    if rules.extreme_amounts == "quarantine":
        return classified.mutate(reason=ibis.ifelse(extreme, "extreme_amount", classified.reason))
    return classified.mutate(amount=ibis.ifelse(extreme, limit, classified.amount))


def clean_rows(classified: ir.Table) -> ir.Table:
    """The clean log: valid rows in canonical columns, ordered by customer and time."""
    clean = classified.filter(classified.reason.isnull()).select(*CLEAN_COLUMNS)
    return clean.order_by(["customer_id", "timestamp", "source_row"])


def quarantined_rows(classified: ir.Table, mapping: ColumnMapping) -> ir.Table:
    """Rejected rows: source row number, reason, its detail and the raw source values as text."""
    bad = classified.filter(classified.reason.notnull())
    raw_cols = {f"raw_{c}": bad[f"raw_{c}"].cast("string") for c in mapping.source_columns()}
    return bad.select("source_row", "reason", "detail", **raw_cols).order_by("source_row")


def trimmed_ids(classified: ir.Table) -> ir.Scalar:
    """How many rows had blanks around their customer id (``rules.customer_ids="trim"``)."""
    return classified.customer_id_trimmed.sum()


def reason_counts(classified: ir.Table) -> ir.Table:
    """Rows per outcome: ``reason`` NULL counts the kept rows."""
    return classified.group_by("reason").aggregate(rows=classified.count())
