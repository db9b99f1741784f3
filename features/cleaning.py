"""Parse, validate and split a raw transaction table into a clean log and a quarantine.

Every input row ends in exactly one of the two outputs; a quarantined row keeps its source row
number, its raw values and the first reason it failed (reasons are checked in ``REASONS`` order).
"""

from __future__ import annotations

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from features.spec import ColumnMapping, IngestRules

REASONS = (
    "missing_customer_id",
    "missing_timestamp",
    "unparseable_timestamp",
    "missing_amount",
    "non_numeric_amount",
    "non_finite_amount",
    "non_numeric_quantity",
    "non_numeric_margin",
    "timestamp_before_start",
    "timestamp_after_end",
    "return",
    "zero_amount",
    "duplicate",
)

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
_STRFTIME_TO_JAVA = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss"}


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
        java = fmt
        for code, pattern in _STRFTIME_TO_JAVA.items():
            java = java.replace(code, pattern)
        return _spark_try_to_timestamp(text, java)
    return _duckdb_try_strptime(text, fmt)


def _text(col: ir.Value) -> ir.StringValue:
    """A source column as trimmed text, empty text as NULL."""
    text = col.cast("string").strip()
    return ibis.ifelse(text == "", ibis.null("string"), text)


def _number(col: ir.Value) -> tuple[ir.Value, ir.FloatingValue]:
    """(present-as-text, parsed float) for a source column that should be numeric."""
    if col.type().is_numeric():
        return col.cast("string"), col.cast("float64")
    text = _text(col)
    return text, text.try_cast("float64")


def _timestamp(col: ir.Value, fmt: str, dialect: str) -> tuple[ir.Value, ir.TimestampValue]:
    if col.type().is_timestamp() or col.type().is_date():
        return col.cast("string"), col.cast("timestamp")
    text = _text(col)
    return text, parse_timestamp(text, fmt, dialect)


def classify(
    raw: ir.Table, mapping: ColumnMapping, rules: IngestRules, dialect: str = "duckdb"
) -> ir.Table:
    """Canonical columns plus ``reason`` (NULL for a clean row) for every raw row.

    ``raw`` holds the mapped source columns (text or already typed) and ``source_row``; they are
    kept as ``raw_<name>`` so the quarantine can show the values as they came.
    """
    raw = raw.select("source_row", **{f"raw_{c}": raw[c] for c in mapping.source_columns()})

    def src(name: str | None) -> ir.Value:
        return raw[f"raw_{name}"]

    cid = _text(src(mapping.customer_id))
    ts_text, ts = _timestamp(src(mapping.timestamp), mapping.timestamp_format, dialect)
    amt_text, amt = _number(src(mapping.amount))
    null_f = ibis.null("float64")
    qty_text, qty = _number(src(mapping.quantity)) if mapping.quantity else (None, null_f)
    mrg_text, mrg = _number(src(mapping.margin)) if mapping.margin else (None, null_f)
    order = _text(src(mapping.order_id)) if mapping.order_id else ibis.null("string")

    checks: list[tuple[ir.BooleanValue, str]] = [
        (cid.isnull(), "missing_customer_id"),
        (ts_text.isnull(), "missing_timestamp"),
        (ts.isnull(), "unparseable_timestamp"),
        (amt_text.isnull(), "missing_amount"),
        (amt.isnull(), "non_numeric_amount"),
        (amt.isnan() | amt.isinf(), "non_finite_amount"),
    ]
    if qty_text is not None:
        checks.append((qty_text.notnull() & (qty.isnull() | qty.isnan()), "non_numeric_quantity"))
    if mrg_text is not None:
        checks.append((mrg_text.notnull() & (mrg.isnull() | mrg.isnan()), "non_numeric_margin"))
    if rules.start is not None:
        checks.append((ts < ibis.timestamp(rules.start.isoformat()), "timestamp_before_start"))
    if rules.end is not None:
        day_after = ibis.date(rules.end.isoformat()) + ibis.interval(days=1)
        checks.append((ts >= day_after.cast("timestamp"), "timestamp_after_end"))
    if rules.returns == "quarantine":
        checks.append((amt < 0, "return"))
    if rules.zero_amounts == "quarantine":
        checks.append((amt == 0, "zero_amount"))

    typed = raw.mutate(
        customer_id=cid,
        timestamp=ts,
        amount=amt,
        quantity=qty,
        order_id=order,
        margin=mrg,
        reason=ibis.cases(*checks, else_=ibis.null("string")),
    )
    if rules.duplicates == "quarantine":
        keys = ["customer_id", "timestamp", "amount", "quantity", "order_id", "margin", "reason"]
        rank = ibis.row_number().over(group_by=keys, order_by="source_row")
        typed = typed.mutate(
            reason=ibis.ifelse(typed.reason.isnull() & (rank > 0), "duplicate", typed.reason)
        )
    return typed


def clean_rows(classified: ir.Table) -> ir.Table:
    """The clean log: valid rows in canonical columns, ordered by customer and time."""
    clean = classified.filter(classified.reason.isnull()).select(*CLEAN_COLUMNS)
    return clean.order_by(["customer_id", "timestamp", "source_row"])


def quarantined_rows(classified: ir.Table, mapping: ColumnMapping) -> ir.Table:
    """Rejected rows: source row number, reason and the raw source values as text."""
    bad = classified.filter(classified.reason.notnull())
    raw_cols = {f"raw_{c}": bad[f"raw_{c}"].cast("string") for c in mapping.source_columns()}
    return bad.select("source_row", "reason", **raw_cols).order_by("source_row")


def reason_counts(classified: ir.Table) -> ir.Table:
    """Rows per outcome: ``reason`` NULL counts the kept rows."""
    return classified.group_by("reason").aggregate(rows=classified.count())
