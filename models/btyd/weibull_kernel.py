"""Weibull/NBD's per-customer log-likelihood and its gradient as fused numba passes.

The numpy form (:func:`models.btyd.weibull_nbd.loglik_numpy`) evaluates the quadrature of the
lifetime integral node by node, each node a dozen array operations over every customer, and
the gradient five times that: at a million customers MAP and NUTS spend their time there. Here
the integral over ``(t_x, T]`` is the difference of two integrals to a common end, one from
``t_x`` and one from ``T``, each computed once per distinct ``(x, t_x)`` or ``(x, T)``
(:func:`integrals`: 13,589 pairs where the 1M benchmark log has 216,410 distinct summaries),
its 64 nodes and five derivatives one loop in registers; a second pass puts each customer's
likelihood together (:func:`rows_from_integrals`). The arithmetic is
:func:`models.btyd.weibull_nbd._node`'s and ``_tail_node``'s, differentiated forward; the
tests hold it to the PyMC model's value and gradient.
"""

from __future__ import annotations

import math

import numba
import numpy as np

P = 5  # r, alpha, s, beta, k


ROWS = 256  # customers per parallel task; a task reuses one set of scratch vectors


@numba.njit(parallel=True, cache=True, error_model="numpy")  # inf, not an exception
def integrals(theta, x, start, end, nodes, weights, split):  # pragma: no cover - compiled
    """``log int_start^end (alpha+u)^-(r+x) f(u) du`` for each pair ``(x, start)`` at ``theta =
    (r, alpha, s, beta, k)``, and its gradient in ``theta`` (shape ``(5, n)``; ``-inf`` and 0
    where ``start >= end``); ``nodes`` and ``weights``: Gauss-Legendre's on [-1, 1], for each
    of the two panels, the first ending where the purchase factor keeps ``exp(-split)`` of its
    mass."""
    y_split = -math.expm1(-split)
    r, alpha, s, beta, k = theta[0], theta[1], theta[2], theta[3], theta[4]
    n = x.shape[0]
    logs = np.empty(n)
    grads = np.empty((P, n))
    m = max(1.0, 1.0 / k)
    sk = s * k
    log_sk, log_beta = math.log(sk), math.log(beta)
    # derivatives in (r, alpha, s, beta, k) of e = r + x + s k, of alpha, of s k and of m
    d_e = np.array([1.0, 0.0, k, 0.0, s])
    d_alpha = np.array([0.0, 1.0, 0.0, 0.0, 0.0])
    d_sk = np.array([0.0, 0.0, k, 0.0, s])
    d_m = np.array([0.0, 0.0, 0.0, 0.0, -1.0 / (k * k) if k < 1.0 else 0.0])
    # what each node contributes whatever the pair
    half = (nodes + 1.0) / 2.0
    log_w = np.log(half)
    wm = half**m
    log_weights = np.log(weights)
    node_const = (m - 1.0) * log_w + log_weights + log_sk + s * log_beta
    a_end = alpha + end
    log_a_end = math.log(a_end)
    for block in numba.prange((n + ROWS - 1) // ROWS):
        d_start = np.empty(P)
        d_span = np.empty(P)
        d_y_end = np.empty(P)
        d_scale = np.empty(P)
        d_term = np.empty(P)
        g = np.empty(P)
        for i in range(block * ROWS, min(n, (block + 1) * ROWS)):
            c = r + x[i]
            e = c + sk
            low = alpha + start[i]
            log_low = math.log(low)
            gap = log_low - log_a_end
            y_end = -math.expm1(e * gap)
            top = -math.inf
            total = 0.0
            for j in range(P):
                g[j] = 0.0
            if y_end > 0.0:
                tail = y_end > y_split  # a second panel beyond the first's end
                y_end = min(y_end, y_split)
                eg = math.exp(e * gap)
                scale = -e * log_low - math.log(e) + math.log(y_end / 2.0) + math.log(m)
                for j in range(P):
                    d_y_end[j] = 0.0
                    if not tail:
                        d_y_end[j] = -eg * (
                            d_e[j] * gap + e * d_alpha[j] * (1.0 / low - 1.0 / a_end)
                        )
                    d_scale[j] = (
                        -d_e[j] * log_low
                        - e * d_alpha[j] / low
                        - d_e[j] / e
                        + d_y_end[j] / y_end
                        + d_m[j] / m
                    )
                for q in range(nodes.shape[0]):
                    y = y_end * wm[q]
                    log_rest = math.log1p(-y)
                    qq = math.exp(-log_rest / e)
                    u = low * qq - alpha
                    if not u > 0.0:
                        continue
                    log_u = math.log(u)
                    log_au = math.log(alpha + u)
                    uk = math.exp(k * log_u)
                    log_buk = math.log(beta + uk)
                    term = (sk + 1.0) * log_au + scale + node_const[q]
                    term += (k - 1.0) * log_u - (s + 1.0) * log_buk
                    if math.isnan(term):
                        continue
                    share = uk / (beta + uk)
                    through_u = ((k - 1.0) - (s + 1.0) * k * share) / u
                    to_u = low * qq / ((1.0 - y) * e)
                    for j in range(P):
                        d_y = wm[q] * d_y_end[j] + y * log_w[q] * d_m[j]
                        d_u = d_alpha[j] * (qq - 1.0) + to_u * d_y
                        d_u += low * qq * log_rest * d_e[j] / (e * e)
                        d_term[j] = (
                            d_sk[j] * log_au
                            + (sk + 1.0) * (d_alpha[j] + d_u) / (alpha + u)
                            + d_scale[j]
                            + d_m[j] * log_w[q]
                            + through_u * d_u
                        )
                    _lifetime_terms(d_term, s, k, beta, log_beta, log_buk, uk, log_u, share)
                    top, total = _add(term, d_term, top, total, g)
                start_v = log_low + split / e
                span = log_a_end - start_v
                if tail and span > 0.0:  # uniform in v = log(alpha+u), first panel's end to end
                    for j in range(P):
                        d_start[j] = d_alpha[j] / low - split * d_e[j] / (e * e)
                        d_span[j] = d_alpha[j] / a_end - d_start[j]
                    log_half_span = math.log(span / 2.0)
                    for q in range(nodes.shape[0]):
                        v = start_v + span * half[q]
                        ev = math.exp(v)
                        u = ev - alpha
                        if not u > 0.0:  # alpha so large that u is lost in rounding
                            continue
                        log_u = math.log(u)
                        uk = math.exp(k * log_u)
                        log_buk = math.log(beta + uk)
                        term = (1.0 - c) * v + log_sk + s * log_beta + (k - 1.0) * log_u
                        term += -(s + 1.0) * log_buk + log_weights[q] + log_half_span
                        share = uk / (beta + uk)
                        through_u = ((k - 1.0) - (s + 1.0) * k * share) / u
                        for j in range(P):
                            d_v = d_start[j] + d_span[j] * half[q]
                            d_u = ev * d_v - d_alpha[j]
                            d_term[j] = (1.0 - c) * d_v + through_u * d_u + d_span[j] / span
                        d_term[0] -= v  # c = r + x
                        _lifetime_terms(d_term, s, k, beta, log_beta, log_buk, uk, log_u, share)
                        top, total = _add(term, d_term, top, total, g)
            if total > 0.0:
                logs[i] = top + math.log(total)
                for j in range(P):
                    grads[j, i] = g[j] / total
            else:  # nothing to integrate
                logs[i] = -math.inf
                for j in range(P):
                    grads[j, i] = 0.0
    return logs, grads


@numba.njit(parallel=True, cache=True, error_model="numpy")
def rows_from_integrals(
    theta, x, alive_at, d_alive_at, const_at, i_x, i_T, i_from, i_to, logs, d_logs
):  # pragma: no cover - compiled
    """Each customer's log-likelihood and its gradient (shape ``(5, n)``) from the terms of
    their distinct ``T`` (``i_T``: ``alive_at`` holds ``log(alpha+T)`` and ``log S(T) / s``,
    ``d_alive_at`` what the derivatives in ``alpha``, ``beta`` and ``k`` take from ``T``,
    :func:`models.btyd.weibull_nbd.lifetime_rows`), of their
    distinct ``x`` (``i_x``: ``const_at`` holds ``log G(r+x) alpha^r / G(r)`` and its
    derivative in ``r``) and of the integrals (:func:`integrals`) from ``t_x`` (``i_from``)
    and from ``T`` (``i_to``) to the common end, whose difference is the integral over
    ``(t_x, T]``: dying there is less likely than being alive at ``T`` is, so the
    difference's rounding is a rounding of the whole likelihood."""
    r, alpha, s = theta[0], theta[1], theta[2]
    n = x.shape[0]
    rows = np.empty(n)
    grads = np.empty((P, n))
    for i in numba.prange(n):
        c = r + x[i]
        t = i_T[i]
        # alive at T: -c log(alpha+T) + log S(T)
        log_aT = alive_at[0, t]
        alive = -c * log_aT + s * alive_at[1, t]
        a, b = i_from[i], i_to[i]
        top = max(alive, logs[a])
        share_alive = math.exp(alive - top)
        share_from = math.exp(logs[a] - top)
        share_to = math.exp(logs[b] - top) if b != a else share_from
        total = share_alive + share_from - share_to
        rows[i] = const_at[0, i_x[i]] + top + math.log(total)
        for j in range(P):
            if j == 0:
                d_alive = -log_aT
            elif j == 1:
                d_alive = -c * d_alive_at[1, t]
            elif j == 2:
                d_alive = alive_at[1, t]
            else:
                d_alive = s * d_alive_at[j, t]
            died = share_from * d_logs[j, a] - share_to * d_logs[j, b]
            grads[j, i] = (share_alive * d_alive + died) / total
        grads[0, i] += const_at[1, i_x[i]]
        grads[1, i] += r / alpha
    return rows, grads


@numba.njit(cache=True, error_model="numpy")
def _lifetime_terms(d_term, s, k, beta, log_beta, log_buk, uk, log_u, share):  # pragma: no cover
    """Add a node's derivatives in ``(s, beta, k)`` of ``log(s k) + s log(beta) + (k-1) log(u)
    - (s+1) log(beta + u^k)`` at fixed ``u``."""
    d_term[2] += 1.0 / s + log_beta - log_buk
    d_term[3] += s / beta - (s + 1.0) / (beta + uk)
    d_term[4] += 1.0 / k + log_u * (1.0 - (s + 1.0) * share)


@numba.njit(cache=True, error_model="numpy")
def _add(term, d_term, top, total, g):  # pragma: no cover - compiled
    """Add a node to a running log-sum-exp ``top + log(total)`` and to its gradient ``g`` (in
    place, scaled as ``total``); returns the new ``(top, total)``."""
    if term > top:
        rescale = math.exp(top - term)
        for j in range(g.shape[0]):
            g[j] = g[j] * rescale + d_term[j]
        return term, total * rescale + 1.0
    mass = math.exp(term - top)
    for j in range(g.shape[0]):
        g[j] += mass * d_term[j]
    return top, total + mass


@numba.njit(cache=True)
def _digamma(z):  # pragma: no cover - compiled
    """The digamma function for ``z > 0``: the recurrence up to 6, then the asymptotic series."""
    out = 0.0
    while z < 6.0:
        out -= 1.0 / z
        z += 1.0
    inv = 1.0 / z
    inv2 = inv * inv
    return (
        out
        + math.log(z)
        - 0.5 * inv
        - inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (1.0 / 240))))
    )
