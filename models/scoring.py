"""The scored customer table: :func:`score_customers` is the one scorer behind the score stage,
``cvm score`` and retraining."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, field
from datetime import date
from functools import partial

import numpy as np
import pandas as pd

from models.btyd.predict import PredictionSettings
from models.churn.reasons import REASON_COLUMNS, churn_reasons
from models.columns import MARGIN
from models.margin import MARGIN_COLUMNS, margin_columns
from models.segments import (
    RFM_COLUMNS,
    LifecycleRules,
    TierSettings,
    TierWeights,
    assign_tiers,
    lifecycle_stage,
    rfm_scores,
)
from models.settings import AtLeastOne, PositiveNumber, number, settings
from models.value_views import (
    ValueViewSettings,
    forward_value,
    tier_value,
    value_columns,
    weighted_score,
)

SUMMARY_COLUMNS = (
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary_value",
    "recency_days",
    "tenure_days",
    "purchase_days",
    "total_spend",
)
PREDICTION_COLUMNS = tuple(
    f"{name}{suffix}"
    for name in ("p_alive", "expected_purchases", "expected_spend", "clv")
    for suffix in ("", "_lower", "_upper")
)


@settings
class ScoringSettings:
    """How customers are scored: CLV predictions (from at most ``max_draws`` posterior draws),
    the churn horizon in model time units, the tier and lifecycle rules, and the value matrix
    and action table of the value views; with a margin column, the weight of the population's
    margin share in each customer's (:mod:`models.margin`). Without a spend model, tiers rank
    ``value_per_purchase`` (default 1) times the expected purchases."""

    prediction: PredictionSettings
    max_draws: AtLeastOne | None
    churn_horizon: PositiveNumber
    tiers: TierSettings
    lifecycle: LifecycleRules
    value_per_purchase: PositiveNumber | None = None
    views: ValueViewSettings = field(default_factory=ValueViewSettings)
    margin_prior_days: number(ge=0) = 3.0

    def to_dict(self) -> dict:
        """Plain JSON-able values (:meth:`from_dict` rebuilds the settings)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ScoringSettings:
        """The settings :meth:`to_dict` gave (JSON: tuples come back as lists)."""
        return cls(**values)


REFERENCE_COLUMNS = ("tier_value", *RFM_COLUMNS, "historical_value", "clv")


def population(
    table: pd.DataFrame,
    value_per_purchase: float | None = None,
    by: str = "clv",
    weights: TierWeights | None = None,
) -> pd.DataFrame:
    """What tiers, RFM scores, the value matrix and the margin shares rank a customer against,
    from a scored table: the value the tiers rank (``by``: CLV, or ``value_per_purchase`` x
    expected purchases without spend; the margin CLV with ``margin_clv``, value to date with
    ``historical_value``, the score of ``weights`` with ``weighted``), the RFM columns, the two
    axes of the value matrix (its ``clv`` the margin CLV where the log has margins) and the
    margin to date where it has them. Scoring with it as ``reference`` labels a batch of any
    size as in that table."""
    if by == "weighted":
        value = weighted_score(table, weights or TierWeights())
    elif by in ("historical_value", "margin_clv") and table[by].notna().any():
        value = table[by]
    elif table["clv"].notna().any():
        value = table["clv"]
    else:
        value = table["expected_purchases"] * (value_per_purchase or 1.0)
    margin = [MARGIN] if MARGIN in table.columns else []
    columns = [*RFM_COLUMNS, "historical_value", *margin]
    out = table[columns].astype(float).assign(clv=forward_value(table), tier_value=value)
    return out[[*REFERENCE_COLUMNS, *margin]].astype(float).reset_index(drop=True)


def score_rows(features: pd.DataFrame, clv, churn, settings: ScoringSettings) -> pd.DataFrame:
    """Row for row: ``customer_id``, every CLV prediction with its interval,
    ``churn_probability`` (the churn model fed with what the CLV model's purchase model expects)
    and its reasons (:func:`models.churn.reasons.churn_reasons`).

    ``clv`` is a :class:`models.btyd.clv.FittedClv` (already thinned), ``churn`` a
    :class:`models.churn.classifier.ChurnModel`. Works on a batch as on the whole table.
    """
    features = features.reset_index(drop=True)
    scores = clv.predict(features, settings.prediction)
    churn_features = clv.churn_features(features, settings.churn_horizon)
    scores["churn_probability"] = churn.predict(churn_features)
    scores[list(REASON_COLUMNS)] = churn_reasons(churn, churn_features).to_numpy()
    scores.insert(0, "customer_id", features["customer_id"].astype(str).to_numpy())
    return scores


RowScorer = Callable[[pd.DataFrame], pd.DataFrame]


def score_customers(
    features: pd.DataFrame,
    clv,
    churn,
    settings: ScoringSettings,
    provenance: dict[str, str],
    as_of: date,
    execute: Callable[[RowScorer, pd.DataFrame], pd.DataFrame] | None = None,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The scored customer table of ``features`` (one row per customer).

    ``execute(score, features)`` runs the row scorer over the table (default: in this process;
    the score stage passes one that runs it in Spark's executors); tiers, lifecycle stages and
    RFM scores rank customers against each other, so they are assigned to the gathered scores,
    or against ``reference`` (:func:`population`) when given.
    """
    if "cutoff" not in features.columns:  # the features' date, for a churn prior that needs it
        features = features.assign(cutoff=pd.Timestamp(as_of))
    score = partial(score_rows, clv=clv.thinned(settings.max_draws), churn=churn, settings=settings)
    scores = score(features) if execute is None else execute(score, features)
    return scored_table(
        features,
        scores,
        scores["churn_probability"],
        settings.tiers,
        settings.lifecycle,
        provenance,
        as_of,
        settings.value_per_purchase,
        reference,
        views=settings.views,
        margin_prior_days=settings.margin_prior_days,
    )


def scored_table(
    features: pd.DataFrame,
    predictions: pd.DataFrame,
    churn_probability: np.ndarray,
    tiers: TierSettings,
    lifecycle: LifecycleRules,
    provenance: dict[str, str],
    as_of: date,
    value_per_purchase: float | None = None,
    reference: pd.DataFrame | None = None,
    views: ValueViewSettings | None = None,
    margin_prior_days: float = 3.0,
) -> pd.DataFrame:
    """One row per customer: summary, predictions with intervals, churn, tier, stage, RFM
    and the value views (:func:`models.value_views.value_columns`, with ``views``); where the
    features carry the margin to date, the margin share and CLV (:mod:`models.margin`, shrunk
    toward ``reference``'s share, or the table's, by ``margin_prior_days``).

    ``predictions`` is aligned with ``features`` (as returned by
    :func:`models.btyd.predict.predict_customers`); ``provenance`` names the models
    (e.g. ``{"clv_model": "...", "churn_model": "..."}``) and becomes constant columns.
    Predictions without spend (a purchase-only model) leave the spend and CLV columns null,
    and the tiers rank ``value_per_purchase`` (default 1) times the expected purchases.
    Tiers and RFM scores rank the customers among themselves, or among ``reference``.
    """
    margin = MARGIN in features.columns
    summary = [*SUMMARY_COLUMNS, MARGIN] if margin else list(SUMMARY_COLUMNS)
    table = features[summary].reset_index(drop=True)
    preds = predictions.reset_index(drop=True).reindex(columns=list(PREDICTION_COLUMNS))
    table = pd.concat([table, preds], axis=1)
    if margin:
        pool = reference if reference is not None and MARGIN in reference.columns else table
        table[list(MARGIN_COLUMNS)] = margin_columns(table, pool, margin_prior_days)
    table["churn_probability"] = np.asarray(churn_probability, dtype=float)
    reasons = predictions.reindex(columns=list(REASON_COLUMNS)).reset_index(drop=True)
    table[list(REASON_COLUMNS)] = reasons.astype("str")
    order = "clv" if "clv" in predictions.columns else "expected_purchases"
    value = tier_value(table, features, tiers.by, value_per_purchase, tiers.weights, reference)
    ranks = None if reference is None else reference["tier_value"].to_numpy(dtype=float)
    table["value_tier"] = assign_tiers(value, tiers, ranks)
    table["lifecycle_stage"] = lifecycle_stage(table, lifecycle)
    table = pd.concat([table, rfm_scores(table, reference)], axis=1)
    views = views or ValueViewSettings()
    table = pd.concat([table, value_columns(table, features, views, reference)], axis=1)
    for key, label in provenance.items():
        table[key] = label
    table["as_of_date"] = pd.Timestamp(as_of).normalize()
    return table.sort_values(order, ascending=False, kind="stable").reset_index(drop=True)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every text cell that starts like a spreadsheet formula (``=``, ``+``,
    ``-``, ``@``, tab, carriage return) prefixed by an apostrophe, so a spreadsheet opening the
    CSV shows it as text instead of running it (a customer id ``=HYPERLINK(...)``). Numbers are
    left alone; ``table`` is not modified."""
    out = table.copy()
    for name in out.columns:
        values = out[name]
        text_like = isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object
        if not (text_like or pd.api.types.is_string_dtype(values)):
            continue
        text = values.astype("str")
        risky = text.str.startswith(FORMULA_STARTS) & values.notna()
        if risky.any():
            out[name] = values.astype(object).where(~risky, "'" + text)
    return out


COLUMN_DOCS: dict[str, str] = {
    "customer_id": "Customer identifier, as in the source log.",
    "frequency": "Repeat purchase days up to the as-of date (purchases on one day count once).",
    "recency": "Time from the first to the last purchase, in the configured time unit.",
    "T": "Time from the first purchase to the as-of date, in the configured time unit.",
    "monetary_value": "Mean spend of the repeat purchase days (0 without repeat purchases).",
    "recency_days": "Days since the last purchase.",
    "tenure_days": "Days since the first purchase.",
    "purchase_days": "Purchase days in total, the first included.",
    "total_spend": "Net spend in total.",
    MARGIN: "Net margin in total (the log's margin column; only where data.mapping.margin is set).",
    "p_alive": "Probability the customer has not dropped out for good (purchase model), "
    "posterior mean. Not the chance of buying soon: under BG/NBD a one-time buyer has p_alive 1 "
    "however long ago, and may still have a churn_probability near 1.",
    "expected_purchases": "Expected purchases over clv.prediction.horizon_days, posterior mean.",
    "expected_spend": "Expected spend per future purchase (Gamma-Gamma), posterior mean; null "
    "for a log without amounts.",
    "clv": "Discounted margin over clv.prediction.clv_months months, posterior mean; null for a "
    "log without amounts.",
    "margin_share": "The customer's margin share of spend: total_margin / total_spend, shrunk "
    "toward the population's share as if by clv.prediction.margin_prior_days more purchase "
    "days at its mean spend (only with a margin column).",
    "margin_clv": "clv x margin_share: the profit to come (only with a margin column).",
    "margin_clv_lower": "Lower bound of the credible interval of margin_clv.",
    "margin_clv_upper": "Upper bound of the credible interval of margin_clv.",
    "churn_probability": "Calibrated probability of no purchase in features.churn_horizon_days "
    "(see p_alive for how the two differ).",
    **{
        column: f"The {rank} strongest reason for churn_probability: the feature that moved "
        "the score furthest from the churn model's base value in the way it went (towards "
        "churn for a score above the base, away from it below), with the customer's own value; "
        "null where fewer features moved it. 'Purchase model' reasons read the CLV model's "
        "forecast over the churn window (features.churn_horizon_days)."
        for rank, column in zip(("first", "second", "third"), REASON_COLUMNS, strict=True)
    },
    "value_tier": "Value tier from what tiers.by names (clv, margin_clv, historical_value or "
    "the weighted score of frequency, amount and profit; default clv), best first; "
    "without spend, from clv.prediction.value_per_purchase (default 1) x expected_purchases.",
    "lifecycle_stage": "new, active, loyal, at_risk or lost (tiers.lifecycle rules).",
    "rfm_recency": "Recency quintile score, 5 = most recent.",
    "rfm_frequency": "Frequency quintile score (purchase days), 5 = most frequent.",
    "rfm_monetary": "Monetary quintile score (total spend), 5 = highest.",
    "rfm_score": "The three RFM scores as one number, e.g. 543.",
    "rfm_segment": "Named RFM segment from the recency and frequency scores alone (rfm_champions, "
    "..., rfm_lost; the prefix tells them from the lifecycle stages).",
    "historical_value": "Value to date: net spend to date (margin to date where the features "
    "carry it); null for a log without amounts.",
    "value_at_risk": "clv x churn_probability (margin_clv x churn_probability with a margin "
    "column): the value expected to leave if the customer churns; null for a log without "
    "amounts.",
    "retention_priority": "Rank by value_at_risk, 1 = highest, no gaps, ties by customer_id; "
    "without amounts, by expected_purchases x churn_probability.",
    "value_segment": "Cell of the value matrix of historical_value x clv quantiles (margin_clv "
    "with a margin column) "
    "(tiers.value_matrix: stars, fading, rising, low_value by default); null for a log without "
    "amounts.",
    "recommended_action": "Action for the value tier x lifecycle stage (tiers.actions), else "
    "tiers.actions.default.",
    "clv_model": "Identifier of the CLV model (registry version, or content hash).",
    "churn_model": "Identifier of the churn model (registry version, or content hash).",
    "as_of_date": "The scoring date: features and predictions use data up to this day.",
}
for _name in ("p_alive", "expected_purchases", "expected_spend", "clv"):
    for _suffix, _word in (("_lower", "lower"), ("_upper", "upper")):
        COLUMN_DOCS[f"{_name}{_suffix}"] = (
            f"{_word.capitalize()} bound of the credible interval of {_name}."
        )


def value_totals(table: pd.DataFrame) -> dict[str, float | None]:
    """The scored table's ``total_clv`` (:func:`total_or_none`), and its ``total_margin_clv``
    where the log has margins: the headline figures of every scoring's summary."""
    margin = {"total_margin_clv": total_or_none(table.margin_clv)} if "margin_clv" in table else {}
    return {"total_clv": total_or_none(table.clv), **margin}


def total_or_none(values: pd.Series) -> float | None:
    """The sum of a money column, ``None`` when it holds no value (a log without amounts): a
    total of 0.0 would claim a value nobody predicted."""
    return None if values.isna().all() else float(values.sum())


def table_schema(table: pd.DataFrame) -> dict:
    """A JSON schema of the scored table: per column its type, description and nullability."""
    columns = []
    for name, dtype in table.dtypes.items():
        columns.append(
            {
                "name": name,
                "dtype": str(dtype),
                "categories": list(dtype.categories)
                if isinstance(dtype, pd.CategoricalDtype)
                else None,
                "nullable": bool(table[name].isna().any()),
                "description": COLUMN_DOCS.get(name, ""),
            }
        )
    return {"rows": len(table), "columns": columns}
