"""The diagnostics of a fitted purchase model a data scientist reads beside its holdout metrics.

- ``repeat_histogram``: customers by repeat purchases in the calibration period, actual and as
  the model expects them (a posterior predictive check at the MAP point: the model simulated
  over each customer's own age, averaged over replicates);
- ``conditional_by_recency``: mean holdout purchases, actual and predicted, by the weeks since
  each customer's last purchase (the conditional expectations by frequency are
  :func:`models.evaluation.holdout.calibration_vs_holdout`);
- ``heterogeneity``: the fitted population densities of the purchase rate and of the dropout
  (BG/NBD's dropout probability, Pareto/NBD's dropout rate, Weibull/NBD's hazard scale), as
  densities of their logarithm (``x f(x)`` on a log-spaced ``x``: a shape below one makes
  ``f`` itself infinite at 0);
- ``p_alive_paths``: P(alive) of three customers of the table (a one-time buyer, the median and
  a frequent repeat buyer) as they stay silent after their last purchase.

The model's own clock is used throughout: on a seasonal one, ages and silences are seasonal
weeks. With covariates the population (all covariates 0) is drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from models.simulate import simulate_histories

REPLICATES = 10  # simulated copies of the customers for the expected histogram


def _summaries(clv, table: pd.DataFrame) -> pd.DataFrame:
    return clv.season.summaries(table) if clv.season is not None else table


def _params(clv) -> dict[str, float]:
    return {name: clv.point[name] for name in clv.purchase.param_names}


def repeat_histogram(
    clv, table: pd.DataFrame, max_frequency: int = 7, seed: int = 0
) -> pd.DataFrame:
    """Customers by repeat purchases (the last bucket: and more), actual and expected."""
    T = _summaries(clv, table)["T"].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    simulated = simulate_histories(clv.purchase, _params(clv), np.tile(T, REPLICATES), rng)
    buckets = np.arange(max_frequency + 1)

    def counts(frequency: np.ndarray) -> np.ndarray:
        return np.bincount(np.minimum(frequency, max_frequency), minlength=max_frequency + 1)

    actual = counts(table["frequency"].to_numpy(dtype=int))
    expected = counts(simulated["frequency"].to_numpy(dtype=int)) / REPLICATES
    return pd.DataFrame({"frequency": buckets, "actual": actual, "predicted": expected})


def conditional_by_recency(
    table: pd.DataFrame, predicted: pd.Series, bins: int = 8
) -> pd.DataFrame:
    """Mean holdout purchases, actual and predicted, by quantile bins of the days since the
    last purchase (labelled by the bin's mean, in weeks)."""
    weeks = table["recency_days"].to_numpy(dtype=float) / 7
    bucket = pd.qcut(weeks, bins, labels=False, duplicates="drop")
    frame = pd.DataFrame(
        {
            "bucket": bucket,
            "weeks": weeks,
            "actual": table["holdout_purchases"].to_numpy(dtype=float),
            "predicted": np.asarray(predicted, dtype=float),
        }
    )
    grouped = frame.groupby("bucket").agg(
        weeks_since_last_purchase=("weeks", "mean"),
        customers=("actual", "size"),
        actual=("actual", "mean"),
        predicted=("predicted", "mean"),
    )
    return grouped.reset_index(drop=True)


def heterogeneity(clv, points: int = 200) -> pd.DataFrame:
    """The fitted densities (``model``: ``purchase_rate`` or ``dropout``; ``quantity``, ``x``,
    ``density_of_log``), from the 0.5 % to the 99.5 % quantile."""
    p = clv.point
    # MBG/CNBD-k buys at every k-th event of a Gamma(r, alpha) rate: purchases at a k-th of it
    rate = stats.gamma(p["r"], scale=1 / (p["alpha"] * max(clv.purchase.regularity, 1)))
    if "a" in p:  # BG/NBD, MBG/NBD: the dropout probability after a purchase
        dropout, what = stats.beta(p["a"], p["b"]), "dropout probability"
    else:  # Pareto/NBD: the dropout rate; Weibull/NBD: the hazard's scale
        dropout, what = stats.gamma(p["s"], scale=1 / p["beta"]), "dropout rate"
    parts = []
    for name, law, label in (("purchase_rate", rate, "purchase rate"), ("dropout", dropout, what)):
        x = np.geomspace(law.ppf(0.005), law.ppf(0.995), points)
        frame = {"model": name, "quantity": label, "x": x, "density_of_log": x * law.pdf(x)}
        parts.append(pd.DataFrame(frame))
    return pd.concat(parts, ignore_index=True)


def p_alive_paths(clv, table: pd.DataFrame, weeks: int = 52) -> pd.DataFrame:
    """P(alive) of three customers as they stay silent ``weeks`` after their last purchase
    (``model``: who; ``repeat_purchases``, ``weeks_silent``, ``p_alive``)."""
    summary = _summaries(clv, table)
    x = summary["frequency"].to_numpy(dtype=int)
    repeaters = x[x > 0]
    wanted = {"one_time_buyer": 0}
    if len(repeaters):
        wanted |= {
            "median_repeat_buyer": int(np.median(repeaters)),
            "frequent_buyer": int(np.quantile(repeaters, 0.9)),
        }
    silent = np.arange(weeks + 1, dtype=float)
    parts = []
    for who, frequency in wanted.items():
        row = summary.iloc[int(np.argmin(np.abs(x - frequency)))]
        t_x = float(row["recency"])
        alive = clv.purchase.p_alive(
            _params(clv),
            np.full_like(silent, row["frequency"]),
            np.full_like(silent, t_x),
            t_x + silent,
        )
        frame = {"model": who, "repeat_purchases": int(row["frequency"])}
        parts.append(pd.DataFrame(frame | {"weeks_silent": silent, "p_alive": alive}))
    return pd.concat(parts, ignore_index=True)
