"""MBG/CNBD-k model (Reutterer, Platzer & Schröder 2021, "Leveraging purchase regularity for
predicting customer behavior the easy way", IJRM 38(1)).

MBG/NBD with regular purchases: the times between a customer's purchases are Erlang-k with
rate ``lambda ~ Gamma(r, alpha)`` (a purchase every ``k`` events of a Poisson process of rate
``lambda``, so the purchase rate is ``lambda / k``) instead of exponential; after each purchase,
the first included, the customer drops out with probability ``p ~ Beta(a, b)`` (so ``x + 1``
coins, where BG/NBD flips ``x``: ``b + x + 1`` in the Beta terms). ``k = 1`` is MBG/NBD; a
larger ``k`` makes a customer who is late against their own rhythm more likely gone, and one
who bought recently less likely to buy again at once.

The likelihood of ``(x, t_x, T)`` is closed-form for an integer ``k``; its part that depends on
``(r, alpha, a, b)`` needs no more than the summary, and the rest, ``(k - 1) L - x log (k-1)!``
with ``L`` the sum of the logs of the customer's inter-purchase times (the summary's
``log_gap_sum``), tells one ``k`` from another: :func:`regularity_loglik`. ``k`` is chosen by
that likelihood (:mod:`models.btyd.clv`), then the four parameters are fit at it.

Given alive at ``T``, the customer is in one of ``k`` phases: ``j`` of the ``k`` events of the
next purchase have happened since ``t_x``, with weights ``c_j`` the likelihood already holds.
The forecasts (expected purchases, P(no purchase) in a window) sum over the phases and over the
Negative Binomial count of events in the window, each future purchase weighed by its chance of
being made alive (:func:`_if_alive`). They depend on ``T - t_x``, not only on ``(x, T)`` as
BG/NBD's do.

Parameters are a mapping with keys ``r, alpha, a, b``; ``k`` is bound into the model
(:func:`at_regularity`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import numba
import numpy as np
import pandas as pd
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from scipy import special

from models.btyd import bgnbd, mbgnbd
from models.btyd.common import (
    BuiltModel,
    FactoredLoglik,
    PurchaseModel,
    levels,
    param_arrays,
    weighted_model,
    weighted_rows,
)
from models.btyd.priors import Priors
from models.btyd.sufficient import TRANSACTION_COLUMNS

PARAM_NAMES = bgnbd.PARAM_NAMES
MAX_REGULARITY = 12  # the largest k searched (BTYDplus's grid)
LOG_GAPS = "log_gap_sum"  # the summary column of the sum of log inter-purchase times


# --------------------------------------------------------------------------- likelihood
def _phase_logs(R, A, D, k: int, module=np):
    """``log c_j``, ``j < k``: ``log Gamma(R+j) - log Gamma(R) + j log D - log j! - j log A``
    (0 for ``j = 0``; ``-inf`` for ``j > 0`` where ``D = 0``), built up term by term."""
    logs = [R * 0.0]
    log_d = module.log(module.maximum(D, 1e-300))
    for j in range(1, k):
        step = module.log(R + j - 1) + log_d - math.log(j) - module.log(A)
        logs.append(logs[-1] + step)
    return logs


def loglik_numpy(params: Mapping[str, ArrayLike], x, t_x, T, k: int) -> np.ndarray:
    """Per-row log-likelihood of ``(x, t_x, T)`` without the regularity term (BTYDplus's
    ``mbgcnbd.LL`` minus ``(k-1) litt - x log (k-1)!``), at one parameter point."""
    theta = np.array([float(np.asarray(params[n])) for n in PARAM_NAMES])
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    f = factor(x, t_x, T, np.ones(len(x)))
    _, _, part = _evaluate(theta, f, k)
    ix, iT = f["x_index"], f["T_index"]
    return part["per_x"][ix] - part["R"][ix] * part["log_A"][iT] + part["s_rows"]


def factor(x, t_x, T, w) -> dict[str, np.ndarray]:
    """Weighted summary rows → what :func:`loglik_and_grad` reads: distinct ``x``, ``T`` and
    ``t_x`` with each row's position among them, ``log(T - t_x)`` per row (data only), and the
    weights summed per distinct ``x`` and ``T`` (``weighted_x_by_T``: of ``w x``)."""
    x, t_x, T, w = (np.asarray(v, dtype=float) for v in (x, t_x, T, w))
    xs, ix = levels(x)
    Ts, iT = levels(T)
    ts, it = levels(t_x)
    with np.errstate(divide="ignore"):
        log_d = np.log(T - t_x)  # -inf where the last purchase is at T
    return {
        "x_levels": xs,
        "T_levels": Ts,
        "t_x_levels": ts,
        "x_index": ix,
        "T_index": iT,
        "t_x_index": it,
        "log_d": log_d,
        "weight": w,
        "weight_by_x": np.bincount(ix, weights=w, minlength=len(xs)),
        "weight_by_T": np.bincount(iT, weights=w, minlength=len(Ts)),
        "weighted_x_by_T": np.bincount(iT, weights=w * x, minlength=len(Ts)),
    }


def _evaluate(theta, f, k: int):
    """The weighted log-likelihood at ``theta`` and its gradient, and its parts: the terms of
    each distinct ``x`` (``per_x``, the constant included), ``R = r + kx`` per distinct ``x``,
    ``log(alpha+T)`` per distinct ``T`` and each row's ``log(S1 + sum_j c_j)`` (:func:`_rows`):
    a row's log-likelihood is ``per_x - R log(alpha+T) + s_rows``."""
    r, alpha, a, b = theta
    xs, Ts, ts = f["x_levels"], f["T_levels"], f["t_x_levels"]
    R, bx = r + k * xs, b + xs
    gl, dg = special.gammaln, special.digamma
    steps = R[:, None] + np.arange(max(k - 1, 1))  # R + j, j < k - 1
    log_A = np.log(alpha + Ts)
    s_rows, sums = _rows(
        np.log(a),
        R,
        np.log(bx),
        np.log(steps) - np.log(np.arange(1, steps.shape[1] + 1)),
        1.0 / steps,
        log_A,
        1.0 / (alpha + Ts),
        np.log(alpha + ts),
        1.0 / (alpha + ts),
        f["x_index"],
        f["T_index"],
        f["t_x_index"],
        f["log_d"],
        f["weight"],
        1.0 / bx,
        k,
    )
    s_total, d_r, d_alpha, dead, dead_by_bx = sums.sum(axis=0)
    w_x, w_T, wx_T = f["weight_by_x"], f["weight_by_T"], f["weighted_x_by_T"]
    psi_abx = dg(a + bx + 1.0)
    const = -gl(r) + r * np.log(alpha) + gl(a + b) - gl(b)
    per_x = const + gl(bx + 1.0) - gl(a + bx + 1.0) + gl(R)
    shape_T = r * w_T + k * wx_T  # the sum of w R per distinct T
    total = w_x @ per_x - shape_T @ log_A + s_total
    grad = np.array(
        [
            d_r + w_x @ (dg(R) - dg(r) + np.log(alpha)) - w_T @ log_A,
            d_alpha + w_x.sum() * r / alpha - shape_T @ (1.0 / (alpha + Ts)),
            dead / a + w_x @ (dg(a + b) - psi_abx),
            -dead_by_bx + w_x @ (dg(bx + 1.0) - dg(b) + dg(a + b) - psi_abx),
        ]
    )
    return total, grad, {"per_x": per_x, "R": R, "log_A": log_A, "s_rows": s_rows}


ROWS = 4096  # rows per parallel task


@numba.njit(parallel=True, cache=True)
def _rows(
    log_a,
    R,
    log_bx,
    log_steps,
    inv_steps,
    log_A,
    inv_A,
    log_B,
    inv_B,
    ix,
    iT,
    it,
    log_d,
    w,
    inv_bx,
    k,
):  # pragma: no cover - compiled
    """Each row's ``log(S1 + sum_j c_j)``, and per block of rows the weighted sums of it, of its
    derivatives in ``r`` and ``alpha``, of the share of ``S1`` and of that share over ``b+x``
    (shape ``(blocks, 5)``; summed in block order, the total does not depend on the threads;
    and no large numpy product runs between two passes, whose BLAS threads would spin on the
    cores the next pass needs).

    ``S1 = a/(b+x) ((alpha+T)/(alpha+t_x))^R`` (dead after the last purchase), ``R = r + kx``;
    ``c_j = Gamma(R+j)/Gamma(R) (T-t_x)^j / (j! (alpha+T)^j)`` (alive, ``j`` events of the
    next purchase since ``t_x``), whose derivative in ``r`` is ``c_j sum_{i<j} 1/(R+i)``.
    ``R``, ``log(b+x)``, ``log((R+j)/(j+1))`` and ``1/(R+j)`` are per distinct ``x`` (``ix``),
    ``log(alpha+T)`` and its inverse per distinct ``T`` (``iT``), ``log(alpha+t_x)`` and its
    inverse per distinct ``t_x`` (``it``).
    """
    n = ix.shape[0]
    blocks = (n + ROWS - 1) // ROWS
    out = np.empty(n)
    sums = np.zeros((blocks, 5))
    for block in numba.prange(blocks):
        logc = np.empty(k)
        dpsi = np.empty(k)
        s_value, s_r, s_alpha, s_dead, s_dead_bx = 0.0, 0.0, 0.0, 0.0, 0.0
        for i in range(block * ROWS, min(n, (block + 1) * ROWS)):
            x, lA, lB = ix[i], log_A[iT[i]], log_B[it[i]]
            step = log_d[i] - lA
            shape = R[x]
            log_s1 = log_a - log_bx[x] + shape * (lA - lB)
            logc[0], dpsi[0] = 0.0, 0.0
            top = max(log_s1, 0.0)
            for j in range(1, k):
                logc[j] = logc[j - 1] + log_steps[x, j - 1] + step
                dpsi[j] = dpsi[j - 1] + inv_steps[x, j - 1]
                top = max(top, logc[j])
            e1 = math.exp(log_s1 - top)
            total = e1 + math.exp(-top)  # S1 and c_0
            d_r, d_alpha = 0.0, 0.0
            for j in range(1, k):
                e = math.exp(logc[j] - top)
                total += e
                d_r += e * dpsi[j]
                d_alpha -= e * j
            e1 /= total
            a_inv, b_inv = inv_A[iT[i]], inv_B[it[i]]
            out[i] = top + math.log(total)
            s_value += w[i] * out[i]
            s_r += w[i] * (d_r / total + e1 * (lA - lB))
            s_alpha += w[i] * (d_alpha * a_inv / total + e1 * shape * (a_inv - b_inv))
            s_dead += w[i] * e1
            s_dead_bx += w[i] * e1 * inv_bx[x]
        sums[block, 0], sums[block, 1], sums[block, 2] = s_value, s_r, s_alpha
        sums[block, 3], sums[block, 4] = s_dead, s_dead_bx
    return out, sums


def loglik_and_grad(theta, f: Mapping[str, np.ndarray], k: int) -> tuple[float, np.ndarray]:
    """The weighted sum of the rows' log-likelihoods and its gradient in ``(r, alpha, a, b)``
    (``f``: :func:`factor`'s)."""
    total, grad, *_ = _evaluate(np.asarray(theta, dtype=float), f, k)
    return float(total), grad


def loglik_pytensor(r, alpha, a, b, x, t_x, T, k: int) -> pt.TensorVariable:
    """Per-row log-likelihood as a pytensor expression (:func:`loglik_numpy`'s formula); the
    parameters may be per-row vectors (covariates)."""
    R, A, B, D = r + k * x, alpha + T, alpha + t_x, T - t_x
    log_s1 = pt.log(a) - pt.log(b + x) + R * (pt.log(A) - pt.log(B))
    terms = [log_s1, *_phase_logs(R, A, D, k, pt)]
    total = pt.logsumexp(pt.stack(terms), axis=0)
    gl = pt.gammaln
    beta = gl(b + x + 1) - gl(a + b + x + 1) + gl(a + b) - gl(b)
    return beta + gl(R) - gl(r) + r * pt.log(alpha) - R * pt.log(A) + total


def build_model(
    data: pd.DataFrame,
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
    k: int = 1,
) -> BuiltModel:
    """PyMC model of ``(r, alpha, a, b)`` at regularity ``k`` given customer summaries
    (``frequency``, ``recency``, ``T``), and its numpy density."""
    rows, w = weighted_rows(data, TRANSACTION_COLUMNS, weights, collapse)
    x, t_x, T = (rows[c].to_numpy(dtype=float) for c in TRANSACTION_COLUMNS)
    f = factor(x, t_x, T, w)
    return weighted_model(
        PARAM_NAMES,
        priors or Priors(),
        lambda *p: pt.dot(w, loglik_pytensor(*p, x, t_x, T, k)),
        lambda theta: loglik_and_grad(theta, f, k),
    )


def regularity_loglik(summary: pd.DataFrame, k: int) -> float:
    """The likelihood's part that only ``k`` moves: ``sum (k-1) L - x log (k-1)!`` over the
    customers, ``L`` their ``log_gap_sum`` (time units of the summary)."""
    if k == 1:
        return 0.0
    gaps = summary[LOG_GAPS].to_numpy(dtype=float)
    x = summary["frequency"].to_numpy(dtype=float)
    return float(np.sum((k - 1) * gaps - x * math.lgamma(k)))


# --------------------------------------------------------------------------- predictions
def _log_odds_dead(r, alpha, a, b, x, t_x, T, k: int) -> np.ndarray:
    """``log(S1 / S2)``: dead against alive, given ``(x, t_x, T)``."""
    R, A = r + k * x, alpha + T
    log_s1 = np.log(a) - np.log(b + x) + R * (np.log(A) - np.log(alpha + t_x))
    log_s2 = np.logaddexp.reduce(np.stack(np.broadcast_arrays(*_phase_logs(R, A, T - t_x, k))))
    return log_s1 - log_s2


def p_alive(params: Mapping[str, ArrayLike], x, t_x, T, k: int = 1) -> np.ndarray:
    """``P(alive) = 1 / (1 + S1 / S2)``: ``S1 = a/(b+x) ((alpha+T)/(alpha+t_x))^(r+kx)`` (dead
    after the last purchase), ``S2`` the sum of the phase weights (alive, the next purchase
    not yet due)."""
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return special.expit(-_log_odds_dead(r, alpha, a, b, x, t_x, T, k))


BLOCK = 256  # elements per parallel task


@numba.njit(parallel=True, cache=True)
def _if_alive(r, alpha, a, b, x, t_x, T, t, k, expected, none):  # pragma: no cover - compiled
    """For every element: the expected purchases in ``(T, T+t]`` of a customer alive at ``T``
    (into ``expected``) and the probability of none there (into ``none``).

    In phase ``j`` (weight ``c_j``), with ``lambda ~ Gamma(r+kx+j, alpha+T)`` the events in the
    window ``N`` are Negative Binomial, the purchases ``floor((N+j)/k)``, and the ``n``-th of
    them is made alive with probability ``E[(1-p)^(n-1)]``, ``p ~ Beta(a, b+x+1)``. The terms
    of ``N`` follow by their ratio, in logs only while they are below the floating point range.
    """
    n = x.shape[0]
    for block in numba.prange((n + BLOCK - 1) // BLOCK):
        logc = np.empty(k)
        for e in range(block * BLOCK, min(n, (block + 1) * BLOCK)):
            R, A, D = r[e] + k * x[e], alpha[e] + T[e], T[e] - t_x[e]
            log_d = math.log(max(D, 1e-300)) - math.log(A)
            logc[0] = 0.0
            for j in range(1, k):
                logc[j] = logc[j - 1] + math.log((R + j - 1) / j) + log_d
            top = logc.max()
            norm = 0.0
            for j in range(k):
                norm += math.exp(logc[j] - top)
            z = t[e] / (A + t[e])
            log_stay = math.log(A / (A + t[e]))
            bx = b[e] + x[e] + 1.0
            total, zero = 0.0, 0.0
            for j in range(k):
                w = math.exp(logc[j] - top) / norm
                if w < 1e-15:
                    continue
                shape = R + j
                log_p = shape * log_stay  # P(N = 0)
                p = math.exp(log_p)
                made, cum, keep = 0, 0.0, 1.0  # purchases so far, sum of E[(1-p)^(n-1)], next
                mean = 0.0
                i = 0
                while True:
                    while made < (i + j) // k:
                        cum += keep
                        keep *= (bx + made) / (a[e] + bx + made)
                        made += 1
                    mean += p * cum
                    if i < k - j:
                        zero += w * p
                    ratio = (shape + i) / (i + 1) * z
                    # the ratio of consecutive terms stays below max(ratio, z) from here on
                    bound = max(ratio, z)
                    if z == 0.0 or (bound < 1.0 and p * bound / (1.0 - bound) < 1e-14):
                        break
                    if log_p < -700.0:  # below the range: on in logs
                        log_p += math.log(ratio)
                        p = math.exp(log_p)
                    else:
                        p *= ratio
                        log_p = 0.0
                    i += 1
                total += w * mean
            expected[e] = total
            none[e] = zero


def _window(params, t, x, T, t_x, k: int) -> tuple[np.ndarray, np.ndarray]:
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    arrays = np.broadcast_arrays(r, alpha, a, b, x, t_x, T, t)
    shape = arrays[0].shape
    flat = [np.array(v, dtype=float).ravel() for v in arrays]  # owned and writeable
    expected, none = np.empty(flat[0].size), np.empty(flat[0].size)
    _if_alive(*flat, k, expected, none)
    return expected.reshape(shape), none.reshape(shape)


def expected_purchases_if_alive(params, t, x, T, t_x, k: int = 1) -> np.ndarray:
    """Expected purchases in ``(T, T+t]`` of a customer alive at ``T`` whose last purchase was
    at ``t_x``; at ``k = 1`` MBG/NBD's closed form (which the sum equals, as the tests check)."""
    if k == 1:
        return bgnbd.expected_purchases_if_alive(params, t, x, T, modified=True)
    return _window(params, t, x, T, t_x, k)[0]


def p_no_purchase_if_alive(params, t, x, T, t_x, k: int = 1) -> np.ndarray:
    """Probability of no purchase in ``(T, T+t]`` of a customer alive at ``T`` whose last
    purchase was at ``t_x``: no ``k - j`` events in the window, summed over the phases; at ``k =
    1`` MBG/NBD's closed form."""
    if k == 1:
        return bgnbd.p_no_purchase_if_alive(params, t, x, T)
    return _window(params, t, x, T, t_x, k)[1]


def expected_purchases(params: Mapping[str, ArrayLike], t: ArrayLike, k: int = 1) -> np.ndarray:
    """``E[X(t)]`` of a new customer: alive after the first purchase with probability
    ``b/(a+b)``, then as a customer alive at 0 with no repeat purchase."""
    a, b = (np.asarray(params[n], dtype=float) for n in ("a", "b"))
    t = np.asarray(t, dtype=float)
    zero = np.zeros_like(t)
    return b / (a + b) * expected_purchases_if_alive(params, t, zero, zero, zero, k)


def at_regularity(k: int) -> PurchaseModel:
    """MBG/CNBD-k at regularity ``k`` (1 is MBG/NBD)."""
    if not 1 <= k <= MAX_REGULARITY or int(k) != k:
        raise ValueError(f"regularity k must be an integer from 1 to {MAX_REGULARITY}, got {k}")
    k = int(k)
    return PurchaseModel(
        name="mbgcnbd",
        param_names=PARAM_NAMES,
        build=partial(build_model, k=k),
        p_alive=partial(p_alive, k=k),
        expected_purchases=partial(expected_purchases, k=k),
        expected_purchases_if_alive=partial(expected_purchases_if_alive, k=k),
        p_no_purchase_if_alive=partial(p_no_purchase_if_alive, k=k),
        scaled=("alpha", "b"),
        loglik_rows=partial(loglik_pytensor, k=k),
        factored=FactoredLoglik(factor, partial(loglik_and_grad, k=k)),
        # MBG/NBD's CDNOW estimates with the event rate k times the purchase rate
        simulation_params=(("r", 0.525), ("alpha", 6.183 / k), ("a", 0.891), ("b", 1.614)),
        draw_dropout=mbgnbd.draw_dropout,
        drop_after_purchase=bgnbd.drop_after_purchase,
        lifetime=None,
        purchase_dropout=partial(bgnbd.purchase_dropout, modified=True),
        regularity=k,
    )


MBGCNBD = at_regularity(2)  # the registry's model: simulations draw at k = 2; fits choose k
