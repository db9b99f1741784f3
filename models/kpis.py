"""KPIs over time: what each published scoring adds to the history the teams follow.

A snapshot holds, for all customers and per value tier, lifecycle stage and value segment:
customers, CLV, margin CLV (with a margin column), value at risk and the expected churn rate
(mean churn probability), and the realised retention since the previous published table: the
share of that table's customers of the group (as it labelled them then) who bought since its
as-of date. The migration counts
customers between the previous table's tiers (and lifecycle stages) and this one's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DIMENSIONS = ("value_tier", "lifecycle_stage", "value_segment")
MIGRATES = ("value_tier", "lifecycle_stage")
ALL = "all"  # the dimension and group of the whole table
NEW = "(new)"  # a customer the previous table did not hold
GONE = "(gone)"  # one the previous table held and this one does not
SNAPSHOT_COLUMNS = (
    "as_of_date",
    "previous_as_of_date",
    "dimension",
    "group",
    "customers",
    "clv",
    "margin_clv",
    "value_at_risk",
    "expected_churn_rate",
    "previous_customers",
    "retention_rate",
)
MIGRATION_COLUMNS = (
    "as_of_date",
    "previous_as_of_date",
    "dimension",
    "from_group",
    "to_group",
    "customers",
)

COLUMN_DOCS = {  # the history tables' column comments in the database
    "kpis": {
        "as_of_date": "The scoring date of the published table the row describes.",
        "previous_as_of_date": "The scoring date of the table it replaced (null: the first).",
        "dimension": "What groups the customers: all, value_tier, lifecycle_stage or "
        "value_segment.",
        "group": "The tier, stage or segment (all for every customer).",
        "customers": "Customers of the group in the table.",
        "clv": "Their total CLV; null for a log without amounts.",
        "margin_clv": "Their total margin CLV (the profit to come); null without a margin column.",
        "value_at_risk": "Their total value at risk (CLV x churn probability); null without "
        "amounts.",
        "expected_churn_rate": "Their mean churn probability: the share expected not to buy "
        "in the churn horizon.",
        "previous_customers": "Customers of the group in the table it replaced, as that table "
        "labelled them.",
        "retention_rate": "Share of those previous customers who bought since its scoring date "
        "(realised retention); null for the first table.",
    },
    "migration": {
        "as_of_date": "The scoring date of the published table.",
        "previous_as_of_date": "The scoring date of the table it replaced.",
        "dimension": "value_tier or lifecycle_stage.",
        "from_group": "The customers' group in the table replaced ((new): not in it).",
        "to_group": "Their group in the published table ((gone): not in it).",
        "customers": "Customers who moved from from_group to to_group.",
    },
}


def as_of(table: pd.DataFrame) -> pd.Timestamp:
    """The scored table's as-of date."""
    return pd.Timestamp(table["as_of_date"].iloc[0]).normalize()


def bought_since(table: pd.DataFrame, day: pd.Timestamp) -> pd.Series:
    """Whether each customer of ``table`` made a purchase after ``day`` (from its as-of date
    and their days since the last purchase)."""
    last = as_of(table) - pd.to_timedelta(table["recency_days"].astype(float), unit="D")
    return pd.Series((last > day).to_numpy(), index=table["customer_id"].astype(str))


def _money(values: pd.Series) -> float:
    """A total of money, null (not 0) when no customer has a value: a log without amounts."""
    return float(values.sum()) if values.notna().any() else np.nan


def _groups(table: pd.DataFrame, dimension: str) -> pd.Series:
    if dimension == ALL:
        return pd.Series(ALL, index=table.index)
    return table[dimension].astype("str")


def snapshot(table: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """The KPI rows of a scored ``table`` (:data:`SNAPSHOT_COLUMNS`), with the retention since
    the ``previous`` published table when there is one (else null)."""
    day = as_of(table)
    margin = "margin_clv" in table
    before = None if previous is None else as_of(previous)
    retained = None
    if previous is not None:
        since = bought_since(table, before)
        retained = previous["customer_id"].astype(str).map(since).fillna(False).astype(bool)
    rows = []
    for dimension in (ALL, *DIMENSIONS):
        if dimension != ALL and table[dimension].isna().all():
            continue  # no value segments without amounts
        current = table.groupby(_groups(table, dimension), sort=True, dropna=True)
        kept = {}
        if retained is not None:
            kept = retained.groupby(_groups(previous, dimension).to_numpy()).agg(["size", "mean"])
            kept = kept.to_dict("index")
        names = sorted(set(current.groups) | set(kept))
        for name in names:
            rows_of = current.get_group(name) if name in current.groups else table.iloc[:0]
            back = kept.get(name, {"size": 0, "mean": np.nan})
            rows.append(
                {
                    "as_of_date": day,
                    "previous_as_of_date": before,
                    "dimension": dimension,
                    "group": name,
                    "customers": len(rows_of),
                    "clv": _money(rows_of["clv"]),
                    "margin_clv": _money(rows_of["margin_clv"]) if margin else np.nan,
                    "value_at_risk": _money(rows_of["value_at_risk"]),
                    "expected_churn_rate": float(rows_of["churn_probability"].mean())
                    if len(rows_of)
                    else np.nan,
                    "previous_customers": int(back["size"]) if previous is not None else None,
                    "retention_rate": float(back["mean"]) if back["size"] else np.nan,
                }
            )
    out = pd.DataFrame(rows, columns=list(SNAPSHOT_COLUMNS))
    days = {"as_of_date": "datetime64[us]", "previous_as_of_date": "datetime64[us]"}
    return out.astype({"previous_customers": "Int64", **days})


def migration(table: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Customers from each of the ``previous`` table's tiers (and lifecycle stages) to each of
    this ``table``'s (:data:`MIGRATION_COLUMNS`); :data:`NEW` and :data:`GONE` for customers only
    one of them holds."""
    parts = []
    for dimension in MIGRATES:
        now = table.set_index(table["customer_id"].astype(str))[dimension].astype("str")
        then = previous.set_index(previous["customer_id"].astype(str))[dimension].astype("str")
        pairs = pd.concat([then.rename("from_group"), now.rename("to_group")], axis=1)
        pairs = pairs.fillna({"from_group": NEW, "to_group": GONE})
        counts = pairs.groupby(["from_group", "to_group"], sort=True).size()
        parts.append(counts.rename("customers").reset_index().assign(dimension=dimension))
    out = pd.concat(parts, ignore_index=True)
    out = out.assign(as_of_date=as_of(table), previous_as_of_date=as_of(previous))
    return out[list(MIGRATION_COLUMNS)].astype(no_migration().dtypes.to_dict())


def appended(history: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """``history`` with ``rows`` added, the rows of the same as-of date replaced (scoring a
    day again replaces its snapshot), in date order."""
    if history is None or history.empty:
        return rows.reset_index(drop=True)
    day = rows["as_of_date"].iloc[0] if len(rows) else None
    kept = history[pd.to_datetime(history["as_of_date"]) != day]
    out = pd.concat([kept, rows], ignore_index=True)
    return out.sort_values("as_of_date", kind="stable", ignore_index=True)


def carried(snap: pd.DataFrame, history: pd.DataFrame | None) -> pd.DataFrame:
    """``snap`` with the retention of the same day's rows in ``history``: a day scored again
    replaces the table its retention was measured against, so it keeps what was measured."""
    keys = ["dimension", "group"]
    kept = ["previous_as_of_date", "previous_customers", "retention_rate"]
    if history is None or history.empty:
        return snap
    same = history[pd.to_datetime(history["as_of_date"]) == snap["as_of_date"].iloc[0]]
    out = snap.drop(columns=kept).merge(same[keys + kept], on=keys, how="left")
    return out[list(SNAPSHOT_COLUMNS)].astype(snap.dtypes.to_dict())


def no_migration() -> pd.DataFrame:
    """The migration history before a second table was published."""
    types = {"as_of_date": "datetime64[us]", "previous_as_of_date": "datetime64[us]"}
    types |= {"dimension": "str", "from_group": "str", "to_group": "str", "customers": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in types.items()})
