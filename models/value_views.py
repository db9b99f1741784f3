"""Value-management views of scored customers: value to date and to come, the value at risk,
the retention priority, the value matrix and the recommended action, and the segment summary
the teams act on.

Every rule is a plain function of the scored table (and, for value to date, of the feature
table), so a label can always be explained from the columns beside it.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Annotated

import numpy as np
import pandas as pd

from models.columns import MARGIN
from models.segments import LIFECYCLE_STAGES, LifecycleRules, TierSettings, TierWeights
from models.settings import Expect, Text, listing, model_rules, number, settings

# labels on a grid: row names to {column name: non-empty text}; which rows and columns exist
# is for the group's rules to check
Grid = dict[str, dict[str, Text]]

VIEW_COLUMNS = (
    "historical_value",
    "value_at_risk",
    "retention_priority",
    "value_segment",
    "recommended_action",
)


def _quadrant_names() -> dict[str, dict[str, str]]:
    return {
        "high": {"high": "stars", "low": "fading"},
        "low": {"high": "rising", "low": "low_value"},
    }


@settings
class ValueMatrix:
    """Historical value x predicted CLV, each cut at the same quantiles ``cuts`` into
    ``levels`` (lowest first, one more than the cuts); ``names[hist_level][clv_level]`` names
    each cell (every cell once)."""

    cuts: listing(number(gt=0, lt=1), min_len=1, increasing=True) = (0.5,)
    levels: listing(Text, min_len=2, unique=True) = ("low", "high")
    names: Annotated[Grid, Expect("a mapping of historical levels to {CLV level: cell name}")] = (
        field(default_factory=_quadrant_names)
    )

    @model_rules
    def _every_cell_named_once(self) -> list[str]:
        cuts, levels, names = list(self.cuts), list(self.levels), self.names
        if len(levels) != len(cuts) + 1:
            return [
                f"tiers.value_matrix.levels is {levels!r}; expected one level more than "
                f"tiers.value_matrix.cuts {cuts!r} (the cuts separate the levels)"
            ]
        problems = [
            f"tiers.value_matrix.names.{row} is not a level; expected one of {', '.join(levels)}"
            for row in names
            if row not in levels
        ]
        for row in levels:
            cells = names.get(row, {})
            if [c for c in cells if c not in levels] or [c for c in levels if c not in cells]:
                problems.append(
                    f"tiers.value_matrix.names.{row} is {cells!r}; expected a name for each CLV "
                    f"level {', '.join(levels)} (every cell of the matrix named)"
                )
        given = [x for row in names.values() for x in row.values()]
        if not problems and len(set(given)) != len(given):
            problems.append(
                f"tiers.value_matrix.names is {names!r}; expected a different name for each cell"
            )
        return problems

    def cell_names(self) -> list[str]:
        """The cell names, best first: high historical value, then high CLV."""
        return [self.names[h][c] for h in reversed(self.levels) for c in reversed(self.levels)]


def _default_actions() -> dict[str, dict[str, str]]:
    return {
        "platinum": {
            "new": "onboard: personal welcome",
            "active": "develop: premium offers",
            "loyal": "keep: VIP service",
            "at_risk": "retain: personal outreach",
            "lost": "win back: personal call",
        },
        "gold": {
            "new": "onboard: welcome series",
            "active": "develop: cross-sell",
            "loyal": "keep: loyalty rewards",
            "at_risk": "retain: targeted offer",
            "lost": "win back: incentive offer",
        },
        "silver": {
            "at_risk": "retain: automated reminder",
            "lost": "win back: automated campaign",
        },
        "bronze": {"lost": "let go: no paid contact"},
    }


@settings
class ActionTable:
    """``table[tier][lifecycle stage]`` is the action for that pair; ``default`` for the rest."""

    table: Annotated[Grid, Expect("a mapping of value tiers to {lifecycle stage: action}")] = field(
        default_factory=_default_actions
    )
    default: Text = "serve: standard low-cost contact"

    @model_rules
    def _stages_exist(self) -> list[str]:
        return [
            f"tiers.actions.table.{tier}.{stage} is not a lifecycle stage; expected one of "
            f"{', '.join(LIFECYCLE_STAGES)}"
            for tier, row in self.table.items()
            for stage in row
            if stage not in LIFECYCLE_STAGES
        ]


@settings
class Tiers(TierSettings):
    """The config group ``tiers``: the value tiers (:class:`TierSettings`), the lifecycle
    rules, the value matrix and the action table."""

    lifecycle: LifecycleRules = field(default_factory=LifecycleRules)
    value_matrix: ValueMatrix = field(default_factory=ValueMatrix)
    actions: ActionTable = field(default_factory=ActionTable)

    @model_rules
    def _actions_name_tiers(self) -> list[str]:
        return [
            f"tiers.actions.table.{tier} is not a value tier; expected one of "
            f"{', '.join(self.names)}"
            for tier in self.actions.table
            if tier not in self.names
        ]

    @property
    def tiers(self) -> TierSettings:
        """The value tiers alone."""
        return TierSettings(**{f.name: getattr(self, f.name) for f in fields(TierSettings)})

    @property
    def views(self) -> ValueViewSettings:
        return ValueViewSettings(matrix=self.value_matrix, actions=self.actions)


@settings
class ValueViewSettings:
    """The value matrix and the action table (``tiers.value_matrix``, ``tiers.actions``)."""

    matrix: ValueMatrix = field(default_factory=ValueMatrix)
    actions: ActionTable = field(default_factory=ActionTable)


def historical_value(features: pd.DataFrame) -> pd.Series:
    """Value to date: margin to date where the features carry it (``total_margin``), else the
    net spend to date (``total_spend``); null for a log without amounts."""
    spend = features["total_spend"].astype(float)
    if MARGIN in features.columns:
        spend = features[MARGIN].astype(float)
    return pd.Series(spend.to_numpy(), name="historical_value")


def tier_value(
    table: pd.DataFrame,
    features: pd.DataFrame,
    by: str = "clv",
    value_per_purchase: float | None = None,
    weights: TierWeights | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.Series:
    """What the value tiers rank (``tiers.by``): ``clv``, ``margin_clv``, ``historical_value``
    or the ``weighted`` score (:func:`weighted_score`, among ``reference`` when given). Without
    spend, ``clv`` ranks ``value_per_purchase`` (default 1) x expected purchases; the others
    need spend, ``margin_clv`` a margin column too (a ``ValueError``)."""
    features = features.reset_index(drop=True)
    if by == "margin_clv" and "margin_clv" not in table.columns:
        raise ValueError("tiers.by margin_clv needs a log with a margin column")
    if by == "weighted":
        return weighted_score(table, weights or TierWeights(), reference)
    if not table["clv"].notna().any():
        if by != "clv":
            raise ValueError(f"tiers.by {by} needs a log with amounts")
        return table["expected_purchases"] * (value_per_purchase or 1.0)
    if by == "historical_value":
        return historical_value(features)
    return table[by]


# what each weight of tiers.by weighted scores
WEIGHED = {"frequency": "purchase_days", "amount": "total_spend", "profit": MARGIN}


def weighted_score(
    customers: pd.DataFrame, weights: TierWeights, reference: pd.DataFrame | None = None
) -> pd.Series:
    """The ``weights``-average of each customer's frequency, amount and profit scores (the
    :data:`WEIGHED` columns), each the share of customers with a lower value: among
    ``customers``, or among ``reference`` (a population with those columns) when given. From 0
    (the lowest on every count) to nearly 1. A weighed column the table lacks (profit without
    a margin column, amount without amounts) is a ``ValueError``."""
    score, total = np.zeros(len(customers)), 0.0
    for name, column in WEIGHED.items():
        weight = getattr(weights, name)
        if not weight:
            continue
        pool = customers if reference is None else reference
        if column not in customers.columns or not pool[column].notna().any():
            raise ValueError(f"tiers.weights.{name} is {weight}; the log has no {column}")
        ranked = np.sort(pool[column].to_numpy(dtype=float))
        below = np.searchsorted(ranked, customers[column].to_numpy(dtype=float), side="left")
        score += weight * below / len(ranked)
        total += weight
    return pd.Series(score / total, index=customers.index, name="weighted_score")


def forward_value(table: pd.DataFrame) -> pd.Series:
    """The value to come the views weigh: the margin CLV where the log has margins (profit),
    else the CLV."""
    return table["margin_clv" if "margin_clv" in table.columns else "clv"].astype(float)


def value_at_risk(clv: pd.Series, churn_probability: pd.Series) -> pd.Series:
    """CLV x churn probability: the value expected to leave with the customers who churn."""
    return pd.Series(
        clv.to_numpy(dtype=float) * churn_probability.to_numpy(dtype=float), name="value_at_risk"
    )


def retention_priority(
    at_risk: pd.Series, customer_id: pd.Series, fallback: pd.Series | None = None
) -> pd.Series:
    """1 for the highest value at risk, then 2, 3, ... with no gaps and no ties: equal values
    are ordered by customer id. Where no customer has a value at risk (a log without amounts),
    ranks ``fallback`` instead (expected purchases x churn probability)."""
    key = at_risk if at_risk.notna().any() or fallback is None else fallback
    order = pd.DataFrame(
        {"value": -key.to_numpy(dtype=float), "customer_id": customer_id.astype(str).to_numpy()}
    ).sort_values(["value", "customer_id"], kind="stable", na_position="last")
    rank = np.empty(len(order), dtype="int64")
    rank[order.index.to_numpy()] = np.arange(1, len(order) + 1)
    return pd.Series(rank, name="retention_priority")


def quantile_level(
    values: pd.Series, cuts: tuple[float, ...], reference: np.ndarray | None = None
) -> np.ndarray:
    """0 .. len(cuts) per value: how many cuts the share of values strictly below it reaches
    (equal values share a level, as in the quantile tiers); -1 for a missing value. The share
    is among ``values``, or among ``reference`` (a population's values) when given."""
    x = values.to_numpy(dtype=float)
    known = ~np.isnan(x)
    pool = x[known] if reference is None else np.asarray(reference, dtype=float)
    pool = np.sort(pool[~np.isnan(pool)])
    level = np.full(len(x), -1, dtype=int)
    if len(pool) == 0:
        return level
    below = np.searchsorted(pool, x[known], side="left") / len(pool)
    level[known] = np.searchsorted(np.asarray(cuts, dtype=float), below, side="right")
    return level


def value_segment(
    history: pd.Series,
    clv: pd.Series,
    matrix: ValueMatrix,
    reference: pd.DataFrame | None = None,
) -> pd.Series:
    """The value-matrix cell of each customer: historical value level x CLV level, both cut at
    ``matrix.cuts`` quantiles; null where either value is missing (a log without amounts).
    The quantiles are those of the customers given, or of ``reference`` (a population with
    ``historical_value`` and ``clv`` columns) when it has the column."""

    def pool(name: str) -> np.ndarray | None:
        has = reference is not None and name in reference.columns
        return reference[name].to_numpy(dtype=float) if has else None

    h = quantile_level(history, matrix.cuts, pool("historical_value"))
    c = quantile_level(clv, matrix.cuts, pool("clv"))
    dtype = pd.CategoricalDtype(matrix.cell_names(), ordered=False)
    names = [
        matrix.names[matrix.levels[i]][matrix.levels[j]] if i >= 0 and j >= 0 else None
        for i, j in zip(h, c, strict=True)
    ]
    return pd.Series(pd.Categorical(names, dtype=dtype), name="value_segment")


def recommended_action(tier: pd.Series, stage: pd.Series, actions: ActionTable) -> pd.Series:
    """``actions.table[tier][stage]``, or ``actions.default`` for a pair it does not list."""
    lookup = actions.table
    out = [
        lookup.get(str(t), {}).get(str(s), actions.default)
        for t, s in zip(tier.astype(object), stage.astype(object), strict=True)
    ]
    return pd.Series(out, index=tier.index, dtype="str", name="recommended_action")


def value_columns(
    table: pd.DataFrame,
    features: pd.DataFrame,
    settings: ValueViewSettings,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The view columns (:data:`VIEW_COLUMNS`) of a scored table that has its predictions,
    churn probability, value tier and lifecycle stage; ``features`` is aligned with it. Where
    the log has margins, value at risk and the value matrix weigh the margin CLV. The
    value matrix cuts at the quantiles of ``reference`` when given (see :func:`value_segment`);
    the retention priority ranks the customers of ``table``."""
    features = features.reset_index(drop=True)
    history = historical_value(features)
    value = forward_value(table)
    at_risk = value_at_risk(value, table["churn_probability"])
    fallback = table["expected_purchases"] * table["churn_probability"]
    out = pd.DataFrame(
        {
            "historical_value": history.to_numpy(),
            "value_at_risk": at_risk.to_numpy(),
            "retention_priority": retention_priority(
                at_risk, table["customer_id"], fallback
            ).to_numpy(),
            "value_segment": value_segment(history, value, settings.matrix, reference).array,
            "recommended_action": recommended_action(
                table["value_tier"], table["lifecycle_stage"], settings.actions
            ).to_numpy(),
        }
    )
    return out.set_axis(table.index)


SUMMARY_VIEWS = ("tier_lifecycle", "value_matrix")
# the scored table's columns a summary reads
SUMMARY_READS = (
    "customer_id",
    "clv",
    "churn_probability",
    "expected_purchases",
    "value_tier",
    "lifecycle_stage",
    "value_segment",
    "value_at_risk",
)
SUMMARY_COLUMNS = (
    "view",
    "value_tier",
    "lifecycle_stage",
    "value_segment",
    "customers",
    "total_clv",
    "mean_clv",
    "total_margin_clv",
    "total_value_at_risk",
    "mean_churn_probability",
    "expected_purchases",
)


def segment_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per value tier x lifecycle stage (``view`` ``tier_lifecycle``) and per
    value-matrix cell (``value_matrix``; not for a log without amounts), every pair listed,
    empty ones too: customers, total and mean CLV, the total margin CLV (null without a margin
    column), total value at risk, mean churn probability and the expected purchases summed.
    Within a view the customers add up to the table's."""
    parts = [_summarise(table, ["value_tier", "lifecycle_stage"], "tier_lifecycle")]
    if table["value_segment"].notna().any():
        parts.append(_summarise(table, ["value_segment"], "value_matrix"))
    out = pd.concat(parts, ignore_index=True)
    for name in ("value_tier", "lifecycle_stage", "value_segment"):
        labels = out[name].astype(object)
        out[name] = labels.where(labels.notna(), None)
    return out[list(SUMMARY_COLUMNS)]


def _summarise(table: pd.DataFrame, keys: list[str], view: str) -> pd.DataFrame:
    has_clv, has_margin = table["clv"].notna().any(), "margin_clv" in table
    margin = table["margin_clv"] if has_margin else pd.Series(np.nan, index=table.index)
    groups = table.assign(margin_clv=margin).groupby(keys, observed=False, sort=True)
    out = groups.agg(
        customers=("customer_id", "size"),
        total_clv=("clv", "sum"),
        mean_clv=("clv", "mean"),
        total_margin_clv=("margin_clv", "sum"),
        total_value_at_risk=("value_at_risk", "sum"),
        mean_churn_probability=("churn_probability", "mean"),
        expected_purchases=("expected_purchases", "sum"),
    ).reset_index()
    out["customers"] = out["customers"].astype("int64")
    if not has_clv:  # a log without amounts: no money to add up
        out[["total_clv", "total_value_at_risk"]] = np.nan
    if not has_margin:  # nor margin without a margin column
        out["total_margin_clv"] = np.nan
    out.insert(0, "view", view)
    return out.reindex(columns=list(SUMMARY_COLUMNS))
