"""Per-customer predictions with posterior uncertainty, computed in bounded memory.

Parameter draws are dicts of 1-D arrays (``n_draws``; a MAP point is ``n_draws = 1``). Customers
are collapsed to unique summaries, processed in chunks of ``chunk_size`` unique summaries, and at
most a ``(n_draws, chunk_size)`` array per quantity is alive at any time: CLV accumulates the
discounted increments period by period instead of materialising a horizon axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from models import bgnbd, gamma_gamma, pareto_nbd
from models.sufficient import TRANSACTION_COLUMNS, collapse

TransactionModel = Literal["bgnbd", "pareto_nbd"]
_MODULES: dict[str, ModuleType] = {"bgnbd": bgnbd, "pareto_nbd": pareto_nbd}

QUANTITIES: tuple[str, ...] = (
    "p_alive",
    "expected_purchases",
    "p_no_purchase",
    "expected_spend",
    "clv",
)


@dataclass(frozen=True)
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
        Unique customer summaries processed at a time (memory ~ ``n_draws * chunk_size``).
    """

    horizon: float = 39.0
    clv_periods: int = 12
    time_units_per_period: float = 4.345
    discount_rate: float = 0.01
    margin: float = 1.0
    interval: float = 0.9
    chunk_size: int = 2000

    def __post_init__(self) -> None:
        if self.horizon < 0:
            raise ValueError("horizon must be non-negative")
        if self.clv_periods < 0:
            raise ValueError("clv_periods must be non-negative")
        if self.time_units_per_period <= 0:
            raise ValueError("time_units_per_period must be positive")
        if self.discount_rate <= -1:
            raise ValueError("discount_rate must be > -1")
        if not 0 < self.interval < 1:
            raise ValueError("interval must be in (0, 1)")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")


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


def clv_from_draws(
    module: ModuleType,
    tx_params: Mapping[str, np.ndarray],
    spend: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    settings: PredictionSettings,
) -> np.ndarray:
    """Discounted CLV ``sum_k margin * spend * (E[Y(k f)] - E[Y((k-1) f)]) / (1+d)^k``.

    ``f = time_units_per_period``, ``E[Y(t)]`` is the conditional expected number of purchases
    in ``(T, T+t]`` (same construction as lifetimes' ``customer_lifetime_value``). Arrays
    broadcast; the period loop keeps memory at one broadcast array.
    """
    f = settings.time_units_per_period
    total = np.zeros(np.broadcast_shapes(np.shape(spend), np.shape(x)))
    previous = np.zeros_like(total)
    for k in range(1, settings.clv_periods + 1):
        current = module.conditional_expected_purchases(tx_params, k * f, x, t_x, T)
        total += (current - previous) / (1.0 + settings.discount_rate) ** k
        previous = current
    return settings.margin * spend * total


def _summarise(values: np.ndarray, name: str, q: tuple[float, float]) -> dict[str, np.ndarray]:
    """Posterior mean and equal-tailed interval over axis 0 (draws)."""
    lo, hi = np.quantile(values, q, axis=0)
    return {name: values.mean(axis=0), f"{name}_lower": lo, f"{name}_upper": hi}


def predict_customers(
    transaction_draws: Mapping[str, ArrayLike],
    spend_draws: Mapping[str, ArrayLike] | None,
    customers: pd.DataFrame,
    model: TransactionModel = "bgnbd",
    settings: PredictionSettings | None = None,
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
    model : {"bgnbd", "pareto_nbd"}
        Transaction model the draws belong to.
    settings : PredictionSettings, optional
        Horizon, discounting, margin, interval width and chunk size.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``customers``; for each of ``p_alive``, ``expected_purchases``,
        ``p_no_purchase``, ``expected_spend``, ``clv`` the columns ``<name>`` (posterior mean),
        ``<name>_lower`` and ``<name>_upper``.
    """
    settings = settings or PredictionSettings()
    if model not in _MODULES:
        raise ValueError(f"unknown transaction model {model!r}")
    module = _MODULES[model]
    tx = _as_draws(transaction_draws, module.PARAM_NAMES)
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
        tx = {k: np.broadcast_to(v, (n_draws,)) for k, v in tx.items()}
        gg = {k: np.broadcast_to(v, (n_draws,))[:, None] for k, v in gg.items()}
    tx_col = {k: v[:, None] for k, v in tx.items()}

    alpha = (1.0 - settings.interval) / 2.0
    q = (alpha, 1.0 - alpha)
    size = settings.chunk_size

    # purchase-model quantities depend on (x, t_x, T) only: computed once per distinct summary
    tx_rows = collapse(customers, TRANSACTION_COLUMNS)
    x_all = tx_rows.unique["frequency"].to_numpy(dtype=float)
    tx_all = tx_rows.unique["recency"].to_numpy(dtype=float)
    T_all = tx_rows.unique["T"].to_numpy(dtype=float)
    out = _empty(QUANTITIES[:3], len(x_all))
    for sl in _chunks(len(x_all), size):
        x, t_x, T = x_all[sl], tx_all[sl], T_all[sl]
        results = {
            "p_alive": module.p_alive(tx_col, x, t_x, T),
            "expected_purchases": module.conditional_expected_purchases(
                tx_col, settings.horizon, x, t_x, T
            ),
            "p_no_purchase": module.p_no_purchase(tx_col, settings.horizon, x, t_x, T),
        }
        _store(out, results, sl, n_draws, q)
    frame = {k: v[tx_rows.inverse] for k, v in out.items()}

    if gg is not None:
        # spend and CLV depend on the mean spend too: one row per distinct (summary, spend) pair,
        # sorted by summary so a chunk needs the discounted purchase curve of few summaries
        repeat = customers["frequency"].to_numpy() > 0
        mbar = np.where(repeat, customers["monetary_value"].to_numpy(dtype=float), 0.0)
        pairs = collapse(pd.DataFrame({"tx": tx_rows.inverse, "m": mbar}), ["tx", "m"])
        tx_of_pair = pairs.unique["tx"].to_numpy()
        m_of_pair = pairs.unique["m"].to_numpy(dtype=float)
        spend_out = _empty(QUANTITIES[3:], len(m_of_pair))
        ones = np.ones((n_draws, 1))
        for sl in _chunks(len(m_of_pair), size):
            needed, local = np.unique(tx_of_pair[sl], return_inverse=True)
            value_per_spend = clv_from_draws(
                module, tx_col, ones, x_all[needed], tx_all[needed], T_all[needed], settings
            )
            spend = gamma_gamma.conditional_expected_spend(gg, x_all[tx_of_pair[sl]], m_of_pair[sl])
            results = {
                "expected_spend": spend,
                "clv": spend * np.broadcast_to(value_per_spend, (n_draws, len(needed)))[:, local],
            }
            _store(spend_out, results, sl, n_draws, q)
        frame |= {k: v[pairs.inverse] for k, v in spend_out.items()}
    names = QUANTITIES if gg is not None else QUANTITIES[:3]
    columns = [f"{n}{suffix}" for n in names for suffix in ("", "_lower", "_upper")]
    return pd.DataFrame(frame, index=customers.index)[columns]


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def _empty(names: tuple[str, ...], n: int) -> dict[str, np.ndarray]:
    return {f"{name}{suffix}": np.empty(n) for name in names for suffix in ("", "_lower", "_upper")}


def _store(
    out: dict[str, np.ndarray],
    results: dict[str, np.ndarray],
    sl: slice,
    n_draws: int,
    q: tuple[float, float],
) -> None:
    """Posterior summaries of a chunk's draws into ``out[...][sl]``."""
    width = sl.stop - sl.start
    for name, values in results.items():
        values = np.broadcast_to(values, (n_draws, width))
        for key, arr in _summarise(values, name, q).items():
            out[key][sl] = arr
