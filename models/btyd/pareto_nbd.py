"""Pareto/NBD model (Schmittlein, Morrison & Colombo 1987).

While alive a customer buys as a Poisson process with rate ``lambda ~ Gamma(r, alpha)``; the
unobserved lifetime is exponential with rate ``mu ~ Gamma(s, beta)``. A customer is summarised
by ``x`` (repeat transactions = ``frequency``), ``t_x`` (``recency``) and ``T`` (age).

The likelihood (Fader & Hardie 2005, "A Note on Deriving the Pareto/NBD Model and Related
Expressions", eq. for L(r, alpha, s, beta | x, t_x, T)) is

``L = G(r+x) alpha^r beta^s / G(r) [ (alpha+T)^-(r+x) (beta+T)^-s + s/(r+s+x) A0 ]``

where, with ``m = max(alpha, beta)``, ``d = |alpha - beta|`` and ``b2 = s+1`` if
``alpha >= beta`` else ``r+x``,

``A0 = 2F1(r+s+x, b2; r+s+x+1; d/(m+t_x)) / (m+t_x)^(r+s+x)
- 2F1(r+s+x, b2; r+s+x+1; d/(m+T)) / (m+T)^(r+s+x)``.

Choosing the larger of ``alpha, beta`` keeps the argument of the Gaussian hypergeometric
function in ``[0, 1)`` (and small when ``alpha ~ beta``), where the series converges quickly;
everything is combined in log space (``logaddexp``, ``log1mexp``).

Parameters are passed as a mapping with keys ``r, alpha, s, beta`` whose values broadcast
against the customer arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from scipy import special

from models.btyd import weibull_nbd
from models.btyd.common import (
    BuiltModel,
    FactoredLoglik,
    LogAndHazard,
    PurchaseModel,
    no_purchase_dropout,
    param_arrays,
    per_row_model,
)
from models.btyd.priors import Priors

PARAM_NAMES: tuple[str, str, str, str] = ("r", "alpha", "s", "beta")


# --------------------------------------------------------------------------- likelihood
def loglik_pytensor(
    r: pt.TensorLike,
    alpha: pt.TensorLike,
    s: pt.TensorLike,
    beta: pt.TensorLike,
    x: pt.TensorLike,
    t_x: pt.TensorLike,
    T: pt.TensorLike,
) -> pt.TensorVariable:
    """Per-row Pareto/NBD log-likelihood as a pytensor expression (see module docstring)."""
    x = pt.as_tensor_variable(x)
    t_x = pt.as_tensor_variable(t_x)
    T = pt.as_tensor_variable(T)
    rho = r + s + x
    a_ge_b = pt.ge(alpha, beta)
    m = pt.maximum(alpha, beta)
    d = pt.abs(alpha - beta)
    b2 = pt.switch(a_ge_b, s + 1.0, r + x)
    log_f1 = pt.log(pt.hyp2f1(rho, b2, rho + 1.0, d / (m + t_x))) - rho * pt.log(m + t_x)
    log_f2 = pt.log(pt.hyp2f1(rho, b2, rho + 1.0, d / (m + T))) - rho * pt.log(m + T)
    has_gap = pt.lt(t_x, T)
    delta = pt.switch(has_gap, log_f2 - log_f1, -1.0)  # safe value where t_x == T
    log_a0 = log_f1 + pt.log1mexp(delta)
    log_first = -(r + x) * pt.log(alpha + T) - s * pt.log(beta + T)
    log_second = pt.log(s) - pt.log(rho) + log_a0
    const = pt.gammaln(r + x) - pt.gammaln(r) + r * pt.log(alpha) + s * pt.log(beta)
    return const + pt.switch(has_gap, pt.logaddexp(log_first, log_second), log_first)


def _log_terms(
    r: np.ndarray, alpha: np.ndarray, s: np.ndarray, beta: np.ndarray, x, t_x, T
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(const, log_first, log_second)`` of the likelihood; ``log_second = -inf`` if t_x == T."""
    rho = r + s + x
    a_ge_b = alpha >= beta
    m = np.maximum(alpha, beta)
    d = np.abs(alpha - beta)
    b2 = np.where(a_ge_b, s + 1.0, r + x)
    log_f1 = np.log(special.hyp2f1(rho, b2, rho + 1.0, d / (m + t_x))) - rho * np.log(m + t_x)
    log_f2 = np.log(special.hyp2f1(rho, b2, rho + 1.0, d / (m + T))) - rho * np.log(m + T)
    has_gap = t_x < T
    delta = np.where(has_gap, log_f2 - log_f1, -1.0)
    log_a0 = np.where(has_gap, log_f1 + _log1mexp(delta), -np.inf)
    log_first = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    log_second = np.log(s) - np.log(rho) + log_a0
    const = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    return const, log_first, log_second


def _log1mexp(v: np.ndarray) -> np.ndarray:
    """``log(1 - exp(v))`` for ``v <= 0``, accurate near 0 and for very negative ``v``."""
    v = np.asarray(v, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(v > -np.log(2.0), np.log(-np.expm1(v)), np.log1p(-np.exp(v)))


def loglik_numpy(
    params: Mapping[str, ArrayLike], x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Per-row Pareto/NBD log-likelihood in numpy/scipy (``scipy.special.hyp2f1``)."""
    r, alpha, s, beta = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    const, log_first, log_second = _log_terms(r, alpha, s, beta, x, t_x, T)
    return const + np.logaddexp(log_first, log_second)


def build_model(
    data: pd.DataFrame,
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
) -> BuiltModel:
    """PyMC model for the Pareto/NBD parameters given customer summaries.

    Parameters
    ----------
    data : pandas.DataFrame
        Columns ``frequency``, ``recency``, ``T``.
    priors : Priors, optional
        Defaults to ``Priors()`` (weakly informative).
    weights : array-like, optional
        Row multiplicities; when omitted identical rows are collapsed (``collapse=True``).
    collapse : bool
        Collapse identical rows when ``weights`` is not given.

    Returns
    -------
    BuiltModel
        The PyMC model (free variables ``log_<name>``, deterministics ``r, alpha, s, beta``,
        the weighted log-likelihood as the potential ``"loglik"``) and its numpy log density
        (:data:`FACTORED`), which MAP and NUTS use.
    """
    return per_row_model(PARAM_NAMES, loglik_pytensor, data, priors, weights, collapse, FACTORED)


def loglik_and_grad(theta: np.ndarray, f: Mapping[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """The weighted log-likelihood at ``theta = (r, alpha, s, beta)`` of the rows
    :func:`models.btyd.weibull_nbd.factor` prepared, and its gradient: Weibull/NBD's at ``k =
    1``, which is Pareto/NBD (its quadrature of the dropout integral, differentiated exactly;
    the closed form's derivatives in the Gauss hypergeometric function's parameters have no
    closed form)."""
    value, grad = weibull_nbd.loglik_and_grad(np.append(theta, 1.0), f)
    return value, grad[:4]


FACTORED = FactoredLoglik(weibull_nbd.factor, loglik_and_grad)


# --------------------------------------------------------------------------- predictions
def _survival_integral(s: np.ndarray, beta: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``[1 - (beta/(beta+t))^(s-1)] / (s-1)`` (limit ``log(1+t/beta)`` at ``s = 1``)."""
    log_ratio = np.log1p(t / beta)
    sm1 = s - 1.0
    near_one = np.abs(sm1) < 1e-10
    safe = np.where(near_one, 1.0, sm1)
    return np.where(near_one, log_ratio, -np.expm1(-safe * log_ratio) / safe)


def expected_purchases(params: Mapping[str, ArrayLike], t: ArrayLike) -> np.ndarray:
    """Unconditional ``E[X(t)] = r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)]``."""
    r, alpha, s, beta = param_arrays(params, PARAM_NAMES)
    t = np.asarray(t, dtype=float)
    return r * beta / alpha * _survival_integral(s, beta, t)


def p_alive(
    params: Mapping[str, ArrayLike], x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Probability of being alive at ``T``: ``first / (first + s/(r+s+x) A0)`` of the likelihood."""
    r, alpha, s, beta = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    _, log_first, log_second = _log_terms(r, alpha, s, beta, x, t_x, T)
    return special.expit(log_first - log_second)


def expected_purchases_if_alive(
    params: Mapping[str, ArrayLike], t: ArrayLike, x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Expected transactions in ``(T, T+t]`` of a customer alive at ``T`` with ``x`` repeats.

    ``(r+x)(beta+T) / ((alpha+T)(s-1)) [1 - ((beta+T)/(beta+T+t))^(s-1)]``.
    """
    r, alpha, s, beta = param_arrays(params, PARAM_NAMES)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    return (r + x) * (beta + T) / (alpha + T) * _survival_integral(s, beta + T, t)


def p_no_purchase_if_alive(
    params: Mapping[str, ArrayLike], t: ArrayLike, x: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Probability of zero transactions in ``(T, T+t]`` for a customer alive at ``T``.

    Given alive at ``T``, ``lambda ~ Gamma(r', alpha')`` and ``mu ~ Gamma(s', beta')``
    independently with ``r' = r+x, alpha' = alpha+T, s' = s, beta' = beta+T``. With residual
    lifetime ``tau ~ Exp(mu)`` the customer buys nothing in ``(T, T+t]`` with probability
    ``E[exp(-lambda min(tau, t))] = 1 - int_0^t lambda exp(-(lambda+mu) u) du``; averaging
    over the posterior,

    ``P(Y=0 | alive) = 1 - r' alpha'^r' beta'^s' J``,
    ``J = int_0^t (alpha'+u)^-(r'+1) (beta'+u)^-s' du``,

    which with ``rho = r'+s'`` and ``alpha' >= beta'`` (``d = alpha'-beta'``) is
    ``J = [alpha'^-rho 2F1(rho, s'; rho+1; d/alpha')
    - (alpha'+t)^-rho 2F1(rho, s'; rho+1; d/(alpha'+t))] / rho``
    (for ``alpha' < beta'`` swap to ``beta'`` and use ``r'+1`` as second parameter).
    """
    r, alpha, s, beta = param_arrays(params, PARAM_NAMES)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    rp, ap, sp, bp = r + x, alpha + T, s, beta + T
    rho = rp + sp
    a_ge_b = ap >= bp
    m = np.maximum(ap, bp)
    d = np.abs(ap - bp)
    b2 = np.where(a_ge_b, sp, rp + 1.0)
    log_h0 = np.log(special.hyp2f1(rho, b2, rho + 1.0, d / m))
    log_ht = np.log(special.hyp2f1(rho, b2, rho + 1.0, d / (m + t)))
    log_q = -rho * np.log1p(t / m)  # log (m/(m+t))^rho
    with np.errstate(divide="ignore"):
        log_bracket = log_h0 + _log1mexp(np.minimum(log_q + log_ht - log_h0, 0.0))
    log_j = -np.log(rho) - rho * np.log(m) + log_bracket
    return 1.0 - np.exp(np.log(rp) + rp * np.log(ap) + sp * np.log(bp) + log_j)


# --------------------------------------------------------------------------- the process
def draw_dropout(
    params: Mapping[str, float], n: int, rng: np.random.Generator, shift: ArrayLike = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``n`` customers' dropout rate ``mu ~ Gamma(s, beta)`` times ``exp(shift)`` (i.e.
    ``beta exp(-shift)``, as covariates scale it) and lifetime ``~ Exp(mu)``."""
    mu = rng.gamma(params["s"], 1.0 / params["beta"], n) * np.exp(shift)
    return mu, rng.exponential(1.0 / mu)


def lifetime(params: Mapping[str, float], shift: ArrayLike) -> LogAndHazard:
    """The lifetime with ``mu ~ Gamma(s, beta exp(-shift))`` integrated out: log-survival
    ``s log(beta / (beta + d))`` and hazard ``s / (beta + d)`` at age ``d``."""
    s, beta = params["s"], params["beta"] * np.exp(-shift)

    def log_survival(d: np.ndarray) -> np.ndarray:
        return s * (np.log(beta) - np.log(beta + d))

    def hazard(d: np.ndarray) -> np.ndarray:
        return s / (beta + d)

    return log_survival, hazard


PARETO_NBD = PurchaseModel(
    name="pareto_nbd",
    param_names=PARAM_NAMES,
    build=build_model,
    p_alive=p_alive,
    expected_purchases=expected_purchases,
    expected_purchases_if_alive=expected_purchases_if_alive,
    p_no_purchase_if_alive=p_no_purchase_if_alive,
    scaled=("alpha", "beta"),
    loglik_rows=loglik_pytensor,
    factored=None,
    simulation_params=(("r", 0.553), ("alpha", 10.578), ("s", 0.606), ("beta", 11.669)),
    draw_dropout=draw_dropout,
    drop_after_purchase=None,
    lifetime=lifetime,
    purchase_dropout=no_purchase_dropout,
)
