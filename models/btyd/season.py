"""A yearly season as a change of clock, for any purchase model of the family.

Purchases run at the intensity ``s(t) = 1 + A sin(wt) + B cos(wt)`` of the calendar day ``t``
(``w = 2 pi / 365.25``): busy months run the clock fast, quiet ones slow. On the seasonal clock
``tau(t)``, the integral of ``s``, the stationary models hold as they are, so a model with a
season is the same model fit and predicting on seasonal time: each customer's recency and age,
the forecast windows and the CLV's discounting periods are measured on ``tau``
(:class:`Season`). ``s`` averages one over a year, so a year is a year on either clock.

The likelihood of purchases on the seasonal clock gains ``sum log s(t)`` over the repeat
purchases (the change of variable's Jacobian), which identifies ``(A, B)``. They are estimated
jointly with BG/NBD, whose likelihood is closed-form (:func:`fit_season`), on at most
:data:`MAX_CUSTOMERS` customers drawn at random and the whole log's repeat purchases per
period; the chosen model is then fit (MAP or NUTS) on the seasonal summaries with the season
held there. A season needs a year of history before the cutoff (:data:`MIN_HISTORY_DAYS`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy import optimize

from models.btyd.bgnbd import loglik_numpy

EPOCH = date(1970, 1, 1)
YEAR = 365.25
OMEGA = 2 * np.pi / YEAR
MIN_HISTORY_DAYS = 365  # of the log before the cutoff: less cannot tell a season from a trend
MAX_CUSTOMERS = 10_000  # drawn at random for the season's estimate
MAX_COEFFICIENT = 0.63  # |A|, |B| <= 0.63: the amplitude stays below 0.9, so s stays positive


def named(model: str, seasonal: bool) -> str:
    """A purchase model's name on its clock: ``+season`` on a seasonal one."""
    return f"{model}+season" if seasonal else model


def bgnbd_loglik(log_params: np.ndarray, x, t_x, age) -> float:
    """BG/NBD's summed log-likelihood at log-parameters ``(r, alpha, a, b)``: the closed form
    a season is estimated with."""
    params = dict(zip(("r", "alpha", "a", "b"), map(float, np.exp(log_params)), strict=True))
    return float(np.sum(loglik_numpy(params, x, t_x, age)))


class SeasonError(ValueError):
    """The log cannot carry a season: what is missing."""


def day_number(day: date) -> float:
    """Days since 1970-01-01: the calendar position the season is a function of."""
    return float((day - EPOCH).days)


def intensity(day: np.ndarray, a: float, b: float) -> np.ndarray:
    """``s(day)``: the purchase intensity relative to the year's mean."""
    return 1 + a * np.sin(OMEGA * day) + b * np.cos(OMEGA * day)


def seasonal_time(day: np.ndarray | float, a: float, b: float, unit_days: float) -> np.ndarray:
    """``tau``: the integral of ``s`` from day 0, in units of ``unit_days``."""
    day = np.asarray(day, dtype=float)
    return (
        day + a / OMEGA * (1 - np.cos(OMEGA * day)) + b / OMEGA * np.sin(OMEGA * day)
    ) / unit_days


@dataclass(frozen=True)
class Customers:
    """Customers at a cutoff: repeat purchases ``x``, first and last purchase day and the
    cutoff (one for all, or each customer's own), as day numbers (days since 1970-01-01)."""

    x: np.ndarray
    first: np.ndarray
    last: np.ndarray
    cutoff: float | np.ndarray

    @classmethod
    def from_table(cls, table: pd.DataFrame, cutoff: date | None = None) -> Customers:
        """From a feature table (``frequency``, ``tenure_days``, ``recency_days``) at
        ``cutoff``, or at each row's own ``cutoff``."""
        day = cutoff_days(table) if cutoff is None else day_number(cutoff)
        return cls(
            x=table["frequency"].to_numpy(dtype=float),
            first=day - table["tenure_days"].to_numpy(dtype=float),
            last=day - table["recency_days"].to_numpy(dtype=float),
            cutoff=day,
        )

    def sample(self, n: int, seed: int) -> Customers:
        """At most ``n`` of the customers, drawn at random (all of them if there are fewer)."""
        if len(self.x) <= n:
            return self
        keep = np.random.default_rng(seed).choice(len(self.x), size=n, replace=False)
        cutoff = self.cutoff if np.ndim(self.cutoff) == 0 else self.cutoff[keep]
        return Customers(self.x[keep], self.first[keep], self.last[keep], cutoff)

    def on_clock(self, a: float, b: float, unit_days: float) -> tuple[np.ndarray, np.ndarray]:
        """Recency and age on the seasonal clock."""
        start = seasonal_time(self.first, a, b, unit_days)
        age = np.maximum(seasonal_time(self.cutoff, a, b, unit_days) - start, 1e-9)
        return np.minimum(seasonal_time(self.last, a, b, unit_days) - start, age), age


def cutoff_days(table: pd.DataFrame) -> np.ndarray:
    """Each row's ``cutoff`` as a day number."""
    since = pd.to_datetime(table["cutoff"]).dt.normalize() - pd.Timestamp(EPOCH)
    return since.dt.days.to_numpy(dtype=float)


@dataclass(frozen=True)
class Repeats:
    """The log's repeat purchases per period: periods of ``length`` days from day number
    ``start``, ``counts`` in each."""

    start: float
    length: float
    counts: np.ndarray

    @classmethod
    def from_table(cls, table: pd.DataFrame, first_day: date, length_days: float) -> Repeats:
        """From the features stage's ``repeats`` (``period``, ``repeats``; absent periods had
        none), periods of ``length_days`` from the log's ``first_day``."""
        counts = np.zeros(int(table.period.max()) + 1 if len(table) else 0)
        counts[table.period.to_numpy()] = table.repeats.to_numpy(dtype=float)
        return cls(day_number(first_day), float(length_days), counts)

    def upto(self, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """The middle day and the count of each period that ends by ``cutoff``."""
        begins = self.start + self.length * np.arange(len(self.counts))
        whole = begins + self.length <= cutoff + 1
        return begins[whole] + self.length / 2, self.counts[whole]


Loglik = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]


def fit_joint(
    loglik: Loglik,
    start: np.ndarray,
    bounds: Sequence[tuple[float, float]],
    c: Customers,
    repeats: Repeats | None,
    unit_days: float = 7.0,
) -> tuple[np.ndarray, tuple[float, float]]:
    """Maximum likelihood of a model's log-parameters (``loglik(log_params, x, t_x, age)``,
    from ``start`` within ``bounds``) on the customers ``c``, jointly with a season when
    ``repeats`` are given: the log's repeat purchases up to ``c``'s cutoff enter ``sum log s``,
    weighted to ``c``'s share of them. Returns the log-parameters and ``(A, B)`` (``(0, 0)``
    without a season)."""
    n = len(start)
    days, counts = repeats.upto(float(np.max(c.cutoff))) if repeats else (None, None)
    share = c.x.sum() / max(float(counts.sum()), 1.0) if repeats else 0.0

    def loss(theta: np.ndarray) -> float:
        a, b = theta[n:] if repeats else (0.0, 0.0)
        value = loglik(theta[:n], c.x, *c.on_clock(a, b, unit_days))
        if repeats:
            value += share * float(np.sum(counts * np.log(intensity(days, a, b))))
        return -value if np.isfinite(value) else 1e12  # finite: the line search must compare

    seasonal = 2 if repeats else 0
    limits = [*bounds] + [(-MAX_COEFFICIENT, MAX_COEFFICIENT)] * seasonal
    theta0 = np.concatenate([start, np.zeros(seasonal)])
    with np.errstate(all="ignore"):  # the search passes through overflowing corners
        res = optimize.minimize(loss, theta0, method="L-BFGS-B", bounds=limits)
    season = (float(res.x[n]), float(res.x[n + 1])) if repeats else (0.0, 0.0)
    return res.x[:n], season


def history_problem(cutoff: float, repeats: Repeats) -> str | None:
    """Why a season cannot be fit at ``cutoff`` (a day number), or ``None``."""
    days = cutoff - repeats.start
    if days >= MIN_HISTORY_DAYS:
        return None
    first, at = (date.fromordinal(EPOCH.toordinal() + int(d)) for d in (repeats.start, cutoff))
    return (
        f"a yearly season needs at least {MIN_HISTORY_DAYS} days of history before the cutoff "
        f"{at}; the log starts {first} ({int(days)} days)"
    )


@dataclass(frozen=True)
class Season:
    """A fitted yearly season: ``s(t) = 1 + a sin(wt) + b cos(wt)``, with the model's time unit
    (``unit_days``). It moves summaries and windows onto the seasonal clock."""

    a: float
    b: float
    unit_days: float

    @property
    def amplitude(self) -> float:
        return float(np.hypot(self.a, self.b))

    def clock(self, day: np.ndarray | float) -> np.ndarray:
        """``tau(day)`` in model units."""
        return seasonal_time(day, self.a, self.b, self.unit_days)

    def summaries(self, table: pd.DataFrame) -> pd.DataFrame:
        """``table`` with ``recency`` and ``T`` on the seasonal clock, each row at its own
        ``cutoff`` (from ``tenure_days`` and ``recency_days``)."""
        c = Customers.from_table(table)
        recency, age = c.on_clock(self.a, self.b, self.unit_days)
        return table.assign(recency=recency, T=age)

    def window(self, table: pd.DataFrame, length: float) -> float:
        """``length`` model units after the table's cutoff, on the seasonal clock (one cutoff
        for the whole table)."""
        return float(self.windows(table, [length])[0])

    def windows(self, table: pd.DataFrame, ends: Sequence[float]) -> np.ndarray:
        """The seasonal length of the windows from the table's cutoff to each of ``ends``
        (model units after it)."""
        cutoffs = np.unique(cutoff_days(table))
        if len(cutoffs) != 1:
            raise ValueError(
                f"a seasonal forecast needs the customers of one cutoff; got {len(cutoffs)}"
            )
        day = cutoffs[0]
        ends = np.asarray(ends, dtype=float)
        return self.clock(day + ends * self.unit_days) - self.clock(day)

    def to_dict(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b, "unit_days": self.unit_days}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Season:
        return cls(float(values["a"]), float(values["b"]), float(values["unit_days"]))


def fit_season(table: pd.DataFrame, repeats: Repeats, unit_days: float, seed: int = 0) -> Season:
    """The season of the customers ``table`` (one cutoff) and the log's ``repeats``, estimated
    jointly with BG/NBD.

    Raises
    ------
    SeasonError
        The log holds less than :data:`MIN_HISTORY_DAYS` days before the cutoff.
    """
    c = Customers.from_table(table)
    cutoffs = np.unique(np.asarray(c.cutoff))
    if len(cutoffs) != 1:
        raise ValueError(f"a season is fit at one cutoff; the table has {len(cutoffs)}")
    problem = history_problem(float(cutoffs[0]), repeats)
    if problem:
        raise SeasonError(problem)

    c = Customers(c.x, c.first, c.last, float(cutoffs[0])).sample(MAX_CUSTOMERS, seed)
    start = np.log([0.25, 4.0 * 7.0 / unit_days, 0.8, 2.5])
    _, (a, b) = fit_joint(bgnbd_loglik, start, [(-7.0, 7.0)] * 4, c, repeats, unit_days)
    return Season(a, b, float(unit_days))
