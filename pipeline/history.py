"""The KPI history of the published table: each table `cvm score` and `cvm retrain` publish
adds its snapshot and the migration since the table it replaces (:mod:`models.kpis`), kept as
Parquet beside the table (``<base>_kpis.parquet``, ``<base>_migration.parquet``) and in the
database with it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models import kpis

KINDS = ("kpis", "migration")


def history_files(base: Path) -> dict[str, Path]:
    """The history's Parquet files beside the table published at ``base``."""
    return {kind: base.with_name(f"{base.name}_{kind}.parquet") for kind in KINDS}


def next_history(table: pd.DataFrame, base: Path) -> dict[str, pd.DataFrame]:
    """The history with ``table``'s snapshot added, measured against the table in place at
    ``base`` (none: the first publication). A day scored again replaces its snapshot and keeps
    the retention and migration measured against the day before it."""
    current = base.with_suffix(".parquet")
    previous = pd.read_parquet(current) if current.is_file() else None
    old = {k: pd.read_parquet(p) if p.is_file() else None for k, p in history_files(base).items()}
    again = previous is not None and kpis.as_of(previous) == kpis.as_of(table)
    snapshot = kpis.snapshot(table, None if again else previous)
    moves = old["migration"] if old["migration"] is not None else kpis.no_migration()
    if again:
        snapshot = kpis.carried(snapshot, old["kpis"])
    elif previous is not None:
        moves = kpis.appended(moves, kpis.migration(table, previous))
    return {"kpis": kpis.appended(old["kpis"], snapshot), "migration": moves}


HEADLINE = (
    "customers",
    "clv",
    "margin_clv",
    "value_at_risk",
    "expected_churn_rate",
    "retention_rate",
)


def latest_kpis(history: dict[str, pd.DataFrame] | None) -> dict[str, float | None] | None:
    """The newest snapshot's figures for all customers (what a run logs), nulls as ``None``."""
    if history is None:
        return None
    snapshots = history["kpis"]
    latest = snapshots[snapshots["as_of_date"] == snapshots["as_of_date"].max()]
    row = latest[latest["dimension"] == kpis.ALL].iloc[0]
    return {k: None if pd.isna(row[k]) else float(row[k]) for k in HEADLINE}


def kpi_metrics(figures: dict[str, float | None] | None) -> dict[str, float]:
    """:func:`latest_kpis` as MLflow metrics (``kpis_<name>``), the null ones left out."""
    return {f"kpis_{k}": v for k, v in (figures or {}).items() if v is not None}
