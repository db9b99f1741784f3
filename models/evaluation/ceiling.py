"""The churn ceiling of a simulated log: each customer's probability of churn given the history
the models see, under the simulation's own process and population parameters
(:mod:`models.simulate`).

No score computed from that history ranks or calibrates better in expectation: it is the
posterior probability under the truth. On a simulated log the backtest sets it beside the
baselines, so a margin target can be judged against the margin there is to take.

The history of a customer is what the feature table holds: ``x`` repeat purchases, the last
at age ``t_x``, observed to age ``T`` (weeks since the first purchase, in the simulation's
time unit), and the calendar day of the first purchase, which places the season. Given the
lifetime ``D``, the purchases are Poisson with intensity ``lambda s(t)``; with
``lambda ~ Gamma(r, alpha)`` integrated out, the history's likelihood is proportional to
``(alpha + E(d))^-(r + x)``, ``E(d)`` the exposure ``int_0^d s``. What remains is a sum over how
purchasing ended, each term a one-dimensional integral over ``D``: dropped right after the last
purchase, or not dropped at a purchase and purchasing ends at ``min(D, T)``; ``D`` is the
earlier of the model's own lifetime and the ageing lifetime (Rayleigh, hazard
``aging**2 * age``). The model's terms are its :class:`~models.btyd.common.PurchaseModel`'s
(``purchase_dropout``, ``lifetime``):

- BG/NBD: dropped right after the last purchase with weight ``E[p (1 - p)^(x-1)]``, not
  dropped with ``E[(1 - p)^x]``; no lifetime of its own (``D`` is the ageing lifetime, or never
  without ageing).
- Pareto/NBD: no dropout at a purchase; its own lifetime is exponential, its rate
  ``mu ~ Gamma(s, beta)`` integrated out (survival ``(beta / (beta + d))^s``).

Churn (no purchase in ``(T, T + h]``) adds the paths where the customer dies in the window
before buying, or survives it without buying.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import special

from models.btyd.family import NAMES, purchase_model

if TYPE_CHECKING:
    from models.btyd.common import PurchaseModel

NODES, WEIGHTS = np.polynomial.legendre.leggauss(64)


def churn_ceiling(
    truth: Mapping,
    frame: pd.DataFrame,
    cutoff: date,
    horizon_days: float,
    customers: pd.DataFrame | None = None,
) -> np.ndarray:
    """P(no purchase in the ``horizon_days`` after ``cutoff``) of each row of ``frame``.

    Parameters
    ----------
    truth : mapping
        The simulation's settings as ``cvm simulate`` writes them (``truth.json``): ``model``,
        ``params``, ``aging``, ``seasonality``, ``start``, ``time_unit_days`` and
        ``covariate_effects``.
    frame : pandas.DataFrame
        Features at ``cutoff``: ``frequency``, ``tenure_days``, ``recency_days`` (and
        ``customer_id`` with covariate effects).
    customers : pandas.DataFrame, optional
        The simulation's customers (``customer_id`` and one column per covariate); needed only
        with covariate effects.

    Raises
    ------
    ValueError
        An unknown model, a model with regular purchases, or covariate effects without
        ``customers``.
    """
    params, unit = truth["params"], float(truth["time_unit_days"])
    if truth["model"] not in NAMES:
        raise ValueError(f"churn ceiling: unknown simulation model {truth['model']!r}")
    model = purchase_model(truth["model"])
    if model.regularity > 1:
        raise ValueError(
            f"churn ceiling: {truth['model']!r} buys at a regular rhythm (Erlang-"
            f"{model.regularity}); the ceiling integrates Poisson purchases only"
        )
    # every per-customer quantity a column, so that it broadcasts over quadrature nodes
    rate_shift, drop_shift = (v[:, None] for v in _shifts(truth, frame, customers))
    tenure = frame["tenure_days"].to_numpy(dtype=float)[:, None]
    x = frame["frequency"].to_numpy(dtype=float)[:, None]
    T, t_x = tenure / unit, (tenure - frame["recency_days"].to_numpy(dtype=float)[:, None]) / unit
    first = ((cutoff - date.fromisoformat(str(truth["start"]))).days - tenure) / unit
    alpha = params["alpha"] * np.exp(-rate_shift)
    life = _Lifetime(model, truth, drop_shift)

    def log_lambda(d: np.ndarray) -> np.ndarray:  # the Gamma integral over the rate, up to d
        return -(params["r"] + x) * np.log(
            alpha + _exposure(first, d, truth["seasonality"], 365.25 / unit)
        )

    def died(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:  # log int_lo^hi f_D(d) G(d) dd
        d = (hi - lo) / 2 * NODES + (hi + lo) / 2
        terms = life.log_density(d) + log_lambda(d) + np.log(WEIGHTS)
        log_sum = special.logsumexp(terms, axis=1, keepdims=True)
        return log_sum + np.log(np.maximum(hi - lo, 1e-300) / 2)

    h = horizon_days / unit
    with np.errstate(divide="ignore"):  # log 0: a path that cannot happen
        dropped, kept = life.branches(params, x)
        dropped = dropped + life.log_survival(t_x) + log_lambda(t_x)
        before, within = died(t_x, T), died(T, T + h)
        quiet = life.log_survival(T + h) + log_lambda(T + h)
        alive = life.log_survival(T) + log_lambda(T)
        churned = np.logaddexp(dropped, kept + special.logsumexp([before, within, quiet], axis=0))
        history = np.logaddexp(dropped, kept + np.logaddexp(before, alive))
    return np.exp(churned - history)[:, 0]


def _exposure(first: np.ndarray, age: np.ndarray, amplitude: float, period: float) -> np.ndarray:
    """``int_0^age 1 + amplitude sin(2 pi (first + u) / period) du``."""
    w = 2 * np.pi / period
    return age + amplitude / w * (np.cos(w * first) - np.cos(w * (first + age)))


class _Lifetime:
    """The lifetime ``D`` that ends purchasing, besides a dropout right after a purchase: the
    earlier of the model's own lifetime (if it has one) and the ageing one."""

    def __init__(self, model: PurchaseModel, truth: Mapping, drop_shift: np.ndarray):
        self.model = model
        self.scale = 1.0 / truth["aging"] if truth["aging"] else np.inf  # Rayleigh
        self.drop_shift = drop_shift
        self.own = None if model.lifetime is None else model.lifetime(truth["params"], drop_shift)

    def log_survival(self, d: np.ndarray) -> np.ndarray:
        out = -(d**2) / (2 * self.scale**2)
        if self.own is not None:
            out = out + self.own[0](d)
        return out

    def log_density(self, d: np.ndarray) -> np.ndarray:
        hazard = d / self.scale**2
        if self.own is not None:
            hazard = hazard + self.own[1](d)
        with np.errstate(divide="ignore"):
            return self.log_survival(d) + np.log(hazard)

    def branches(self, params: Mapping, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log-weights of (dropped right after the last purchase, not dropped at a purchase)."""
        return self.model.purchase_dropout(params, self.drop_shift, x)


def _shifts(
    truth: Mapping, frame: pd.DataFrame, customers: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's covariate shifts of the purchase rate and of the dropout, as simulated."""
    n = len(frame)
    effects = truth.get("covariate_effects") or []
    if not effects:
        return np.zeros(n), np.zeros(n)
    if customers is None:
        raise ValueError("churn ceiling: covariate effects need the simulated customers")
    names = [name for name, _, _ in effects]
    values = frame[["customer_id"]].merge(customers[["customer_id", *names]], how="left")
    rate = sum(b * values[c].to_numpy(dtype=float) for c, b, _ in effects)
    drop = sum(g * values[c].to_numpy(dtype=float) for c, _, g in effects)
    return np.asarray(rate, dtype=float), np.asarray(drop, dtype=float)
