"""Figures of the report and the diagnostics notebook (data in, matplotlib figure out).

The figures are made without pyplot: no backend is chosen here and none is held open, so the
report renders them headless and a notebook shows the one a cell returns (inline), once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _figure(width: float = 6.4, height: float = 3.6):
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots()


def tier_shares(scored: pd.DataFrame) -> Figure:
    """Share of customers and of total CLV per value tier; without amounts (no CLV), of the
    expected purchases the tiers rank instead."""
    value, label = (
        ("clv", "CLV")
        if scored["clv"].notna().any()
        else (
            "expected_purchases",
            "expected purchases",
        )
    )
    groups = scored.groupby("value_tier", observed=False).agg(
        customers=("customer_id", "size"), value=(value, "sum")
    )
    shares = groups / groups.sum()
    fig, ax = _figure()
    x = np.arange(len(shares))
    ax.bar(x - 0.2, shares.customers * 100, 0.4, label="customers")
    ax.bar(x + 0.2, shares.value * 100, 0.4, label=label)
    ax.set_xticks(x, [str(t) for t in shares.index])
    ax.set_ylabel("% of total")
    ax.set_title("Value tiers: customers and value")
    ax.legend()
    return fig


def clv_distribution(scored: pd.DataFrame) -> Figure:
    """Histogram of CLV (log scale) with the median marked."""
    fig, ax = _figure()
    values = scored["clv"].clip(lower=0.01)
    ax.hist(values, bins=np.geomspace(values.min(), values.max(), 60))
    ax.set_xscale("log")
    ax.axvline(
        values.median(), color="black", linestyle="--", label=f"median {values.median():.2f}"
    )
    ax.set_xlabel("CLV")
    ax.set_ylabel("customers")
    ax.set_title("CLV distribution")
    ax.legend()
    return fig


def p_alive_matrix(scored: pd.DataFrame, max_frequency: int = 20) -> Figure:
    """Mean P(alive) by frequency (rows) and recency (columns)."""
    freq = scored["frequency"].clip(upper=max_frequency)
    rec = pd.cut(scored["recency"], bins=20)
    grid = scored.assign(f=freq, r=rec).pivot_table(
        index="f", columns="r", values="p_alive", aggfunc="mean", observed=False
    )
    fig, ax = _figure(6.4, 4.4)
    image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1)
    ax.set_xlabel("recency (bins from 0 to the maximum)")
    ax.set_ylabel(f"frequency (capped at {max_frequency})")
    ax.set_title("Probability alive by frequency and recency")
    fig.colorbar(image, ax=ax, label="P(alive)")
    return fig


def value_matrix(cells: pd.DataFrame, levels: list[str]) -> Figure:
    """The value matrix as a heat map: customers per cell of historical value (rows) x CLV
    (columns), each cell named with its customers and share of the total CLV. ``cells`` has
    ``historical_level``, ``clv_level``, ``value_segment``, ``customers`` and ``total_clv``;
    ``levels`` are the levels of both axes, lowest first."""
    at = {name: i for i, name in enumerate(levels)}
    rows = [at[h] for h in cells.historical_level]
    columns = [at[c] for c in cells.clv_level]
    counts = np.zeros((len(levels), len(levels)))
    counts[rows, columns] = cells.customers.to_numpy()
    total = cells.total_clv.sum()
    fig, ax = _figure(6.4, 4.4)
    image = ax.imshow(counts, origin="lower", cmap="Blues", vmin=0)
    for i, j, cell in zip(rows, columns, cells.itertuples(), strict=True):
        share = cell.total_clv / total if total else float("nan")
        ax.text(
            j,
            i,
            f"{cell.value_segment}\n{cell.customers:,} customers\n{share:.0%} of CLV",
            ha="center",
            va="center",
            fontsize="small",
            color="white" if counts[i, j] > counts.max() / 2 else "black",
        )
    ax.set_xticks(range(len(levels)), levels)
    ax.set_yticks(range(len(levels)), levels)
    ax.set_xlabel("predicted CLV")
    ax.set_ylabel("historical value")
    ax.set_title("Value matrix: customers and share of CLV")
    fig.colorbar(image, ax=ax, label="customers")
    return fig


def tracking(curve: pd.DataFrame, cutoff_period: float | None = None) -> Figure:
    """Actual vs expected cumulative repeat purchases per period."""
    fig, ax = _figure()
    ax.plot(curve.period, curve.actual, label="actual")
    ax.plot(curve.period, curve.predicted, linestyle="--", label="model")
    if cutoff_period is not None:
        ax.axvline(cutoff_period, color="grey", linestyle=":", label="calibration cutoff")
    ax.set_xlabel("period since the first purchase in the log")
    ax.set_ylabel("cumulative repeat purchases")
    ax.set_title("Tracking: cumulative repeat purchases")
    ax.legend()
    return fig


def _actual_and_model(x: pd.Series, table: pd.DataFrame, xlabel: str, title: str) -> Figure:
    """Mean holdout purchases, actual and predicted (``table``), against ``x``."""
    fig, ax = _figure()
    ax.plot(x, table.actual, marker="o", label="actual")
    ax.plot(x, table.predicted, marker="s", linestyle="--", label="model")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean holdout purchases")
    ax.set_title(title)
    ax.legend()
    return fig


def calibration_holdout(table: pd.DataFrame) -> Figure:
    """Mean holdout purchases, actual vs predicted, by calibration-period frequency."""
    xlabel = "repeat purchases in the calibration period (last bucket: and more)"
    return _actual_and_model(table.frequency, table, xlabel, "Calibration vs holdout")


def roc_curves(points: pd.DataFrame, aucs: dict[str, float]) -> Figure:
    """ROC curves of the churn model and its baselines."""
    fig, ax = _figure(5.0, 4.4)
    for name, curve in points.groupby("model", sort=False):
        ax.plot(curve.fpr, curve.tpr, label=f"{name} (AUC {aucs.get(name, float('nan')):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Churn: ROC on the holdout")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def reliability(points: pd.DataFrame) -> Figure:
    """Observed churn rate against the mean predicted probability per bin, a line per score
    (``model`` column; without it, the churn model's)."""
    fig, ax = _figure(5.0, 4.4)
    filled = points.dropna(subset=["mean_predicted"])
    if "model" not in filled.columns:
        filled = filled.assign(model="churn_model")
    for name, curve in filled.groupby("model", sort=False):
        ax.plot(curve.mean_predicted, curve.observed_rate, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ax.set_xlabel("predicted churn probability")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Churn: calibration on the holdout")
    ax.legend()
    return fig


def feature_importance(importance: pd.DataFrame, top: int = 15) -> Figure:
    """Share of the total gain of the top features."""
    head = importance.head(top).iloc[::-1]
    fig, ax = _figure(6.4, 4.8)
    ax.barh(head.feature, head.gain_share * 100)
    ax.set_xlabel("% of total gain")
    ax.set_title("Churn model: feature importance")
    return fig


def repeat_histogram(table: pd.DataFrame) -> Figure:
    """Customers by repeat purchases in the calibration period, actual and as the model
    expects them."""
    fig, ax = _figure()
    x = table.frequency.to_numpy()
    ax.bar(x - 0.2, table.actual, 0.4, label="actual")
    ax.bar(x + 0.2, table.predicted, 0.4, label="model")
    ax.set_xticks(x, [*map(str, x[:-1]), f"{x[-1]}+"])
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("customers")
    ax.set_title("Repeat purchases: actual vs model")
    ax.legend()
    return fig


def conditional_by_recency(table: pd.DataFrame) -> Figure:
    """Mean holdout purchases, actual and predicted, by weeks since the last purchase."""
    xlabel = "weeks since the last purchase at the cutoff (bin means)"
    return _actual_and_model(
        table.weeks_since_last_purchase, table, xlabel, "Holdout purchases by recency"
    )


def heterogeneity(densities: pd.DataFrame) -> Figure:
    """The fitted population densities of the purchase rate and of the dropout."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (_, part) in zip(axes, densities.groupby("model", sort=False), strict=False):
        ax.plot(part.x, part.density_of_log)
        ax.set_xscale("log")
        ax.set_xlabel(f"{part.quantity.iloc[0]} (log scale)")
        ax.set_ylabel("density of its log")
    fig.suptitle("Fitted heterogeneity across customers")
    return fig


def p_alive_paths(paths: pd.DataFrame) -> Figure:
    """P(alive) of a few customers as they stay silent after their last purchase."""
    fig, ax = _figure()
    for name, part in paths.groupby("model", sort=False):
        who = f"{name.replace('_', ' ')} ({part.repeat_purchases.iloc[0]} repeat purchases)"
        ax.plot(part.weeks_silent, part.p_alive, label=who)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("weeks without a purchase after the last one (the model's clock)")
    ax.set_ylabel("P(alive)")
    ax.set_title("P(alive) as a customer stays silent")
    ax.legend(fontsize="small")
    return fig
