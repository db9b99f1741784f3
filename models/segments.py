"""Value tiers, lifecycle stages and RFM segments of scored customers.

Rules are plain and documented so the teams that act on them can explain every label.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

import numpy as np
import pandas as pd

from models.settings import Count, Share, Text, listing, model_rules, number, settings

LIFECYCLE_STAGES = ("new", "active", "loyal", "at_risk", "lost")
TierBasis = Literal["clv", "margin_clv", "historical_value", "weighted"]


@settings
class TierWeights:
    """``tiers.by: weighted`` (accounts, B2B): each customer's purchase ``frequency`` (purchase
    days), ``amount`` (spend to date) and ``profit`` (margin to date) scored by the share of
    customers below it, the scores averaged with these weights."""

    frequency: number(ge=0) = 1.0
    amount: number(ge=0) = 1.0
    profit: number(ge=0) = 1.0

    @model_rules
    def _a_weight_to_rank_by(self) -> list[str]:
        if any((self.frequency, self.amount, self.profit)):
            return []
        return ["tiers.weights are all 0; expected a weight above 0 to rank by"]


@settings
class TierSettings:
    """Value tiers, best first, from what ``by`` names (``clv``, ``margin_clv``,
    ``historical_value``, or ``weighted``: frequency, amount and profit by ``weights``; see
    :func:`models.value_views.tier_value`): CLV by default.

    ``quantile``: ``bounds`` are quantiles of that value that open each tier but the last (e.g.
    0.95, 0.80, 0.50: the top 5 % are the first tier, the next 15 % the second, ...).
    ``threshold``: ``bounds`` are absolute lower bounds of it, descending.
    """

    method: Literal["quantile", "threshold"] = "quantile"
    names: listing(Text, min_len=2, unique=True) = ("platinum", "gold", "silver", "bronze")
    bounds: listing(number(), min_len=1) = (0.95, 0.80, 0.50)
    by: TierBasis = "clv"
    weights: TierWeights = field(default_factory=TierWeights)

    @model_rules
    def _bounds_separate_the_tiers(self) -> list[str]:
        names, bounds = list(self.names), list(self.bounds)
        problems = []
        if len(names) != len(bounds) + 1:
            problems.append(
                f"tiers.names is {names!r}; expected one name more than tiers.bounds {bounds!r} "
                "(the bounds separate the tiers)"
            )
        if any(a <= b for a, b in zip(bounds, bounds[1:], strict=False)):
            problems.append(f"tiers.bounds is {bounds!r}; expected strictly decreasing bounds")
        if self.method == "quantile" and not all(0 < b < 1 for b in bounds):
            problems.append(f"tiers.bounds is {bounds!r}; expected quantiles in (0, 1)")
        return problems


def assign_tiers(
    clv: pd.Series, settings: TierSettings, reference: np.ndarray | None = None
) -> pd.Series:
    """An ordered categorical tier per customer; equal CLVs always share a tier.

    Quantile tiers rank ``clv`` among its own values, or, given ``reference`` (the values of a
    population), among those: a customer of that population gets the tier it has there.
    """
    values = clv.to_numpy(dtype=float)
    if settings.method == "quantile" and reference is not None:
        ref, n = _sorted_finite(reference)
        lower = np.searchsorted(ref, values, side="left").astype(float)
        level = np.where(np.isnan(values), np.nan, (lower + 1) / n - 1 / n)
    elif settings.method == "quantile":
        # share of customers with a strictly lower CLV: ties stay together
        level = pd.Series(values).rank(method="min", pct=True).to_numpy() - 1 / len(values)
    else:
        level = values
    tier = np.full(len(values), len(settings.bounds), dtype=int)
    for i, bound in reversed(list(enumerate(settings.bounds))):
        tier[level >= bound] = i
    categories = pd.CategoricalDtype(list(settings.names), ordered=True)
    return pd.Series(pd.Categorical.from_codes(tier, dtype=categories), index=clv.index)


@settings
class LifecycleRules:
    """Thresholds of the lifecycle stages; the stages are tested in the order below.

    1. ``new``: first purchase at most ``new_days`` days before the as-of date;
    2. ``lost``: P(alive) below ``lost_p_alive`` or churn probability at least ``lost_churn``;
    3. ``at_risk``: P(alive) below ``risk_p_alive`` or churn probability at least ``risk_churn``;
    4. ``loyal``: at least ``loyal_repeats`` repeat purchases;
    5. ``active``: everyone else.
    """

    new_days: Count = 90
    lost_p_alive: Share = 0.2
    lost_churn: Share = 0.9
    risk_p_alive: Share = 0.5
    risk_churn: Share = 0.6
    loyal_repeats: Count = 3

    @model_rules
    def _lost_is_stricter(self) -> list[str]:
        """``lost`` is tested before ``at_risk``: its limits must be the stricter ones."""
        problems = []
        if self.lost_p_alive > self.risk_p_alive:
            problems.append(
                f"tiers.lifecycle.lost_p_alive is {self.lost_p_alive!r}; expected at most "
                f"tiers.lifecycle.risk_p_alive ({self.risk_p_alive!r})"
            )
        if self.lost_churn < self.risk_churn:
            problems.append(
                f"tiers.lifecycle.lost_churn is {self.lost_churn!r}; expected at least "
                f"tiers.lifecycle.risk_churn ({self.risk_churn!r})"
            )
        return problems


def lifecycle_stage(customers: pd.DataFrame, rules: LifecycleRules) -> pd.Series:
    """Stage per customer from tenure, frequency, ``p_alive`` and ``churn_probability``."""
    p_alive = customers["p_alive"].to_numpy()
    churn = customers["churn_probability"].to_numpy()
    conditions = [
        customers["tenure_days"].to_numpy() <= rules.new_days,
        (p_alive < rules.lost_p_alive) | (churn >= rules.lost_churn),
        (p_alive < rules.risk_p_alive) | (churn >= rules.risk_churn),
        customers["frequency"].to_numpy() >= rules.loyal_repeats,
    ]
    stage = np.select(conditions, ["new", "lost", "at_risk", "loyal"], default="active")
    dtype = pd.CategoricalDtype(list(LIFECYCLE_STAGES), ordered=False)
    return pd.Series(pd.Categorical(stage, dtype=dtype), index=customers.index)


# (segment, recency scores, frequency scores): the classic RFM grid; it covers all 25 cells once.
# The names carry the prefix ``rfm_``: several are lifecycle stages too (new, loyal, at_risk,
# lost), which are decided otherwise (P(alive), the churn probability, repeats)
RFM_SEGMENTS: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = (
    ("rfm_champions", (4, 5), (4, 5)),
    ("rfm_loyal", (3,), (4, 5)),
    ("rfm_potential_loyalist", (4, 5), (2, 3)),
    ("rfm_new", (5,), (1,)),
    ("rfm_promising", (4,), (1,)),
    ("rfm_need_attention", (3,), (3,)),
    ("rfm_about_to_sleep", (3,), (1, 2)),
    ("rfm_cannot_lose", (1, 2), (5,)),
    ("rfm_at_risk", (1, 2), (3, 4)),
    ("rfm_hibernating", (2,), (1, 2)),
    ("rfm_lost", (1,), (1, 2)),
)


def _sorted_finite(values: np.ndarray) -> tuple[np.ndarray, int]:
    ref = np.sort(np.asarray(values, dtype=float))
    ref = ref[~np.isnan(ref)]
    return ref, len(ref)


def quintile_score(
    values: pd.Series, higher_is_better: bool = True, reference: np.ndarray | None = None
) -> pd.Series:
    """Scores 1..5 by quintile of rank; ties share a score. Given ``reference`` (the values of
    a population), ranks among those instead: a member of it gets the score it has there."""
    if reference is None:
        pct = values.rank(method="average", pct=True, ascending=higher_is_better)
    else:  # the average rank of the value's ties, as pandas computes it
        ref, n = _sorted_finite(reference)
        x = values.to_numpy(dtype=float)
        below = np.searchsorted(ref, x, side="left")
        above = n - np.searchsorted(ref, x, side="right")
        ties = n - below - above
        ahead = below if higher_is_better else above
        avg = ahead + (ties + 1) / 2
        pct = pd.Series(np.where(np.isnan(x), np.nan, avg / n), index=values.index)
    return np.ceil(pct * 5).clip(1, 5).astype("int8")


RFM_COLUMNS = ("recency_days", "purchase_days", "total_spend")


def rfm_scores(customers: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """RFM quintile scores (1..5), ``rfm_score`` (e.g. 543) and the named ``rfm_segment``.

    Recency is ``recency_days`` (fewer is better), frequency ``purchase_days`` and monetary
    ``total_spend``; each is scored among ``customers``, or among ``reference`` (a population
    with these columns) when given.
    """

    def ref(name: str) -> np.ndarray | None:
        return None if reference is None else reference[name].to_numpy(dtype=float)

    r = quintile_score(customers["recency_days"], False, ref("recency_days"))
    f = quintile_score(customers["purchase_days"], True, ref("purchase_days"))
    spend = customers["total_spend"]
    # a log without amounts has no monetary score: 0
    has_spend = spend.notna().any() if reference is None else reference.total_spend.notna().any()
    m = (
        quintile_score(spend, True, ref("total_spend"))
        if has_spend
        else pd.Series(0, spend.index, dtype="int8")
    )
    segment = pd.Series("other", index=customers.index, dtype="str")
    for name, r_scores, f_scores in RFM_SEGMENTS:
        segment[r.isin(r_scores) & f.isin(f_scores)] = name
    return pd.DataFrame(
        {
            "rfm_recency": r,
            "rfm_frequency": f,
            "rfm_monetary": m,
            "rfm_score": (r.astype(int) * 100 + f.astype(int) * 10 + m.astype(int)).astype("int16"),
            "rfm_segment": segment,
        },
        index=customers.index,
    )
