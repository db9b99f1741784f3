"""The ceilings of a simulated log: each customer's probability of churn (:func:`churn_ceiling`)
and expected purchases in a window (:func:`clv_ceiling`) given the history the models see,
under the simulation's own process and population parameters (:mod:`models.simulate`).

No score computed from that history ranks or calibrates better in expectation, and no forecast
is closer in expectation: they are the posterior probability and mean under the truth. On a
simulated log the backtest sets them beside the baselines and the CLV model, so a target can be
judged against what there is to take. Models of Poisson purchases only (not MBG/CNBD-k's
regular ones).

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
- BG/NBD with Weibull lifetimes: BG/NBD's weights, and its own lifetime besides.
- Pareto/NBD: no dropout at a purchase; its own lifetime is exponential, its rate
  ``mu ~ Gamma(s, beta)`` integrated out (survival ``(beta / (beta + d))^s``).

Churn (no purchase in ``(T, T + h]``) adds the paths where the customer dies in the window
before buying, or survives it without buying. The expected purchases are those of a customer
alive at ``T`` (:func:`clv_ceiling`), times the probability of that path.
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
    h = _Histories(truth, frame, cutoff, customers)
    end = h.T + horizon_days / h.unit
    with np.errstate(divide="ignore"):  # log 0: a path that cannot happen
        within = h.died(h.T, end)
        quiet = h.life.log_survival(end) + h.log_lambda(end)
        paths = special.logsumexp([h.before, within, quiet], axis=0)
        churned = np.logaddexp(h.dropped, h.kept + paths)
    return np.exp(churned - h.history)[:, 0]


def clv_ceiling(
    truth: Mapping,
    frame: pd.DataFrame,
    cutoff: date,
    horizon_days: float,
    customers: pd.DataFrame | None = None,
) -> np.ndarray:
    """Each row's expected purchases in the ``horizon_days`` after ``cutoff`` under the truth
    (arguments as :func:`churn_ceiling`): the forecast no model of the history can beat in
    expectation.

    A customer still purchasing at ``T`` (probability ``P(alive)``, the history's paths through
    ``alive`` against all) has their lifetime past ``T``, drawn from its prior beyond ``T``
    (the history says nothing more of it); given it ends at ``d``, the window's purchases are
    the model's expectation for a customer alive over the exposure ``E(min(d, T + h)) - E(T)``,
    with the rate's posterior after the exposure ``E(T)`` and the dropout at purchases (BG/NBD:
    the closed form of its conditional expectation on that exposure; a model whose customers
    leave only at the end of a lifetime: the rate's posterior mean times the exposure).
    """
    h = _Histories(truth, frame, cutoff, customers)
    end = h.T + horizon_days / h.unit
    exposure_T = h.exposure(h.T)

    def purchases(d: np.ndarray) -> np.ndarray:  # expected, the lifetime ending at d >= T
        return h.expected_if_alive(h.exposure(np.minimum(d, end)) - exposure_T, exposure_T)

    d = (end - h.T) / 2 * NODES + (end + h.T) / 2
    with np.errstate(divide="ignore"):
        died = np.exp(h.life.log_density(d) - h.life.log_survival(h.T)) * purchases(d)
        lives = np.exp(h.life.log_survival(end) - h.life.log_survival(h.T)) * purchases(end)
        alive = np.exp(h.kept + h.alive - h.history)
    return (alive * (lives + (died @ WEIGHTS)[:, None] * (end - h.T) / 2))[:, 0]


class _Histories:
    """The customers' histories at a cutoff under the truth, as the ceilings integrate them:
    per customer (a column, so it broadcasts over quadrature nodes) the log-probabilities of
    the history's paths (``dropped`` right after the last purchase; ``kept``, then died
    ``before`` ``T`` or ``alive`` at it) and their total, ``history``."""

    def __init__(
        self, truth: Mapping, frame: pd.DataFrame, cutoff: date, customers: pd.DataFrame | None
    ) -> None:
        self.params, self.unit = truth["params"], float(truth["time_unit_days"])
        if truth["model"] not in NAMES:
            raise ValueError(f"ceiling: unknown simulation model {truth['model']!r}")
        model = self.model = purchase_model(truth["model"])
        if model.regularity > 1:
            raise ValueError(
                f"ceiling: {truth['model']!r} buys at a regular rhythm (Erlang-"
                f"{model.regularity}); the ceiling integrates Poisson purchases only"
            )
        self.rate_shift, drop_shift = (v[:, None] for v in _shifts(truth, frame, customers))
        tenure = frame["tenure_days"].to_numpy(dtype=float)[:, None]
        self.x = frame["frequency"].to_numpy(dtype=float)[:, None]
        recency = frame["recency_days"].to_numpy(dtype=float)[:, None]
        self.T, t_x = tenure / self.unit, (tenure - recency) / self.unit
        self.first = ((cutoff - date.fromisoformat(str(truth["start"]))).days - tenure) / self.unit
        self.amplitude = truth["seasonality"]
        self.alpha = self.params["alpha"] * np.exp(-self.rate_shift)
        self.drop_shift = drop_shift
        self.life = _Lifetime(model, truth, drop_shift)
        with np.errstate(divide="ignore"):  # log 0: a path that cannot happen
            dropped, self.kept = self.life.branches(self.params, self.x)
            self.dropped = dropped + self.life.log_survival(t_x) + self.log_lambda(t_x)
            self.before = self.died(t_x, self.T)
            self.alive = self.life.log_survival(self.T) + self.log_lambda(self.T)
            paths = np.logaddexp(self.before, self.alive)
            self.history = np.logaddexp(self.dropped, self.kept + paths)

    def exposure(self, age: np.ndarray) -> np.ndarray:
        return _exposure(self.first, age, self.amplitude, 365.25 / self.unit)

    def log_lambda(self, d: np.ndarray) -> np.ndarray:
        """The Gamma integral over the rate of purchasing until ``d``."""
        return -(self.params["r"] + self.x) * np.log(self.alpha + self.exposure(d))

    def died(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """``log int_lo^hi f_D(d) G(d) dd``: died in ``(lo, hi]``, no purchase since ``lo``."""
        d = (hi - lo) / 2 * NODES + (hi + lo) / 2
        terms = self.life.log_density(d) + self.log_lambda(d) + np.log(WEIGHTS)
        log_sum = special.logsumexp(terms, axis=1, keepdims=True)
        return log_sum + np.log(np.maximum(hi - lo, 1e-300) / 2)

    def expected_if_alive(self, window: np.ndarray, exposed: np.ndarray) -> np.ndarray:
        """Expected purchases over the exposure ``window`` of a customer purchasing after the
        exposure ``exposed`` with ``x`` repeat purchases, leaving only at purchases."""
        if self.model.drop_after_purchase is None:  # leaves only at the end of a lifetime
            return (self.params["r"] + self.x) / (self.alpha + exposed) * window
        scaled = self.model.scaled[1]  # the dropout parameter the covariates scale
        params = dict(self.params) | {
            "alpha": self.alpha,
            scaled: self.params[scaled] * np.exp(-self.drop_shift),
        }
        at_purchases = self.model.without_lifetime  # the lifetime is integrated here
        model = self.model if at_purchases is None else purchase_model(at_purchases)
        return model.expected_purchases_if_alive(params, window, self.x, exposed)


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
        raise ValueError("ceiling: covariate effects need the simulated customers")
    names = [name for name, _, _ in effects]
    values = frame[["customer_id"]].merge(customers[["customer_id", *names]], how="left")
    rate = sum(b * values[c].to_numpy(dtype=float) for c, b, _ in effects)
    drop = sum(g * values[c].to_numpy(dtype=float) for c, _, g in effects)
    return np.asarray(rate, dtype=float), np.asarray(drop, dtype=float)
