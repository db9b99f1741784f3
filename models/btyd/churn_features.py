"""CLV-model outputs as churn features: what the purchase model expects in the churn horizon.

At every training cutoff the purchase model is fit (MAP) on that cutoff's summaries only, so a
feature never sees the future; at the calibration and scoring cutoffs the caller passes the
point of the matching CLV fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from models.btyd.common import PurchaseModel
from models.btyd.covariates import build_purchase, covariate_columns, individual_params
from models.btyd.inference import fit_map
from models.btyd.priors import Priors
from models.btyd.season import Season

BTYD_FEATURES = ("btyd_p_no_purchase", "btyd_expected_purchases", "btyd_p_alive")


def add_btyd_features(
    table: pd.DataFrame,
    params: dict[str, float],
    model: PurchaseModel,
    horizon: float,
    covariates: Sequence[str] = (),
    season: Season | None = None,
) -> pd.DataFrame:
    """``table`` plus P(no purchase), expected purchases (over ``horizon``) and P(alive).

    ``horizon`` is in the summary's time unit; ``params`` are the purchase model's parameters
    (and the coefficients of ``covariates``, columns of ``table``: then each customer's own);
    with a ``season``, the model runs on its clock (``table``: the customers of one cutoff).
    """
    if covariates:
        X = table[list(covariates)].to_numpy(dtype=float)
        params = individual_params(model, params, X, covariates)
    summary = table
    if season is not None:
        summary, horizon = season.summaries(table), season.window(table, horizon)
    x = summary["frequency"].to_numpy(dtype=float)
    t_x = summary["recency"].to_numpy(dtype=float)
    T = summary["T"].to_numpy(dtype=float)
    return table.assign(
        btyd_p_no_purchase=model.p_no_purchase(params, horizon, x, t_x, T),
        btyd_expected_purchases=model.conditional_expected_purchases(params, horizon, x, t_x, T),
        btyd_p_alive=model.p_alive(params, x, t_x, T),
        recency_share=table["recency_days"] / (table["tenure_days"] + 1.0),
    )


def add_btyd_features_by_cutoff(
    train: pd.DataFrame,
    model: PurchaseModel,
    priors: Priors,
    horizon: float,
    seed: int = 0,
    season: Season | None = None,
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Fit the purchase model at each cutoff of a stacked table and add its features.

    Returns the new table (row order kept) and the MAP point per cutoff (ISO date → params).
    The table's covariate columns (``cov_*``), if any, enter the purchase model; with a
    ``season`` (the CLV fit's), every cutoff's model runs on its clock, as the CLV model does.
    """
    covariates = covariate_columns(train)
    parts, points = [], {}
    for cutoff, rows in train.groupby("cutoff", sort=True):
        summary = season.summaries(rows) if season is not None else rows
        built = build_purchase(model, summary, priors, covariates)
        point = fit_map(built, seed=seed)
        params = {k: point[k] for k in built.names}
        points[pd.Timestamp(cutoff).date().isoformat()] = params
        parts.append(add_btyd_features(rows, params, model, horizon, covariates, season))
    return pd.concat(parts).loc[train.index], points
