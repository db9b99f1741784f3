"""Every label the report shows, in words, from the rules that made it (the tiers, lifecycle,
value matrix and action settings the table was scored with)."""

from __future__ import annotations

from models.segments import RFM_SEGMENTS, LifecycleRules, TierSettings
from models.value_views import ValueViewSettings

BASIS = {
    "clv": "predicted CLV",
    "margin_clv": "predicted margin CLV (profit to come)",
    "historical_value": "value to date",
    "weighted": "the weighted score of purchase frequency, amount and profit to date",
}


def tier_terms(tiers: TierSettings, has_spend: bool) -> list[tuple[str, str]]:
    """Each value tier and the share (quantile tiers) or amount (threshold tiers) it holds."""
    basis = BASIS[tiers.by] if has_spend or tiers.by != "clv" else "expected purchases"
    names, bounds = list(tiers.names), list(tiers.bounds)
    terms = []
    for i, name in enumerate(names):
        upper = bounds[i - 1] if i else None
        lower = bounds[i] if i < len(bounds) else None
        if tiers.method == "quantile":
            top = 100 * (1 - (upper if upper is not None else 1))
            bottom = 100 * (1 - (lower if lower is not None else 0))
            where = f"the customers ranked from the top {top:g} % to the top {bottom:g} %"
            if upper is None:
                where = f"the top {bottom:g} % of customers"
            elif lower is None:
                where = f"the remaining {100 - top:g} % of customers"
        elif upper is None:
            where = f"customers with at least {lower:,g}"
        elif lower is None:
            where = f"customers below {upper:,g}"
        else:
            where = f"customers from {lower:,g} to below {upper:,g}"
        terms.append((name, f"Value tier: {where} by {basis}."))
    return terms


def lifecycle_terms(rules: LifecycleRules, churn_days: int) -> list[tuple[str, str]]:
    """The lifecycle stages, as their rules are tested (the first that holds)."""
    churn = f"churn probability (no purchase in the next {churn_days} days)"
    return [
        ("new", f"Lifecycle stage: first purchase within the last {rules.new_days} days."),
        (
            "lost",
            f"Lifecycle stage: P(alive) below {rules.lost_p_alive:.0%} or {churn} of at least "
            f"{rules.lost_churn:.0%} (and not new).",
        ),
        (
            "at_risk",
            f"Lifecycle stage: P(alive) below {rules.risk_p_alive:.0%} or {churn} of at least "
            f"{rules.risk_churn:.0%} (and not new or lost).",
        ),
        (
            "loyal",
            f"Lifecycle stage: at least {rules.loyal_repeats} repeat purchases, not at risk.",
        ),
        ("active", "Lifecycle stage: every other customer."),
    ]


def segment_terms(views: ValueViewSettings) -> list[tuple[str, str]]:
    """The value-matrix cells: historical value level x predicted CLV level."""
    matrix = views.matrix
    return [
        (
            matrix.names[h][c],
            f"Value segment: {h} value to date and {c} predicted CLV (levels cut at the "
            f"quantiles {', '.join(f'{q:g}' for q in matrix.cuts)} of each).",
        )
        for h in reversed(matrix.levels)
        for c in reversed(matrix.levels)
    ]


def rfm_terms() -> list[tuple[str, str]]:
    """The RFM segments by their recency and frequency quintile scores (5 = best)."""
    terms = []
    for name, recency, frequency in RFM_SEGMENTS:
        r, f = "/".join(map(str, recency)), "/".join(map(str, frequency))
        terms.append((name, f"RFM segment: recency score {r} and frequency score {f}."))
    terms.append(("other", "RFM segment: any other combination of the scores."))
    return terms


def action_terms(views: ValueViewSettings) -> list[tuple[str, str]]:
    """Each recommended action and the tier x stage pairs it is recommended for."""
    pairs: dict[str, list[str]] = {}
    for tier, stages in views.actions.table.items():
        for stage, action in stages.items():
            pairs.setdefault(action, []).append(f"{tier} {stage}")
    terms = [(a, f"Recommended for: {', '.join(p)}.") for a, p in pairs.items()]
    if views.actions.default not in pairs:
        terms.append((views.actions.default, "Recommended for every other tier x stage pair."))
    return terms


KPI_TERMS = (
    ("customers", "Customers known at the scoring date (at least one purchase before it)."),
    ("active customers", "Customers whose lifecycle stage is new, active or loyal."),
    (
        "expected churn rate",
        "The mean churn probability: the share of customers expected to make no purchase in "
        "the churn horizon.",
    ),
    (
        "CLV",
        "Customer lifetime value: the discounted spend expected over the CLV horizon (the "
        "purchase model's forecast x the spend model's), posterior mean.",
    ),
    (
        "value at risk",
        "CLV x churn probability: the value expected to leave if nothing is done.",
    ),
    (
        "realised retention",
        "The share of the previous table's customers who bought since its scoring date.",
    ),
    (
        "P(alive)",
        "The purchase model's probability that the customer has not left for good. A one-time "
        "buyer can have a high P(alive) and a high churn probability at once: still a customer, "
        "yet unlikely to buy within the churn horizon.",
    ),
)
