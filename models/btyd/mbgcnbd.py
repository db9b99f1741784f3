"""MBG/CNBD-k model (Reutterer, Platzer & Schröder 2021, "Leveraging purchase regularity for
predicting customer behavior the easy way", IJRM 38(1)).

MBG/NBD with regular purchases: the times between a customer's purchases are Erlang-k with
rate ``lambda ~ Gamma(r, alpha)`` (a purchase every ``k`` events of a Poisson process of rate
``lambda``, so the purchase rate is ``lambda / k``) instead of exponential; after each purchase,
the first included, the customer drops out with probability ``p ~ Beta(a, b)``. ``k = 1`` is
MBG/NBD; a larger ``k`` makes a customer who is late against their own rhythm more likely gone,
and one who bought recently less likely to buy again at once.

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
from models.btyd.common import BuiltModel, PurchaseModel, param_arrays, per_row_model
from models.btyd.priors import Priors

PARAM_NAMES = bgnbd.PARAM_NAMES
MAX_REGULARITY = 12  # the largest k searched (BTYDplus's grid)
LOG_GAPS = "log_gap_sum"  # the summary column of the sum of log inter-purchase times
M = 1.0  # one dropout coin at the first purchase: the "M" of MBG


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
    ``mbgcnbd.LL`` minus ``(k-1) litt - x log (k-1)!``)."""
    value, _ = _loglik_and_grad_rows(np.array(param_arrays(params, PARAM_NAMES)), x, t_x, T, k)
    return value


def _loglik_and_grad_rows(theta, x, t_x, T, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's log-likelihood and its gradient in ``(r, alpha, a, b)`` (shape ``(4, n)``)."""
    r, alpha, a, b = theta
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    R, A, B, D = r + k * x, alpha + T, alpha + t_x, T - t_x
    log_a_big, log_b_big = np.log(A), np.log(B)
    bx = b + x - 1 + M
    log_s1 = np.log(a) - np.log(bx) + R * (log_a_big - log_b_big)
    phases = _phase_logs(R, A, D, k)
    total = np.logaddexp.reduce(np.stack([log_s1, *phases]), axis=0)
    e1 = np.exp(log_s1 - total)
    dg = special.digamma
    d_r = e1 * (log_a_big - log_b_big)
    d_alpha = e1 * R * (1 / A - 1 / B)
    psi_r = dg(R)
    for j, log_c in enumerate(phases[1:], start=1):
        e = np.exp(log_c - total)
        d_r = d_r + e * (dg(R + j) - psi_r)
        d_alpha = d_alpha - e * j / A
    gl = special.gammaln
    rest = (
        special.betaln(a, b + x + M)
        - special.betaln(a, b)
        + gl(R)
        - gl(r)
        + r * np.log(alpha)
        - R * log_a_big
    )
    d_ab = dg(a + b) - dg(a + b + x + M)
    grads = np.stack(
        [
            d_r + psi_r - dg(r) + np.log(alpha) - log_a_big,
            d_alpha + r / alpha - R / A,
            e1 / a + d_ab,
            -e1 / bx + dg(b + x + M) - dg(b) + d_ab,
        ]
    )
    return rest + total, grads


def loglik_and_grad(theta, x, t_x, T, w, k: int) -> tuple[float, np.ndarray]:
    """The weighted sum of the rows' log-likelihoods and its gradient in ``(r, alpha, a, b)``."""
    rows, grads = _loglik_and_grad_rows(theta, x, t_x, T, k)
    return float(w @ rows), grads @ w


def loglik_pytensor(r, alpha, a, b, x, t_x, T, k: int) -> pt.TensorVariable:
    """Per-row log-likelihood as a pytensor expression (:func:`loglik_numpy`'s formula); the
    parameters may be per-row vectors (covariates)."""
    R, A, B, D = r + k * x, alpha + T, alpha + t_x, T - t_x
    log_s1 = pt.log(a) - pt.log(b + x - 1 + M) + R * (pt.log(A) - pt.log(B))
    terms = [log_s1, *_phase_logs(R, A, D, k, pt)]
    total = pt.logsumexp(pt.stack(terms), axis=0)
    gl = pt.gammaln
    beta = gl(b + x + M) - gl(a + b + x + M) + gl(a + b) - gl(b)
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
    return per_row_model(
        PARAM_NAMES,
        partial(loglik_pytensor, k=k),
        data,
        priors,
        weights,
        collapse,
        partial(loglik_and_grad, k=k),
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
    log_s1 = np.log(a) - np.log(b + x - 1 + M) + R * (np.log(A) - np.log(alpha + t_x))
    log_s2 = np.logaddexp.reduce(np.stack(np.broadcast_arrays(*_phase_logs(R, A, T - t_x, k))))
    return log_s1 - log_s2


def p_alive(params: Mapping[str, ArrayLike], x, t_x, T, k: int = 1) -> np.ndarray:
    """``P(alive) = 1 / (1 + S1 / S2)``: ``S1 = a/(b+x) ((alpha+T)/(alpha+t_x))^(r+kx)`` (dead
    after the last purchase), ``S2`` the sum of the phase weights (alive, the next purchase
    not yet due)."""
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    return special.expit(-_log_odds_dead(r, alpha, a, b, x, t_x, T, k))


@numba.njit(cache=True)
def _if_alive(r, alpha, a, b, x, t_x, T, t, k, expected, none):  # pragma: no cover - compiled
    """For every element: the expected purchases in ``(T, T+t]`` of a customer alive at ``T``
    (into ``expected``) and the probability of none there (into ``none``).

    In phase ``j`` (weight ``c_j``), with ``lambda ~ Gamma(r+kx+j, alpha+T)`` the events in the
    window ``N`` are Negative Binomial, the purchases ``floor((N+j)/k)``, and the ``n``-th of
    them is made alive with probability ``E[(1-p)^(n-1)]``, ``p ~ Beta(a, b+x+1)``.
    """
    logc = np.empty(k)
    for e in range(x.shape[0]):
        R, A, D = r[e] + k * x[e], alpha[e] + T[e], T[e] - t_x[e]
        logc[0] = 0.0
        for j in range(1, k):
            logc[j] = (
                logc[j - 1] + math.log(R + j - 1) + math.log(max(D, 1e-300)) - math.log(j)
            ) - math.log(A)
        top = logc.max()
        norm = 0.0
        for j in range(k):
            norm += math.exp(logc[j] - top)
        z = t[e] / (A + t[e])
        log_z, log_stay = math.log(max(z, 1e-300)), math.log(A / (A + t[e]))
        bx = b[e] + x[e] + M
        total, zero = 0.0, 0.0
        for j in range(k):
            w = math.exp(logc[j] - top) / norm
            if w < 1e-15:
                continue
            shape = R + j
            log_p = shape * log_stay  # P(N = 0)
            made, cum, keep = 0, 0.0, 1.0  # purchases counted, sum of E[(1-p)^(n-1)], next one
            mean = 0.0
            i = 0
            while True:
                p = math.exp(log_p)
                while made < (i + j) // k:
                    cum += keep
                    keep *= (bx + made) / (a[e] + bx + made)
                    made += 1
                mean += p * cum
                if i < k - j:
                    zero += w * p
                # the ratio of consecutive terms stays below max(rho, z) from here on
                bound = max((shape + i) / (i + 1) * z, z)
                if z == 0.0 or (bound < 1.0 and p * bound / (1.0 - bound) < 1e-14):
                    break
                log_p += math.log(shape + i) - math.log(i + 1) + log_z
                i += 1
            total += w * mean
        expected[e] = total
        none[e] = zero


def _window(params, t, x, T, t_x, k: int) -> tuple[np.ndarray, np.ndarray]:
    r, alpha, a, b = param_arrays(params, PARAM_NAMES)
    arrays = np.broadcast_arrays(r, alpha, a, b, x, t_x, T, t)
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(v, dtype=float).ravel() for v in arrays]
    expected, none = np.empty(flat[0].size), np.empty(flat[0].size)
    _if_alive(*flat, k, expected, none)
    return expected.reshape(shape), none.reshape(shape)


def expected_purchases_if_alive(params, t, x, T, t_x, k: int = 1) -> np.ndarray:
    """Expected purchases in ``(T, T+t]`` of a customer alive at ``T`` whose last purchase was
    at ``t_x``."""
    return _window(params, t, x, T, t_x, k)[0]


def p_no_purchase_if_alive(params, t, x, T, t_x, k: int = 1) -> np.ndarray:
    """Probability of no purchase in ``(T, T+t]`` of a customer alive at ``T`` whose last
    purchase was at ``t_x``: no ``k - j`` events in the window, summed over the phases."""
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
        factored=None,
        # MBG/NBD's CDNOW estimates with the event rate k times the purchase rate
        simulation_params=(("r", 0.525), ("alpha", 6.183 / k), ("a", 0.891), ("b", 1.614)),
        draw_dropout=mbgnbd.draw_dropout,
        drop_after_purchase=bgnbd.drop_after_purchase,
        lifetime=None,
        purchase_dropout=partial(bgnbd.purchase_dropout, modified=True),
        regularity=k,
    )


MBGCNBD = at_regularity(2)  # the registry's model: simulations draw at k = 2; fits choose k
