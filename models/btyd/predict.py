"""Per-customer predictions with posterior uncertainty, computed in bounded memory.

Parameter draws are dicts of 1-D arrays (``n_draws``; a MAP point is ``n_draws = 1``). Customers
are collapsed to distinct summaries and processed in chunks of ``chunk_size`` of them, so at most
a ``(chunk_size, n_draws)`` array per quantity is alive at any time: CLV accumulates the
discounted increments period by period instead of materialising a horizon axis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from models.btyd import gamma_gamma
from models.btyd.common import PurchaseModel
from models.btyd.draw_summaries import summarise_linear, summarise_rows
from models.btyd.sufficient import collapse
from models.settings import (
    AtLeastOne,
    Count,
    NonNegative,
    OpenShare,
    PositiveNumber,
    number,
    settings,
)

QUANTITIES: tuple[str, ...] = (
    "p_alive",
    "expected_purchases",
    "p_no_purchase",
    "expected_spend",
    "clv",
)


CHUNK_DRAWS = 1000  # ``chunk_size`` counts units at this many draws; fewer draws, more units


@settings
class PredictionSettings:
    """Settings of :func:`predict_customers`.

    Parameters
    ----------
    horizon : float
        Window ``(T, T + horizon]``, in model time units (e.g. weeks), for
        ``expected_purchases`` and ``p_no_purchase``.
    clv_periods : int
        Number of discounting periods summed in the CLV (e.g. 12 months).
    time_units_per_period : float
        Model time units per discounting period (weeks per month = 4.345, as the ``freq``
        factor of lifetimes' ``customer_lifetime_value``).
    discount_rate : float
        Discount rate per period; the increment of period ``k`` is divided by
        ``(1 + discount_rate)^k``.
    margin : float
        Profit margin applied to spend (1.0 = revenue CLV).
    interval : float
        Probability mass of the equal-tailed credible interval (``_lower``/``_upper``).
    chunk_size : int
        Distinct (summary, mean spend) units processed at a time with 1,000 draws or more
        (memory ~ ``n_draws * chunk_size``); with fewer draws proportionally more at once, in
        the same memory (a MAP point scores a million customers in one chunk).
    """

    horizon: NonNegative = 39.0
    clv_periods: Count = 12
    time_units_per_period: PositiveNumber = 4.345
    discount_rate: number(gt=-1) = 0.01
    margin: number(gt=0, le=1) = 1.0
    interval: OpenShare = 0.9
    chunk_size: AtLeastOne = 2000


def _as_draws(draws: Mapping[str, ArrayLike], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Validate a dict of 1-D draws and return float arrays."""
    missing = [n for n in names if n not in draws]
    if missing:
        raise KeyError(f"missing parameter draws {missing}; expected {list(names)}")
    out = {n: np.atleast_1d(np.asarray(draws[n], dtype=float)) for n in names}
    lengths = {v.shape for v in out.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"draws must be 1-D arrays of equal length, got shapes {lengths}")
    return out


def _n(draws: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(draws.values())))


def value_per_spend_if_alive(
    model: PurchaseModel,
    tx_params: Mapping[str, np.ndarray],
    x: np.ndarray,
    T: np.ndarray,
    settings: PredictionSettings,
    period_ends: Sequence[float] | None = None,
    t_x: np.ndarray | None = None,
) -> np.ndarray:
    """Discounted purchases of a customer alive at ``T``: ``sum_k (G(k f) - G((k-1) f)) / (1+d)^k``.

    ``G(t)`` is the expected number of purchases in ``(T, T+t]`` given alive
    (``model.expected_if_alive``; ``t_x`` where the model's forecast depends on the recency)
    and ``f = time_units_per_period`` (``k f`` is
    ``period_ends[k - 1]`` where those are given: a clock that is not uniform); times
    ``P(alive)``, the margin and the expected spend it is the discounted CLV (the construction
    of lifetimes' ``customer_lifetime_value``). Arrays broadcast.
    """
    f = settings.time_units_per_period
    if period_ends is None:
        period_ends = [k * f for k in range(1, settings.clv_periods + 1)]
    total = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(tx_params["r"])))
    previous = np.zeros_like(total)
    for k, end in enumerate(period_ends, start=1):
        current = model.expected_if_alive(tx_params, end, x, t_x, T)
        total += (current - previous) / (1.0 + settings.discount_rate) ** k
        previous = current
    return total


def predict_customers(
    transaction_draws: Mapping[str, ArrayLike],
    spend_draws: Mapping[str, ArrayLike] | None,
    customers: pd.DataFrame,
    model: PurchaseModel,
    settings: PredictionSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    period_ends: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Posterior mean and credible interval of each customer's predictions.

    Parameters
    ----------
    transaction_draws : mapping of str to 1-D array
        Draws of the transaction model parameters (``r, alpha, a, b`` or ``r, alpha, s, beta``);
        length ``n_draws`` (1 for a MAP point).
    spend_draws : mapping of str to 1-D array, optional
        Draws of the Gamma-Gamma parameters ``p, q, gamma``, paired draw by draw with the
        transaction draws (both posteriors are independent, so pairing index ``i`` with ``i``
        samples the joint posterior). Must have the same length as ``transaction_draws`` or
        one of the two must have length 1. ``None`` skips ``expected_spend`` and ``clv``.
    customers : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T`` (and ``monetary_value`` when
        ``spend_draws`` is given; ignored where ``frequency == 0``).
    model : PurchaseModel
        The purchase model the draws belong to (e.g. :data:`models.btyd.bgnbd.BGNBD`).
    settings : PredictionSettings, optional
        Horizon, discounting, margin, interval width and chunk size.
    progress : callable, optional
        Called as ``progress(done, total)`` with the customers scored after every chunk.
    period_ends : sequence of float, optional
        The end of each discounting period in model time units, where the clock is not
        uniform (a season, :mod:`models.btyd.season`); by default ``k * time_units_per_period``.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``customers``; for each of ``p_alive``, ``expected_purchases``,
        ``p_no_purchase``, ``expected_spend``, ``clv`` the columns ``<name>`` (posterior mean),
        ``<name>_lower`` and ``<name>_upper``.

    Notes
    -----
    Every prediction is ``P(alive | x, t_x, T)`` times a quantity that depends on ``(x, T)``
    only (``model.if_alive_columns``: with regular purchases on ``t_x`` too) and, for spend, on
    ``(x, mbar)``. Customers collapse to distinct summaries sorted by
    ``(x, T, t_x)``, those to distinct ``(x, T)``, and the units scored are the distinct
    (summary, mean spend) pairs in that order; each chunk of ``chunk_size`` units evaluates the
    costly ``(x, T)`` terms (hypergeometric functions, one per discounting period) for the few
    ``(x, T)`` it covers, so their cost grows with distinct ``(x, T)`` and memory with
    ``chunk_size * n_draws``.
    """
    settings = settings or PredictionSettings()
    tx = _as_draws(transaction_draws, model.param_names)
    n_draws = _n(tx)
    gg: dict[str, np.ndarray] | None = None
    if spend_draws is not None:
        gg = _as_draws(spend_draws, gamma_gamma.PARAM_NAMES)
        n_gg = _n(gg)
        if n_gg != n_draws and 1 not in (n_gg, n_draws):
            raise ValueError(
                f"transaction draws ({n_draws}) and spend draws ({n_gg}) cannot be paired"
            )
        n_draws = max(n_draws, n_gg)
        gg = {k: np.broadcast_to(v, (n_draws,))[None, :] for k, v in gg.items()}
    # customers along axis 0, draws along axis 1, so per-customer summaries reduce contiguously
    tx = {k: np.broadcast_to(v, (n_draws,))[None, :] for k, v in tx.items()}
    alpha = (1.0 - settings.interval) / 2.0
    q = (alpha, 1.0 - alpha)

    summaries = collapse(customers, ["frequency", "T", "recency"])
    x_s, T_s, t_x_s = (summaries.unique[c].to_numpy(dtype=float) for c in summaries.unique)
    ages = collapse(summaries.unique, list(model.if_alive_columns))
    age = {c: ages.unique[c].to_numpy(dtype=float)[:, None] for c in ages.unique}
    if gg is None:
        mbar = np.zeros(len(customers))
    else:
        repeat = customers["frequency"].to_numpy() > 0
        mbar = np.where(repeat, customers["monetary_value"].to_numpy(dtype=float), 0.0)
    units = collapse(pd.DataFrame({"s": summaries.inverse, "m": mbar}), ["s", "m"])
    summary_of_unit = units.unique["s"].to_numpy()
    m_of_unit = units.unique["m"].to_numpy(dtype=float)

    covered = np.cumsum(units.weights)  # customers scored once a chunk of units is done
    per_summary = _empty(QUANTITIES[:3], len(x_s))
    per_unit = _empty(QUANTITIES[3:], len(m_of_unit)) if gg is not None else {}
    rows = settings.chunk_size * max(1, CHUNK_DRAWS // n_draws)
    for sl in _chunks(len(m_of_unit), rows):
        s_idx, s_local = np.unique(summary_of_unit[sl], return_inverse=True)
        a_idx, a_local = np.unique(ages.inverse[s_idx], return_inverse=True)
        x_c, T_c = age["frequency"][a_idx], age["T"][a_idx]
        t_x_c = age["recency"][a_idx] if "recency" in age else None
        alive = model.p_alive(tx, x_s[s_idx, None], t_x_s[s_idx, None], T_s[s_idx, None])
        expected = model.expected_if_alive(tx, settings.horizon, x_c, t_x_c, T_c)
        none = model.none_if_alive(tx, settings.horizon, x_c, t_x_c, T_c)
        _store(per_summary, "p_alive", summarise_rows(alive, *q), s_idx)
        _store(
            per_summary, "expected_purchases", summarise_rows(alive * expected[a_local], *q), s_idx
        )
        none = 1.0 - alive + alive * none[a_local]
        _store(per_summary, "p_no_purchase", summarise_rows(none, *q), s_idx)
        if gg is None:
            if progress is not None:
                progress(int(covered[sl.stop - 1]), len(customers))
            continue
        # spend is linear in the mean spend per (x, draw); CLV scales it per summary and draw
        xs, x_of_unit = np.unique(x_s[s_idx][s_local], return_inverse=True)
        intercept, slope = gamma_gamma.spend_coefficients(gg, xs[:, None])
        scale = (
            settings.margin
            * alive
            * value_per_spend_if_alive(model, tx, x_c, T_c, settings, period_ends, t_x_c)[a_local]
        )
        m = m_of_unit[sl]
        ones, first = np.ones((1, n_draws)), np.zeros(len(m), dtype=np.int64)
        spend = summarise_linear(intercept, slope, x_of_unit, m, ones, first, *q)
        _store(per_unit, "expected_spend", spend, sl)
        clv = summarise_linear(intercept, slope, x_of_unit, m, scale, s_local, *q)
        _store(per_unit, "clv", clv, sl)
        if progress is not None:
            progress(int(covered[sl.stop - 1]), len(customers))

    frame = {k: v[summaries.inverse] for k, v in per_summary.items()}
    frame |= {k: v[units.inverse] for k, v in per_unit.items()}
    names = QUANTITIES if gg is not None else QUANTITIES[:3]
    columns = [f"{n}{suffix}" for n in names for suffix in ("", "_lower", "_upper")]
    # one block per column, not copied into one 2-D block (a second copy of every prediction)
    return pd.DataFrame({c: frame[c] for c in columns}, index=customers.index, copy=False)


def predict_with_covariates(
    transaction_draws: Mapping[str, ArrayLike],
    spend_draws: Mapping[str, ArrayLike] | None,
    customers: pd.DataFrame,
    model: PurchaseModel,
    covariates: Sequence[str],
    settings: PredictionSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    period_ends: Sequence[float] | None = None,
) -> pd.DataFrame:
    """:func:`predict_customers` for a model with covariates: each customer's predictions from
    their own parameters.

    Customers are grouped by their covariate values; each group is scored with its parameter
    draws (``alpha_i``, ``b_i`` / ``beta_i`` of every draw), so the collapsing by summary still
    works within a group. With a few binary or categorical covariates there are a handful of
    groups; a continuous covariate makes every customer a group of one (slow at scale).
    """
    from models.btyd.covariates import individual_params

    if len(customers) == 0:
        draws = individual_params(model, transaction_draws, np.zeros(len(covariates)), covariates)
        return predict_customers(
            draws, spend_draws, customers, model, settings, progress, period_ends
        )
    groups = collapse(customers, list(covariates))
    order = np.argsort(groups.inverse, kind="stable")
    bounds = np.cumsum(groups.weights)[:-1]
    parts, done = [], 0
    for values, rows in zip(
        groups.unique.to_numpy(dtype=float), np.split(order, bounds), strict=True
    ):
        draws = individual_params(model, transaction_draws, values, covariates)

        def step(n: int, _total: int, before: int = done) -> None:
            if progress is not None:
                progress(before + n, len(customers))

        part = predict_customers(
            draws, spend_draws, customers.iloc[rows], model, settings, step, period_ends
        )
        parts.append(part.reset_index(drop=True))
        done += len(rows)
    frame = pd.concat(parts, ignore_index=True).iloc[np.argsort(order, kind="stable")]
    return frame.set_index(customers.index)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _empty(names: tuple[str, ...], n: int) -> dict[str, np.ndarray]:
    return {f"{name}{suffix}": np.empty(n) for name in names for suffix in ("", "_lower", "_upper")}


def _store(
    out: dict[str, np.ndarray],
    name: str,
    summaries: tuple[np.ndarray, np.ndarray, np.ndarray],
    rows: slice | np.ndarray,
) -> None:
    """Posterior mean and interval bounds of ``name`` into ``out[...][rows]``."""
    for suffix, values in zip(("", "_lower", "_upper"), summaries, strict=True):
        out[f"{name}{suffix}"][rows] = values
