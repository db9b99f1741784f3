"""BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Transactions while alive follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; after
every repeat transaction the customer drops out with probability ``p ~ Beta(a, b)``. A customer
is summarised by ``x`` (repeat transactions = ``frequency``), ``t_x`` (time of the last one =
``recency``) and ``T`` (age).

The functions take ``modified``: with it, the customer may also drop out right after the first
purchase (MBG/NBD, Batislam, Denizel & Filiztekin 2007; :mod:`models.btyd.mbgnbd`), so every
formula sees ``x + 1`` dropout coin flips instead of ``x``: ``b + x`` becomes ``b + x + 1`` in
the Beta terms, and a one-time buyer can be dead.

Parameters are passed as a mapping with keys ``r, alpha, a, b``; values may be scalars or arrays
that broadcast against the customer arrays (e.g. shape ``(n_draws, 1)`` against ``(n_customers,)``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from scipy import special

from models.btyd.common import (
    BuiltModel,
    FactoredLoglik,
    PurchaseModel,
    levels,
    model_data,
    param_arrays,
    weighted_model,
    weighted_rows,
)
from models.btyd.kernels import softplus_sum, softplus_sum_kernel
from models.btyd.priors import Priors
from models.btyd.sufficient import TRANSACTION_COLUMNS

PARAM_NAMES: tuple[str, str, str, str] = ("r", "alpha", "a", "b")


# --------------------------------------------------------------------------- likelihood
def factor(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray, modified: bool = False
) -> dict[str, np.ndarray]:
    """Weighted summary rows → the arrays :func:`total_loglik_pytensor` and
    :func:`loglik_and_grad` work on: distinct ``x`` and ``T`` with summed weights, and the
    distinct summaries of the customers who may have dropped out (repeat buyers; everyone when
    ``modified``) indexing distinct ``x`` / ``T`` / ``t_x`` values."""
    xs, ix = levels(x)
    Ts, iT = levels(T)
    rep = x >= 0 if modified else x > 0
    xr, ixr = levels(x[rep])
    tr, itr = levels(t_x[rep])
    return {
        "x_levels": xs,
        "weight_by_x": np.bincount(ix, weights=w),
        "T_levels": Ts,
        "weight_by_T": np.bincount(iT, weights=w),
        "weighted_x_by_T": np.bincount(iT, weights=w * x),
        "repeat_x_levels": xr,
        "repeat_t_x_levels": tr,
        "repeat_x_index": ixr,
        "repeat_T_index": iT[rep],
        "repeat_t_x_index": itr,
        "repeat_x": x[rep],
        "repeat_weight": w[rep],
    }


def total_loglik_pytensor(
    r: pt.TensorLike,
    alpha: pt.TensorLike,
    a: pt.TensorLike,
    b: pt.TensorLike,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    w: np.ndarray,
    modified: bool = False,
) -> pt.TensorVariable:
    """``sum_i w_i log L(x_i, t_x_i, T_i)`` (:func:`loglik_numpy`, summed), factored.

    With ``u = -(r+x) ln(alpha+T)`` and ``v = ln a - ln(b+x-1) - (r+x) ln(alpha+t_x)`` the
    per-row term is ``const(x) + u`` plus, for ``x > 0``, ``softplus(v - u)``. ``const(x)`` is
    evaluated per distinct ``x``, ``ln(alpha+T)`` and ``ln(alpha+t_x)`` per distinct value, and
    ``sum w u`` per distinct ``T``; the ``softplus`` sum over the distinct summaries of repeat
    buyers, which dominates NUTS at a million customers, is one fused pass
    (:func:`models.loglik_ops.softplus_sum_kernel`). Must run inside a model (data are
    ``pm.Data``).
    """
    gl = pt.gammaln
    m = float(modified)
    arrays = factor(x, t_x, T, w, modified)
    xs, w_x, Ts, w_T, wx_T, xr, tr, ixr, iTr, itr, x_r, w_r = model_data(**arrays)
    const = (
        gl(r + xs) - gl(r) + r * pt.log(alpha) + gl(b + xs + m) - gl(a + b + xs + m) - gl(b)
    ) + gl(a + b)
    log_aT = pt.log(alpha + Ts)
    c = pt.log(a) - pt.log(b + xr - 1.0 + m)
    log_at = pt.log(alpha + tr)
    repeat = softplus_sum(r, c, log_aT, log_at, ixr, iTr, itr, x_r, w_r)[0]
    return pt.dot(w_x, const) - pt.dot(r * w_T + wx_T, log_aT) + repeat


def loglik_and_grad(
    theta: np.ndarray, f: Mapping[str, np.ndarray], modified: bool = False
) -> tuple[float, np.ndarray]:
    """:func:`total_loglik_pytensor` and its gradient in ``(r, alpha, a, b)``, in numpy.

    ``f`` is :func:`factor`'s output (with the same ``modified``). Used for MAP fits, where
    compiling the model would cost more than optimising it.
    """
    r, alpha, a, b = theta
    m = float(modified)
    xs, w_x, Ts, w_T = f["x_levels"], f["weight_by_x"], f["T_levels"], f["weight_by_T"]
    xr, tr = f["repeat_x_levels"], f["repeat_t_x_levels"]
    gl, dg = special.gammaln, special.digamma
    const = (
        gl(r + xs) - gl(r) + r * np.log(alpha) + gl(b + xs + m) - gl(a + b + xs + m) - gl(b)
    ) + gl(a + b)
    log_aT = np.log(alpha + Ts)
    weight_T = r * w_T + f["weighted_x_by_T"]
    total, g_r, g_c, g_T, g_t = softplus_sum_kernel(
        r,
        np.log(a) - np.log(b + xr - 1.0 + m),
        log_aT,
        np.log(alpha + tr),
        f["repeat_x_index"],
        f["repeat_T_index"],
        f["repeat_t_x_index"],
        f["repeat_x"],
        f["repeat_weight"],
    )
    value = w_x @ const - weight_T @ log_aT + total
    d_ab = dg(a + b) - dg(a + b + xs + m)
    grad = np.array(
        [
            w_x @ (dg(r + xs) - dg(r) + np.log(alpha)) - w_T @ log_aT + g_r,
            w_x.sum() * r / alpha
            + (g_T - weight_T) @ (1.0 / (alpha + Ts))
            + g_t @ (1.0 / (alpha + tr)),
            w_x @ d_ab + g_c.sum() / a,
            w_x @ (dg(b + xs + m) - dg(b) + d_ab) - g_c @ (1.0 / (b + xr - 1.0 + m)),
        ]
    )
    return float(value), grad


def loglik_numpy(
    params: Mapping[str, ArrayLike],
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    modified: bool = False,
) -> np.ndarray:
    """Per-row BG/NBD (MBG/NBD when ``modified``) log-likelihood in numpy/scipy (the per-row
    formula)."""
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    m = float(modified)
    const = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x + m)
        - special.betaln(a, b)
    )
    log_t1 = -(r + x) * np.log(alpha + T)
    x_safe = np.maximum(x, 1.0 - m)
    log_t2 = np.log(a) - np.log(b + x_safe - 1.0 + m) - (r + x) * np.log(alpha + t_x)
    dropped = x >= 0 if modified else x > 0
    return const + np.where(dropped, np.logaddexp(log_t1, log_t2), log_t1)


def loglik_rows_pytensor(
    r: pt.TensorLike,
    alpha: pt.TensorLike,
    a: pt.TensorLike,
    b: pt.TensorLike,
    x: pt.TensorLike,
    t_x: pt.TensorLike,
    T: pt.TensorLike,
    modified: bool = False,
) -> pt.TensorVariable:
    """Per-row log-likelihood as a pytensor expression (:func:`loglik_numpy`'s formula); the
    parameters may be per-row vectors (covariates, :mod:`models.btyd.covariates`)."""
    gl = pt.gammaln
    m = float(modified)
    const = gl(r + x) - gl(r) + r * pt.log(alpha) + gl(b + x + m) + gl(a + b) - gl(b)
    const = const - gl(a + b + x + m)
    log_t1 = -(r + x) * pt.log(alpha + T)
    x_safe = pt.maximum(x, 1.0 - m)
    log_t2 = pt.log(a) - pt.log(b + x_safe - 1.0 + m) - (r + x) * pt.log(alpha + t_x)
    dropped = pt.ge(x, 0) if modified else pt.gt(x, 0)
    return const + pt.switch(dropped, pt.logaddexp(log_t1, log_t2), log_t1)


def build_model(
    data: pd.DataFrame,
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
    modified: bool = False,
) -> BuiltModel:
    """PyMC model for the BG/NBD (MBG/NBD when ``modified``) parameters given customer
    summaries.

    Parameters
    ----------
    data : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T`` (one row per customer, or per unique summary
        when ``weights`` is given).
    priors : Priors, optional
        Defaults to ``Priors()`` (weakly informative).
    weights : array-like, optional
        Row multiplicities. When omitted, identical rows are collapsed (``collapse=True``) or
        all rows are weighted one.
    collapse : bool
        Collapse identical rows when ``weights`` is not given.

    Returns
    -------
    BuiltModel
        The PyMC model (free variables ``log_<name>``, deterministics ``r, alpha, a, b``,
        the weighted log-likelihood as the potential ``"loglik"``) and its numpy log density.
    """
    priors = priors or Priors()
    rows, w = weighted_rows(data, TRANSACTION_COLUMNS, weights, collapse)
    x = rows["frequency"].to_numpy(dtype=float)
    t_x = rows["recency"].to_numpy(dtype=float)
    T = rows["T"].to_numpy(dtype=float)
    f = factor(x, t_x, T, w, modified)
    return weighted_model(
        PARAM_NAMES,
        priors,
        lambda *p: total_loglik_pytensor(*p, x, t_x, T, w, modified),
        lambda theta: loglik_and_grad(theta, f, modified),
    )


# --------------------------------------------------------------------------- predictions
_NEAR_ONE = 1e-6


def _beside_one(a: np.ndarray) -> np.ndarray:
    """``a``, moved to 1 + 1e-6 where it is within 1e-6 of 1.

    The expectations divide by ``a - 1``; at ``a = 1`` the hypergeometric factor vanishes too
    (0/0 with a finite limit). A fit without repeat buyers leaves ``a`` at its prior's mode,
    exactly 1. Beside it the closed form is accurate to about 1e-6.
    """
    return np.where(np.abs(a - 1.0) < _NEAR_ONE, 1.0 + _NEAR_ONE, a)


def expected_purchases(
    params: Mapping[str, ArrayLike], t: ArrayLike, modified: bool = False
) -> np.ndarray:
    """Unconditional expected number of transactions ``E[X(t)]`` of a new customer in ``(0, t]``.

    ``E[X(t)] = (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]``;
    ``modified``: ``b/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]`` (alive
    after the first purchase with probability ``b/(a+b)``, then ``p ~ Beta(a, b+1)``).
    """
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    a = _beside_one(a)
    t = np.asarray(t, dtype=float)
    z = t / (alpha + t)
    m = float(modified)
    hyp = special.hyp2f1(r, b + m, a + b - 1.0 + m, z)
    scale = b / (a - 1.0) if modified else (a + b - 1.0) / (a - 1.0)
    return scale * (1.0 - np.exp(r * np.log(alpha / (alpha + t))) * hyp)


def _log_odds_dead(
    r: np.ndarray, alpha: np.ndarray, a: np.ndarray, b: np.ndarray, x, t_x, T, modified: bool
) -> np.ndarray:
    """``log[ a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x) ]`` for ``x > 0``, ``-inf`` for ``x = 0``;
    ``modified``: ``a/(b+x)`` for every ``x``."""
    m = float(modified)
    x_safe = np.maximum(x, 1.0 - m)
    log_ratio = np.log(alpha + T) - np.log(alpha + t_x)
    val = np.log(a) - np.log(b + x_safe - 1.0 + m) + (r + x) * log_ratio
    return val if modified else np.where(x > 0, val, -np.inf)


def p_alive(
    params: Mapping[str, ArrayLike],
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    modified: bool = False,
) -> np.ndarray:
    """Probability that a customer with history ``(x, t_x, T)`` is still alive at ``T``.

    ``P(alive) = 1 / (1 + 1{x>0} a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x))``; ``modified``:
    ``1 / (1 + a/(b+x) ((alpha+T)/(alpha+t_x))^(r+x))``, one-time buyers included.
    """
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return special.expit(-_log_odds_dead(r, alpha, a, b, x, t_x, T, modified))


def expected_purchases_if_alive(
    params: Mapping[str, ArrayLike],
    t: ArrayLike,
    x: ArrayLike,
    T: ArrayLike,
    modified: bool = False,
) -> np.ndarray:
    """Expected transactions in ``(T, T+t]`` of a customer alive at ``T`` with ``x`` repeats.

    ``(a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]``
    (``modified``: ``b+1`` in place of ``b``, one more dropout survived). It does not involve
    ``t_x``, so a scorer evaluates the hypergeometric function once per distinct ``(x, T)``
    rather than per customer summary.
    """
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    a = _beside_one(a)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    z = t / (alpha + T + t)
    m = float(modified)
    hyp = special.hyp2f1(r + x, b + x + m, a + b + x - 1.0 + m, z)
    ratio = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
    return (a + b + x - 1.0 + m) / (a - 1.0) * (1.0 - ratio * hyp)


def p_no_purchase_if_alive(
    params: Mapping[str, ArrayLike], t: ArrayLike, x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Probability of no transaction in ``(T, T+t]`` for a customer alive at ``T``.

    A BG/NBD customer can only drop out right after a transaction, so an alive customer buys
    nothing with probability ``exp(-lambda t)``; given alive at ``T`` and ``x`` repeats,
    ``lambda ~ Gamma(r+x, alpha+T)`` (the ``(1-p)^x`` factor does not involve ``lambda``), hence
    ``((alpha+T)/(alpha+T+t))^(r+x)``.
    """
    r, alpha, _, _ = param_arrays(params, PARAM_NAMES)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    return np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))


# --------------------------------------------------------------------------- the process
def draw_dropout(
    params: Mapping[str, float], n: int, rng: np.random.Generator, shift: ArrayLike = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``n`` customers' dropout probability ``p ~ Beta(a, b exp(-shift))`` (a positive
    shift raises its mean, as covariates do) and lifetime: none besides dropping out after a
    purchase (``inf``)."""
    dropout = rng.beta(params["a"], params["b"] * np.exp(-shift), n)
    return dropout, np.full(n, np.inf)


def drop_after_purchase(
    dropout: np.ndarray, buyers: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The ``buyers`` who drop out right after this purchase, each with probability ``p``."""
    return buyers[rng.random(len(buyers)) < dropout[buyers]]


def purchase_dropout(
    params: Mapping[str, float], shift: ArrayLike, x: np.ndarray, modified: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Log-weights of (dropped right after the last of ``x`` repeat purchases, not dropped):
    ``E[p (1 - p)^(x-1)]`` (none without a repeat purchase) and ``E[(1 - p)^x]``, with
    ``p ~ Beta(a, b exp(-shift))``; ``modified``: ``E[p (1 - p)^x]`` and ``E[(1 - p)^(x+1)]``
    (the first purchase is a coin flip too)."""
    a, b = params["a"], params["b"] * np.exp(-shift)
    if modified:
        dropped = special.betaln(a + 1, b + x) - special.betaln(a, b)
        return dropped, special.betaln(a, b + x + 1) - special.betaln(a, b)
    dropped = special.betaln(a + 1, b + np.maximum(x, 1) - 1) - special.betaln(a, b)
    return np.where(x > 0, dropped, -np.inf), special.betaln(a, b + x) - special.betaln(a, b)


BGNBD = PurchaseModel(
    name="bgnbd",
    param_names=PARAM_NAMES,
    build=build_model,
    p_alive=p_alive,
    expected_purchases=expected_purchases,
    expected_purchases_if_alive=expected_purchases_if_alive,
    p_no_purchase_if_alive=p_no_purchase_if_alive,
    scaled=("alpha", "b"),
    loglik_rows=loglik_rows_pytensor,
    factored=FactoredLoglik(factor, loglik_and_grad),
    simulation_params=(("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)),
    draw_dropout=draw_dropout,
    drop_after_purchase=drop_after_purchase,
    lifetime=None,
    purchase_dropout=purchase_dropout,
)
