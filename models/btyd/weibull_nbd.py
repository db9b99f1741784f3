"""Pareto/NBD with Weibull lifetimes: dropout that rises (or falls) with age.

While alive a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``, as in
Pareto/NBD. The lifetime is Weibull with shape ``k`` and a scale that varies across customers:
``S(t | eta) = exp(-eta t^k)`` with ``eta ~ Gamma(s, beta)``, so that over the population

``S(t) = (beta / (beta + t^k))^s``, hazard ``s k t^(k-1) / (beta + t^k)``.

``k > 1``: a customer's hazard of leaving grows with age (customers wear out); ``k = 1`` is
Pareto/NBD exactly (Schmittlein, Morrison & Colombo 1987), which the tests check. The
likelihood of ``(x, t_x, T)`` is, with ``C = G(r+x) alpha^r / G(r)``,

``L = C [ (alpha+T)^-(r+x) S(T) + int_{t_x}^T (alpha+u)^-(r+x) f(u) du ]``

(alive at ``T``, or died after the last purchase), the integral by Gauss-Legendre quadrature
in two panels of :data:`NODES` points: one where the purchase factor ``(alpha+u)^-(r+x)``
holds all but ``exp(-SPLIT)`` of its mass, one beyond it where the lifetime's density rises
and falls (:func:`_node`, :func:`_tail_node`). MAP fits and NUTS use that quadrature with its
exact gradient in one fused numba pass (:func:`loglik_and_grad`), not the compiled PyMC model.
The predictions integrate the lifetime the same way, one node at a time (bounded memory: no
customers x draws x nodes array).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from scipy import special

from models.btyd import weibull_kernel
from models.btyd.common import (
    BuiltModel,
    FactoredLoglik,
    LogAndHazard,
    PurchaseModel,
    levels,
    no_purchase_dropout,
    param_arrays,
    per_row_model,
)
from models.btyd.priors import Priors

PARAM_NAMES: tuple[str, ...] = ("r", "alpha", "s", "beta", "k")
NODES, WEIGHTS = np.polynomial.legendre.leggauss(32)
SPLIT = 3.0  # the first panel ends where the purchase factor keeps exp(-SPLIT) of its mass
Y_SPLIT = -np.expm1(-SPLIT)


def _log_f(u, s, beta, k, log=np.log):
    """log density of the population lifetime at ``u``."""
    return log(s * k) + (k - 1) * log(u) + s * log(beta) - (s + 1) * log(beta + u**k)


def _log_s(u, s, beta, k, log=np.log):
    """log survival of the population lifetime at ``u``."""
    return s * (log(beta) - log(beta + u**k))


# --------------------------------------------------------------------------- likelihood
def _node(c, start, end, node, alpha, s, beta, k, log=np.log, expm1=np.expm1, maximum=np.maximum):
    """One Gauss-Legendre node of the first panel of ``log int_start^end (alpha+u)^-c f(u) du``
    (without its weight), after the change of variable ``y = 1 - ((alpha+start)/(alpha+u))^e``,
    ``e = c + s k``, over ``y`` up to :data:`Y_SPLIT`: the integrand becomes ``(alpha+u)^(s k +
    1) f(u) / (e (alpha+start)^e)``, bounded and smooth, where the purchase factor alone is
    sharply peaked at ``start`` for frequent buyers. With ``k < 1`` the density is infinite at
    age 0 (``u^(k-1)``); ``y = y_end w^(1/k)`` smooths that out too."""
    e = c + s * k
    m = maximum(1.0, 1.0 / k)
    w = (node + 1) / 2
    y_end = -expm1(e * (log(alpha + start) - log(alpha + end)))
    y_end = -maximum(-y_end, -Y_SPLIT)  # the first panel's end
    y = y_end * w**m
    u = (alpha + start) * (1 - y) ** (-1 / e) - alpha
    scale = -e * log(alpha + start) - log(e) + log(y_end / 2) + log(m) + (m - 1) * log(w)
    return (s * k + 1) * log(alpha + u) + _log_f(u, s, beta, k, log) + scale


def _tail_node(c, start, end, node, alpha, s, beta, k, log=np.log, exp=np.exp, maximum=np.maximum):
    """One Gauss-Legendre node of the second panel (without its weight), uniform in ``v =
    log(alpha+u)`` from the first panel's end to ``end``, and the panel's width in ``v`` (no
    panel where it is not positive): the integrand ``(alpha+u)^(1-c) f(u)`` is smooth in
    ``v``, and a lifetime long against ``1/alpha`` puts most of its mass there, which the first
    panel's variable squeezes into a sliver next to ``y = 1``."""
    start_v = log(alpha + start) + SPLIT / (c + s * k)
    width = log(alpha + end) - start_v
    span = maximum(width, 1e-9)
    v = start_v + span * (node + 1) / 2
    u = exp(v) - alpha
    return (1 - c) * v + _log_f(u, s, beta, k, log) + log(span / 2), width


def _log_died(c, start, end, alpha, s, beta, k) -> np.ndarray:
    """``log int_start^end (alpha+u)^-c f(u) du`` in numpy: :func:`_node`'s and
    :func:`_tail_node`'s quadrature, what does not depend on the node of the first panel
    computed once, node by node with a running log-sum-exp (bounded memory)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # start = end: log 0
        e = c + s * k
        m = np.maximum(1.0, 1.0 / k)
        low = alpha + start
        y_end = np.minimum(-np.expm1(e * (np.log(low) - np.log(alpha + end))), Y_SPLIT)
        outer = -e * np.log(low) - np.log(e) + np.log(y_end / 2) + np.log(m)
        outer = outer + np.log(s * k) + s * np.log(beta)
        top, total = -np.inf, 0.0
        for node, weight in zip(NODES, WEIGHTS, strict=True):
            w = (node + 1) / 2
            y = y_end * w**m
            u = low * (1 - y) ** (-1 / e) - alpha
            term = (s * k + 1) * np.log(alpha + u) + (k - 1) * np.log(u)
            term = term - (s + 1) * np.log(beta + u**k) + (m - 1) * np.log(w) + np.log(weight)
            top, total = _accumulate(top, total, outer + term)
        for node, weight in zip(NODES, WEIGHTS, strict=True):
            term, width = _tail_node(c, start, end, node, alpha, s, beta, k)
            top, total = _accumulate(
                top, total, np.where(width > 0, term + np.log(weight), -np.inf)
            )
        out = top + np.log(total)
    return np.where(np.isnan(out), -np.inf, out)


def _accumulate(top, total, term):
    """A running log-sum-exp: ``(top, total)`` stands for ``top + log(total)``."""
    term = np.where(np.isnan(term), -np.inf, term)
    new_top = np.maximum(top, term)
    anchor = np.where(np.isfinite(new_top), new_top, 0.0)
    return new_top, total * np.exp(top - anchor) + np.exp(term - anchor)


def loglik_pytensor(r, alpha, s, beta, k, x, t_x, T) -> pt.TensorVariable:
    """Per-row log-likelihood as a pytensor expression; parameters may be per-row vectors."""
    r, alpha, s, beta, k, x, t_x, T = (
        pt.shape_padright(pt.as_tensor_variable(v)) for v in (r, alpha, s, beta, k, x, t_x, T)
    )
    c = r + x
    end = pt.maximum(T, t_x + 1e-9)  # a last purchase at T: nothing to integrate, no log 0
    head = _node(c, t_x, end, NODES, alpha, s, beta, k, pt.log, pt.expm1, pt.maximum)
    tail, width = _tail_node(c, t_x, end, NODES, alpha, s, beta, k, pt.log, pt.exp, pt.maximum)
    tail = pt.switch(pt.gt(width, 0), tail, -np.inf)
    terms = pt.concatenate([head, tail], axis=-1) + np.log(np.tile(WEIGHTS, 2))
    died = pt.logsumexp(terms, axis=-1, keepdims=True)
    alive = -c * pt.log(alpha + T) + _log_s(T, s, beta, k, pt.log)
    const = pt.gammaln(c) - pt.gammaln(r) + r * pt.log(alpha)
    return (const + pt.logaddexp(alive, died))[..., 0]


def _log_terms(r, alpha, s, beta, k, x, t_x, T) -> tuple[np.ndarray, np.ndarray]:
    """log (alive at ``T``) and log (died in ``(t_x, T]``) terms of the likelihood, without
    ``G(r+x) alpha^r / G(r)``."""
    return _log_alive(r, alpha, s, beta, k, x, T), _log_died(r + x, t_x, T, alpha, s, beta, k)


def _log_alive(r, alpha, s, beta, k, x, T) -> np.ndarray:
    """log (alive at ``T``), without ``G(r+x) alpha^r / G(r)``."""
    return -(r + x) * np.log(alpha + T) + _log_s(T, s, beta, k)


def loglik_numpy(params: Mapping[str, ArrayLike], x, t_x, T) -> np.ndarray:
    """Per-row log-likelihood in numpy."""
    r, alpha, s, beta, k = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    alive, died = _log_terms(r, alpha, s, beta, k, x, t_x, T)
    const = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    return const + np.logaddexp(alive, died)


def factor(x, t_x, T, w) -> dict[str, np.ndarray]:
    """Weighted summary rows → what :func:`lifetime_rows` works on: the distinct ``x`` and
    ``T``, and the distinct pairs ``(x, t_x)`` and ``(x, T)`` whose integrals to the latest
    ``T`` each customer's likelihood takes the difference of (the rows themselves too, for
    models that add terms of their own)."""
    x, t_x, T, w = (np.ascontiguousarray(v, dtype=float) for v in (x, t_x, T, w))
    xs, i_x = levels(x)
    Ts, i_T = levels(T)
    pairs, i_pair = levels(np.column_stack([np.concatenate([x, x]), np.concatenate([t_x, T])]), 0)
    n = len(x)
    return {
        "x": x,
        "t_x": t_x,
        "w": w,
        "x_levels": xs,
        "x_index": i_x,
        "T_levels": Ts,
        "T_index": i_T,
        "pair_x": np.ascontiguousarray(pairs[:, 0]),
        "pair_start": np.ascontiguousarray(pairs[:, 1]),
        "from_index": i_pair[:n],
        "to_index": i_pair[n:],
        "end": np.array(float(T.max()) if n else 0.0),
    }


def lifetime_rows(theta: np.ndarray, f: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's log-likelihood at ``theta = (r, alpha, s, beta, k)`` and its gradient (shape
    ``(5, n)``): :func:`loglik_numpy`'s quadrature, differentiated exactly, on the rows
    :func:`factor` prepared (:mod:`models.btyd.weibull_kernel`)."""
    r, alpha, s, beta, k = theta
    logs, d_logs = weibull_kernel.integrals(
        theta, f["pair_x"], f["pair_start"], float(f["end"]), NODES, WEIGHTS, SPLIT
    )
    Ts, xs = f["T_levels"], f["x_levels"]
    with np.errstate(all="ignore"):  # a search's corners: T^k past the float range
        Tk = Ts**k
        log_T = np.log(np.where(Ts > 0, Ts, 1.0))  # T^k log T is 0 at T = 0
        alive_at = np.stack([np.log(alpha + Ts), np.log(beta) - np.log(beta + Tk)])
        # by parameter, what the alive term's derivative takes from T (r's and s's are
        # alive_at's own rows)
        unused = np.zeros_like(Ts)
        d_alive_at = np.stack(
            [
                unused,
                1.0 / (alpha + Ts),
                unused,
                1.0 / beta - 1.0 / (beta + Tk),
                -Tk * log_T / (beta + Tk),
            ]
        )
        const_at = np.stack(
            [
                special.gammaln(r + xs) - special.gammaln(r) + r * np.log(alpha),
                special.digamma(r + xs) - special.digamma(r) + np.log(alpha),
            ]
        )
    return weibull_kernel.rows_from_integrals(
        theta,
        f["x"],
        alive_at,
        d_alive_at,
        const_at,
        f["x_index"],
        f["T_index"],
        f["from_index"],
        f["to_index"],
        logs,
        d_logs,
    )


def loglik_and_grad(theta: np.ndarray, f: Mapping[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """The weighted log-likelihood at ``theta = (r, alpha, s, beta, k)`` of the rows
    :func:`factor` prepared, and its gradient (:func:`lifetime_rows`)."""
    theta = np.asarray(theta, dtype=float)
    if not np.all(np.isfinite(theta) & (theta > 0)):  # a search's step past the float range
        return -np.inf, np.zeros(len(theta))
    rows, grads = lifetime_rows(theta, f)
    # summed without BLAS: its threads spin after a product, on the cores the next pass needs
    w = f["w"]
    return float(np.einsum("n,n->", w, rows)), np.einsum("pn,n->p", grads, w)


FACTORED = FactoredLoglik(factor, loglik_and_grad)


def build_model(
    data: pd.DataFrame,
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
) -> BuiltModel:
    """PyMC model of the parameters given customer summaries (``frequency``, ``recency``,
    ``T``); identical rows collapsed with weights unless ``weights`` are given."""
    return per_row_model(PARAM_NAMES, loglik_pytensor, data, priors, weights, collapse, FACTORED)


def ageing_start(data: pd.DataFrame) -> dict[str, float]:
    """A lifetime whose hazard rises with age (k = 2), its median twice the customers' median
    observation: a further starting point of a MAP fit where the likelihood can have a mode at
    a falling and at a rising hazard (BG/NBD with Weibull lifetimes, on a simulated log that
    ages: from the prior's centre, k = 1, the search settled at k = 0.19, 26 nats below the
    mode at k = 2.5)."""
    return {"s": 1.0, "beta": (2.0 * max(float(np.median(data["T"])), 1.0)) ** 2, "k": 2.0}


# --------------------------------------------------------------------------- predictions
def survival_integral(s, beta, k, start, t, rate=None) -> np.ndarray:
    """``int_0^t rate(u) S(start+u) / S(start) du`` node by node (bounded memory); without a
    ``rate``, the expected time alive in ``(start, start+t]`` of a customer alive at
    ``start``."""
    total, at_start = 0.0, _log_s(start, s, beta, k)
    for node, weight in zip(NODES, WEIGHTS, strict=True):
        u = t / 2 * (node + 1)
        kept = weight * np.exp(_log_s(start + u, s, beta, k) - at_start)
        total = total + (kept if rate is None else kept * rate(u))
    return total * t / 2


def expected_purchases(params: Mapping[str, ArrayLike], t: ArrayLike) -> np.ndarray:
    """Unconditional ``E[X(t)] = r/alpha int_0^t S(u) du``."""
    r, alpha, s, beta, k = param_arrays(params, PARAM_NAMES)
    t = np.asarray(t, dtype=float)
    return r / alpha * survival_integral(s, beta, k, 0.0, t)


def p_alive(params: Mapping[str, ArrayLike], x, t_x, T) -> np.ndarray:
    """Probability of being alive at ``T``: the likelihood's alive term over the whole.

    For posterior draws along the columns and customers along the rows (``(1, draws)`` and
    ``(n, 1)``, as the predictions ask), the died term is computed by pairs, as the likelihood
    is (:func:`models.btyd.weibull_kernel.integrals`), one draw at a time."""
    r, alpha, s, beta, k = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    theta = np.broadcast_arrays(r, alpha, s, beta, k)
    if theta[0].ndim == 2 and theta[0].shape[0] == 1 and x.ndim == 2 and x.shape[1] == 1:
        return _p_alive_by_pairs(
            np.stack([v[0] for v in theta], axis=1), x[:, 0], t_x[:, 0], T[:, 0]
        )
    alive, died = _log_terms(r, alpha, s, beta, k, x, t_x, T)
    return special.expit(alive - died)


def _p_alive_by_pairs(draws: np.ndarray, x, t_x, T) -> np.ndarray:
    """``p_alive`` of the customers ``(x, t_x, T)`` (rows) at each of ``draws`` (rows of ``(r,
    alpha, s, beta, k)``; the columns of the result): the integral over ``(t_x, T]`` as the
    difference of the integrals from ``t_x`` and from ``T`` to the latest ``T``, each once per
    distinct pair (the integral from ``T`` on is at most the alive term, so the difference
    rounds no worse than the whole)."""
    f = factor(x, t_x, T, np.ones(len(x)))
    pairs = (f["pair_x"], f["pair_start"], float(f["end"]), NODES, WEIGHTS, SPLIT)
    out = np.empty((len(x), len(draws)))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for d, theta in enumerate(draws):
            r, alpha, s, beta, k = theta
            logs = weibull_kernel.integrals(np.ascontiguousarray(theta), *pairs)[0]
            since, after = logs[f["from_index"]], logs[f["to_index"]]
            alive = _log_alive(r, alpha, s, beta, k, x, T)
            top = np.maximum(alive, since)  # as the likelihood's rows are put together
            share = np.exp(alive - top)
            out[:, d] = share / (share + np.exp(since - top) - np.exp(after - top))
    return out


def expected_purchases_if_alive(params: Mapping[str, ArrayLike], t, x, T) -> np.ndarray:
    """Expected purchases in ``(T, T+t]`` of a customer alive at ``T`` with ``x`` repeats: the
    rate ~ Gamma(r+x, alpha+T) times the expected time alive, ``(r+x)/(alpha+T) int S``."""
    r, alpha, s, beta, k = param_arrays(params, PARAM_NAMES)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    return (r + x) / (alpha + T) * survival_integral(s, beta, k, T, t)


def p_no_purchase_if_alive(params: Mapping[str, ArrayLike], t, x, T) -> np.ndarray:
    """Probability of no purchase in ``(T, T+t]`` for a customer alive at ``T`` (the rate ~
    Gamma(r+x, alpha+T)): alive and quiet through it, or died at ``u`` after a quiet wait,
    ``(alpha+T)^c / S(T) int_T^(T+t) (alpha+u)^-c f(u) du``."""
    r, alpha, s, beta, k = param_arrays(params, PARAM_NAMES)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    c, at_T = r + x, _log_s(T, s, beta, k)
    died = c * np.log(alpha + T) - at_T + _log_died(c, T, T + t, alpha, s, beta, k)
    lived = _log_s(T + t, s, beta, k) - at_T + c * (np.log(alpha + T) - np.log(alpha + T + t))
    return np.exp(died) + np.exp(lived)


# --------------------------------------------------------------------------- the process
def draw_dropout(
    params: Mapping[str, float], n: int, rng: np.random.Generator, shift: ArrayLike = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``n`` customers' hazard scale ``eta ~ Gamma(s, beta exp(-shift))`` and Weibull
    lifetime ``(E / eta)^(1/k)``, ``E ~ Exp(1)``."""
    eta = rng.gamma(params["s"], 1.0 / params["beta"], n) * np.exp(shift)
    return eta, (rng.exponential(1.0, n) / eta) ** (1.0 / params["k"])


def lifetime(params: Mapping[str, float], shift: ArrayLike) -> LogAndHazard:
    """The lifetime with ``eta`` integrated out: log-survival and hazard at age ``d``."""
    s, beta, k = params["s"], params["beta"] * np.exp(-shift), params["k"]

    def log_survival(d: np.ndarray) -> np.ndarray:
        return _log_s(d, s, beta, k)

    def hazard(d: np.ndarray) -> np.ndarray:
        return s * k * d ** (k - 1) / (beta + d**k)

    return log_survival, hazard


WEIBULL_NBD = PurchaseModel(
    name="weibull_nbd",
    param_names=PARAM_NAMES,
    build=build_model,
    p_alive=p_alive,
    expected_purchases=expected_purchases,
    expected_purchases_if_alive=expected_purchases_if_alive,
    p_no_purchase_if_alive=p_no_purchase_if_alive,
    scaled=("alpha", "beta"),
    loglik_rows=loglik_pytensor,
    factored=None,
    # CDNOW's Pareto/NBD purchases, lifetimes on a like scale that wear out (k = 1.5)
    simulation_params=(("r", 0.553), ("alpha", 10.578), ("s", 0.606), ("beta", 40.0), ("k", 1.5)),
    draw_dropout=draw_dropout,
    drop_after_purchase=None,
    lifetime=lifetime,
    purchase_dropout=no_purchase_dropout,
)
