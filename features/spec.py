"""Typed settings for the transaction-level transforms.

The pipeline builds these from ``params.yaml``; the transforms never read config themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

RETURN_POLICIES = ("quarantine", "net")
KEEP_OR_QUARANTINE = ("keep", "quarantine")
EXTREME_POLICIES = ("warn", "cap", "quarantine")
TIME_UNITS = {"days": 1, "weeks": 7}


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column holds each canonical field (``None`` = not present).

    ``timestamp_format`` is a strftime pattern such as ``%Y%m%d``, or ``iso`` for ISO-8601 text.
    Without ``amount`` (event logs, visits, sessions) the log is purchase-only: its ``amount`` is
    null, and the pipeline predicts purchases but no spend.
    """

    customer_id: str
    timestamp: str
    amount: str | None = None
    timestamp_format: str = "iso"
    quantity: str | None = None
    order_id: str | None = None
    margin: str | None = None

    def source_columns(self) -> list[str]:
        """Source columns in canonical order, optional ones only when mapped."""
        cols = [self.customer_id, self.timestamp]
        optional = (self.amount, self.quantity, self.order_id, self.margin)
        return cols + [c for c in optional if c is not None]


@dataclass(frozen=True)
class IngestRules:
    """Validation rules: accepted date range and what to do with returns, zeros and duplicates.

    ``returns="net"`` keeps negative amounts in the clean log; the features net them against the
    customer's spend. ``duplicates="keep"`` suits logs without an order id, where two identical
    lines are two real purchases (as in CDNOW). An amount above ``extreme_factor`` times the
    99th percentile of the positive amounts is extreme: ``extreme_amounts`` keeps it with a
    warning in the ingest report (``warn``), caps it at that limit (``cap``) or quarantines the
    row (``quarantine``).
    """

    start: date | None = None
    end: date | None = None
    returns: str = "quarantine"
    zero_amounts: str = "keep"
    duplicates: str = "quarantine"
    extreme_amounts: str = "warn"
    extreme_factor: float = 100.0

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("returns", self.returns, RETURN_POLICIES),
            ("zero_amounts", self.zero_amounts, KEEP_OR_QUARANTINE),
            ("duplicates", self.duplicates, KEEP_OR_QUARANTINE),
            ("extreme_amounts", self.extreme_amounts, EXTREME_POLICIES),
        ):
            if value not in allowed:
                raise ValueError(f"data.rules.{key} is {value!r}; expected one of {allowed}")
        if not self.extreme_factor > 1:
            raise ValueError(f"data.rules.extreme_factor is {self.extreme_factor!r}; expected > 1")


@dataclass(frozen=True)
class FeatureSpec:
    """Settings of the per-customer tables.

    Windows and the churn horizon are in days; ``time_unit`` scales the BTYD summary only.
    """

    time_unit: str = "weeks"
    churn_horizon_days: int = 180
    windows_days: tuple[int, ...] = (30, 90, 180, 365)
    trend_window_days: int = 90
    train_cutoffs: int = 4
    train_cutoff_step_days: int = 30
    selection_cutoffs: int = 2

    def __post_init__(self) -> None:
        if self.time_unit not in TIME_UNITS:
            raise ValueError(
                f"features.time_unit is {self.time_unit!r}; expected one of {list(TIME_UNITS)}"
            )
        if self.churn_horizon_days <= 0:
            raise ValueError("features.churn_horizon_days must be a positive number of days")
        if not self.windows_days or min(self.windows_days) <= 0:
            raise ValueError("features.windows_days must be positive numbers of days")
        if self.train_cutoffs < 1 or self.train_cutoff_step_days <= 0:
            raise ValueError("features.train_cutoffs must be ≥ 1 and train_cutoff_step_days > 0")
        if self.selection_cutoffs < 0:
            raise ValueError("features.selection_cutoffs must be ≥ 0")

    @property
    def unit_days(self) -> int:
        return TIME_UNITS[self.time_unit]
