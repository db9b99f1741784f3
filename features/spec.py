"""Typed settings for the transaction-level transforms.

The pipeline validates these from ``params.yaml`` (``data.mapping``, ``data.rules``,
``features``); the transforms never read config themselves.
"""

from __future__ import annotations

from typing import Literal

from models.settings import (
    AtLeastOne,
    Column,
    Count,
    Day,
    Positive,
    listing,
    number,
    settings,
    text,
)

TIME_UNITS = {"days": 1, "weeks": 7}


# the strptime codes DuckDB reads (the spark engine reads a subset: features.cleaning)
STRPTIME_CODES = "aAwdbBmyYHIpMSfgnzZjUWcxX"


@settings
class ColumnMapping:
    """Which source column holds each canonical field (``None`` = not present).

    ``timestamp_format`` is a strftime pattern such as ``%Y%m%d``, or ``iso`` for ISO-8601 text.
    Without ``amount`` (event logs, visits, sessions) the log is purchase-only: its ``amount`` is
    null, and the pipeline predicts purchases but no spend.
    """

    customer_id: Column
    timestamp: Column
    timestamp_format: text(
        "iso or a strftime pattern such as %Y%m%d (codes %a %A %w %d %b %B %m %y %Y %H %I %p %M "
        "%S %f %g %n %z %Z %j %U %W %c %x %X %%, a - after % for no padding)",
        rf"(?-i:iso|(?:[^%]|%%)*(?:%-?[{STRPTIME_CODES}](?:[^%]|%%)*)+)",  # a code at least
    ) = "iso"
    amount: Column | None = None  # None: a log without spend
    quantity: Column | None = None
    order_id: Column | None = None
    margin: Column | None = None  # each line's gross margin, in money
    cost: Column | None = None  # or its cost: the margin is the amount less the cost

    def source_columns(self) -> list[str]:
        """Source columns in canonical order, optional ones only when mapped."""
        cols = [self.customer_id, self.timestamp]
        optional = (self.amount, self.quantity, self.order_id, self.margin, self.cost)
        return cols + [c for c in optional if c is not None]

    @property
    def profit(self) -> str | None:
        """What gives each line's margin: ``margin`` or ``cost`` (mapped), else ``None``."""
        return "margin" if self.margin else "cost" if self.cost else None


@settings
class IngestRules:
    """Validation rules: accepted date range and what to do with returns, zeros and duplicates.

    ``returns="net"`` keeps negative amounts in the clean log; the features net them against the
    customer's spend. ``duplicates="keep"`` suits logs without an order id, where two identical
    lines are two real purchases (as in CDNOW). An amount above ``extreme_factor`` times the
    99th percentile of the positive amounts is extreme: ``extreme_amounts`` keeps it with a
    warning in the ingest report (``warn``), caps it at that limit (``cap``) or quarantines the
    row (``quarantine``). ``customer_ids="trim"`` drops the blanks around an id, so ``" 77"``
    and ``"77"`` are one customer (the ingest report counts the rows it changed); ``exact``
    keeps ids as given. An id holding a NUL byte is quarantined: PostgreSQL, where the table may
    be published, refuses it in text.
    """

    start: Day | None = None
    end: Day | None = None
    returns: Literal["quarantine", "net"] = "quarantine"
    zero_amounts: Literal["keep", "quarantine"] = "keep"
    duplicates: Literal["keep", "quarantine"] = "quarantine"
    extreme_amounts: Literal["warn", "cap", "quarantine"] = "warn"
    extreme_factor: number(gt=1) = 100.0
    customer_ids: Literal["trim", "exact"] = "trim"


@settings
class FeatureSpec:
    """Settings of the per-customer tables.

    Windows and the churn horizon are in days; ``time_unit`` scales the BTYD summary only.
    """

    time_unit: Literal["days", "weeks"] = "weeks"
    churn_horizon_days: Positive = 180
    windows_days: listing(Positive, min_len=1, increasing=True) = (30, 90, 180, 365)
    trend_window_days: Positive = 90
    train_cutoffs: AtLeastOne = 4
    train_cutoff_step_days: Positive = 30
    selection_cutoffs: Count = 2

    @property
    def unit_days(self) -> int:
        return TIME_UNITS[self.time_unit]
