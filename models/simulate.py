"""Simulate purchase histories from a purchase model's process (BG/NBD, Pareto/NBD: any of
:data:`models.btyd.family.NAMES`) and Gamma-Gamma spend.

Used for predictive checks and recovery tests: the truth (each customer's rates and whether
they are alive at ``T``) comes with the histories.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from models.btyd.family import NAMES, purchase_model
from models.settings import (
    AtLeastOne,
    Count,
    Flag,
    NonNegative,
    Share,
    model_rules,
    number,
    settings,
)

if TYPE_CHECKING:
    from models.btyd.common import PurchaseModel


def _purchases(
    model: str | PurchaseModel,
    params: dict[str, float],
    T: np.ndarray,
    rng: np.random.Generator,
    rate_shift: np.ndarray | float = 0.0,
    drop_shift: np.ndarray | float = 0.0,
    aging: float = 0.0,
    season: tuple[np.ndarray, float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Latent rates, each customer's end of purchasing (``death``: inf for none) and every
    repeat purchase (``owner``, ``age``) of customers observed for ``T``.

    The purchase rate is Gamma(r, alpha); how customers drop out is the purchase model's
    (``draw_dropout`` and ``drop_after_purchase`` of its
    :class:`~models.btyd.common.PurchaseModel`; BG/NBD: after each repeat purchase with
    probability p ~ Beta(a, b); Pareto/NBD: lifetime ~ Exp(mu), mu ~ Gamma(s, beta)); a model
    with regular purchases (MBG/CNBD-k) waits ``k`` events of the rate between purchases.
    ``rate_shift`` multiplies the rate by ``exp(shift)`` (``alpha_i = alpha exp(-shift)``);
    ``drop_shift`` raises the dropout as the covariate models do (:mod:`models.btyd.covariates`:
    BG/NBD's ``b_i = b exp(-shift)``, Pareto/NBD's ``beta_i = beta exp(-shift)``). ``aging``
    adds a second way to leave whose hazard grows with age (a Rayleigh lifetime: hazard
    ``aging**2 * age``), so churn rises with age.
    ``season`` = (first purchase time of each customer, amplitude, period) modulates the rate
    by ``1 + amplitude * sin(2 pi (first + age) / period)`` (events thinned from the peak rate).
    """
    purchase = purchase_model(model) if isinstance(model, str) else model
    shape = purchase.regularity or 1  # Erlang-k times between purchases, k events of the rate
    n = len(T)
    rate = rng.gamma(params["r"], 1.0 / params["alpha"], n) * np.exp(rate_shift)
    amplitude = season[1] if season is not None else 0.0
    dropout, death = purchase.draw_dropout(params, n, rng, drop_shift)
    if aging > 0:
        death = np.minimum(death, rng.rayleigh(1.0 / aging, n))
    owners, ages = [], []
    now = np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        nxt = now[idx] + rng.gamma(shape, 1.0 / (rate[idx] * (1.0 + amplitude)))
        inside = (nxt <= T[idx]) & (nxt <= death[idx])
        active[idx[~inside]] = False
        now[idx[inside]] = nxt[inside]
        bought = inside
        if season is not None:  # a candidate event at the peak rate is a purchase this often
            first, _, period = season
            level = 1.0 + amplitude * np.sin(2 * np.pi * (first[idx] + nxt) / period)
            bought = inside & (rng.random(len(idx)) < level / (1.0 + amplitude))
        buyers = idx[bought]
        owners.append(buyers)
        ages.append(now[buyers])
        if purchase.drop_after_purchase is not None:
            drop = purchase.drop_after_purchase(dropout, buyers, rng)
            death[drop] = now[drop]
            active[drop] = False
    return {
        "rate": rate,
        "dropout": dropout,
        "death": death,
        "owner": np.concatenate(owners),
        "age": np.concatenate(ages),
    }


def simulate_histories(
    model: str | PurchaseModel,
    params: dict[str, float],
    T: np.ndarray,
    rng: np.random.Generator,
    holdout: float = 0.0,
) -> pd.DataFrame:
    """``frequency``, ``recency``, ``T``, ``log_gap_sum`` (the sum of the logs of the times
    between purchases) plus the latent ``rate`` and ``alive`` (at ``T``) of each customer; with
    a ``holdout``, their ``holdout_purchases`` in ``(T, T + holdout]``.

    Each customer is observed from their first purchase (time 0) for ``T`` time units.
    ``model``: a registry name or a :class:`~models.btyd.common.PurchaseModel` (e.g. MBG/CNBD-k
    at a regularity of one's choice).
    """
    T = np.asarray(T, dtype=float)
    sim = _purchases(model, params, T + holdout, rng)
    order = np.lexsort((sim["age"], sim["owner"]))
    owner, age = sim["owner"][order], sim["age"][order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    gap = age - np.where(first, 0.0, np.r_[0.0, age[:-1]])
    seen = age <= T[owner]
    x = np.bincount(owner[seen], minlength=len(T))
    t_x = np.zeros(len(T))
    np.maximum.at(t_x, owner[seen], age[seen])
    log_gaps = np.bincount(owner[seen], weights=np.log(gap[seen]), minlength=len(T))
    frame = {"frequency": x, "recency": t_x, "T": T, "log_gap_sum": log_gaps}
    frame |= {"rate": sim["rate"], "alive": sim["death"] > T}
    if holdout:
        frame["holdout_purchases"] = np.bincount(owner[~seen], minlength=len(T))
    return pd.DataFrame(frame)


def simulate_spend(
    params: dict[str, float], frequency: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Mean spend of each customer's ``frequency`` repeat purchases (0 without any).

    Gamma-Gamma: spend per purchase ~ Gamma(p, nu) with nu ~ Gamma(q, gamma); the mean of x
    purchases is Gamma(p x, nu x).
    """
    frequency = np.asarray(frequency)
    nu = rng.gamma(params["q"], 1.0 / params["gamma"], len(frequency))
    x = np.maximum(frequency, 1)
    mean = rng.gamma(params["p"] * x, 1.0 / (nu * x))
    return np.where(frequency > 0, mean, 0.0)


@settings
class SimulationSettings:
    """A synthetic cohort: who arrives when, how they buy and spend, and for how long we watch.

    Rates are per ``time_unit_days`` (weeks by default, like the CDNOW estimates). Customers make
    their first purchase uniformly over the first ``cohort_days`` days and are observed until
    ``horizon_days`` after ``start``. ``model`` is a purchase model's name
    (:data:`models.btyd.family.NAMES`) and ``params`` its population parameters, by default
    the model's ``simulation_params`` (the published CDNOW estimates). ``covariate_effects``
    maps a covariate name to ``(purchase coefficient, dropout coefficient)`` in the covariate
    models' form (:mod:`models.btyd.covariates`: positive raises the purchase rate, the dropout
    rate or the mean dropout probability); each covariate is standard normal, or 0/1 with
    probability ``covariate_share`` of 1 when ``binary_covariates``. Departures from the models,
    to make logs hard: ``aging`` (per time unit) adds a lifetime whose hazard rises with age,
    ``seasonality`` modulates the purchase rate over the calendar year (amplitude in [0, 1)),
    ``spend_sigma`` multiplies each amount by a log-normal factor of that scale (heavy tails).
    """

    customers: AtLeastOne = 10_000
    model: Literal[NAMES] = "bgnbd"
    params: tuple[tuple[str, float], ...] = ()  # () = the model's simulation_params
    spend: tuple[tuple[str, float], ...] = tuple({"p": 6.25, "q": 3.74, "gamma": 15.44}.items())
    start: date = date(2024, 1, 1)
    cohort_days: AtLeastOne = 84
    horizon_days: AtLeastOne = 546
    time_unit_days: AtLeastOne = 7
    covariate_effects: tuple[tuple[str, float, float], ...] = ()
    binary_covariates: Flag = False
    covariate_share: Share = 0.5
    aging: NonNegative = 0.0
    seasonality: number(ge=0, lt=1) = 0.0
    spend_sigma: NonNegative = 0.0
    seed: Count = 0

    @model_rules
    def _a_model_and_a_window(self) -> list[str]:
        problems = []
        if self.horizon_days <= self.cohort_days:
            problems.append(
                f"simulation horizon_days is {self.horizon_days}; expected more than "
                f"cohort_days ({self.cohort_days})"
            )
        names = purchase_model(self.model).param_names
        if set(dict(self.population)) != set(names):
            problems.append(
                f"simulation model {self.model!r} needs parameters {', '.join(names)}, "
                f"got {', '.join(dict(self.params))}"
            )
        return problems

    @property
    def population(self) -> tuple[tuple[str, float], ...]:
        """The population parameters: ``params``, or the model's ``simulation_params``."""
        return self.params or purchase_model(self.model).simulation_params


def _tail(rng: np.random.Generator, owner: np.ndarray, settings: SimulationSettings):
    """Log-normal factors of mean one for the amounts (1 without ``spend_sigma``)."""
    if settings.spend_sigma == 0:
        return 1.0
    sigma = settings.spend_sigma
    return np.exp(rng.normal(-(sigma**2) / 2, sigma, len(owner)))


def _covariate(rng: np.random.Generator, n: int, settings: SimulationSettings) -> np.ndarray:
    if settings.binary_covariates:
        return (rng.random(n) < settings.covariate_share).astype(float)
    return rng.standard_normal(n)


def simulate_log(settings: SimulationSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A transaction log and the truth about each customer.

    Returns ``(transactions, customers)``: ``transactions`` has ``customer_id``, ``timestamp``,
    ``amount``; ``customers`` has ``customer_id``, ``first_purchase``, the latent ``rate``,
    ``dropout`` (p or mu), ``spend_scale`` (nu), ``alive`` at the end, the number of
    ``repeat_purchases`` made, and one column per covariate.
    """
    rng = np.random.default_rng(settings.seed)
    n = settings.customers
    params, spend = dict(settings.population), dict(settings.spend)
    unit = settings.time_unit_days
    first_day = rng.integers(0, settings.cohort_days, n)
    T = (settings.horizon_days - first_day) / unit
    covariates = {name: _covariate(rng, n, settings) for name, _, _ in settings.covariate_effects}
    rate_shift = sum((b * covariates[c] for c, b, _ in settings.covariate_effects), np.zeros(n))
    drop_shift = sum((g * covariates[c] for c, _, g in settings.covariate_effects), np.zeros(n))
    season = (
        (first_day / unit, settings.seasonality, 365.25 / unit) if settings.seasonality else None
    )
    sim = _purchases(settings.model, params, T, rng, rate_shift, drop_shift, settings.aging, season)
    nu = rng.gamma(spend["q"], 1.0 / spend["gamma"], n)
    # every customer's first purchase at age 0, then the repeat purchases
    owner = np.concatenate([np.arange(n), sim["owner"]])
    age = np.concatenate([np.zeros(n), sim["age"]])
    order = np.lexsort((age, owner))
    owner, age = owner[order], age[order]
    seconds = np.round((first_day[owner] + age * unit) * 86_400).astype("int64")
    width = len(str(n))
    ids = np.char.zfill(np.arange(1, n + 1).astype(str), width)
    transactions = pd.DataFrame(
        {
            "customer_id": pd.array(ids[owner], dtype="str"),
            "timestamp": pd.Timestamp(settings.start) + pd.to_timedelta(seconds, unit="s"),
            "amount": np.round(
                rng.gamma(spend["p"], 1.0 / nu[owner]) * _tail(rng, owner, settings), 2
            ),
        }
    )
    counts = np.bincount(owner, minlength=n) - 1
    customers = pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype="str"),
            "first_purchase": pd.Timestamp(settings.start) + pd.to_timedelta(first_day, unit="D"),
            "rate": sim["rate"],
            "dropout": sim["dropout"],
            "spend_scale": nu,
            "alive": sim["death"] > T,
            "repeat_purchases": counts,
            **covariates,
        }
    )
    return transactions, customers
