"""BG/NBD whose customers also wear out: dropout at a purchase and a lifetime that ages.

A customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)`` and leaves in whichever way
comes first:

- right after a repeat purchase, with probability ``p ~ Beta(a, b)`` (BG/NBD, Fader, Hardie &
  Lee 2005): customers who stop buying after a burst;
- at the end of a lifetime that is Weibull/NBD's (:mod:`models.btyd.weibull_nbd`), ``S(t) =
  (beta / (beta + t^k))^s`` over the population: with ``k > 1`` the hazard of leaving grows with
  age, which BG/NBD's dropout at purchases cannot express (a quiet old customer there is as
  likely to be alive as a quiet young one).

The three latent quantities are independent, so with ``C = G(r+x) alpha^r / G(r)`` and the
Weibull/NBD likelihood ``L_W(x, t_x, T)``,

``L = B(a, b+x)/B(a, b) L_W(x, t_x, T) + 1{x>0} B(a+1, b+x-1)/B(a, b) C (alpha+t_x)^-(r+x) S(t_x)``

(never dropped at a purchase and alive or dead by the lifetime as Weibull/NBD has it, or
dropped right after the last purchase while the lifetime still ran). As the lifetime grows
without end (``beta -> inf``) it is BG/NBD, which the tests check. MAP fits and NUTS use
Weibull/NBD's fused numba pass for ``L_W`` and its gradient, and add the dropout term.

Forecasts of a customer alive at ``T`` with ``x`` repeats, ``lambda ~ Gamma(r+x, alpha+T)``,
``p ~ Beta(a, b+x)`` and the lifetime past ``T``:

- expected purchases in ``(T, T+t]``: ``int_0^t E[lambda exp(-lambda p u)] S(T+u)/S(T) du``
  (a purchase at ``u`` needs no earlier dropout, ``exp(-lambda p u)``, and the lifetime), the
  expectation over ``lambda`` and ``p`` a Gauss hypergeometric function, the integral
  Gauss-Legendre quadrature;
- no purchase: the dropout at a purchase needs a purchase, so it is Weibull/NBD's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from numpy.typing import ArrayLike
from scipy import special

from models.btyd import bgnbd, weibull_nbd
from models.btyd.common import (
    BuiltModel,
    FactoredLoglik,
    LogAndHazard,
    PurchaseModel,
    param_arrays,
    per_row_model,
)
from models.btyd.priors import Priors

PARAM_NAMES: tuple[str, ...] = ("r", "alpha", "a", "b", "s", "beta", "k")


def _log_dropped(r, alpha, a, b, s, beta, k, x, x1, t_x, log=np.log, betaln=special.betaln):
    """log of the dropped-at-the-last-purchase term without ``C``, for ``x > 0``; ``x1``:
    ``x`` with its zeros made 1, the finite value the callers mask."""
    coin = betaln(a + 1, b + x1 - 1) - betaln(a, b)
    return coin - (r + x) * log(alpha + t_x) + s * (log(beta) - log(beta + t_x**k))


def _dropped_if_bought(r, alpha, a, b, s, beta, k, x, t_x):
    """:func:`_log_dropped` where ``x > 0``, ``-inf`` elsewhere; with the mask and ``x`` and
    ``t_x`` as its finite arithmetic took them (the others' made 1), which its derivatives
    need too."""
    buyer = x > 0
    x1, t_x1 = np.where(buyer, x, 1.0), np.where(buyer, t_x, 1.0)
    dropped = _log_dropped(r, alpha, a, b, s, beta, k, x, x1, t_x1)
    return np.where(buyer, dropped, -np.inf), buyer, x1, t_x1


def _betaln_pt(a, b):
    return pt.gammaln(a) + pt.gammaln(b) - pt.gammaln(a + b)


def loglik_pytensor(r, alpha, a, b, s, beta, k, x, t_x, T) -> pt.TensorVariable:
    """Per-row log-likelihood as a pytensor expression; parameters may be per-row vectors."""
    x, t_x = pt.as_tensor_variable(x), pt.as_tensor_variable(t_x)
    lifetime = weibull_nbd.loglik_pytensor(r, alpha, s, beta, k, x, t_x, T)
    kept = _betaln_pt(a, b + x) - _betaln_pt(a, b) + lifetime
    const = pt.gammaln(r + x) - pt.gammaln(r) + r * pt.log(alpha)
    x1, t_x1 = pt.maximum(x, 1.0), pt.maximum(t_x, 1e-9)
    dropped = const + _log_dropped(r, alpha, a, b, s, beta, k, x, x1, t_x1, pt.log, _betaln_pt)
    return pt.switch(pt.gt(x, 0), pt.logaddexp(kept, dropped), kept)


def _terms(params: Mapping[str, ArrayLike], x, t_x, T) -> tuple[np.ndarray, ...]:
    """log of (never dropped, alive at ``T``), (never dropped, died of the lifetime in ``(t_x,
    T]``) and (dropped at the last purchase), each without ``C``."""
    r, alpha, a, b, s, beta, k = param_arrays(params, PARAM_NAMES)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    kept = special.betaln(a, b + x) - special.betaln(a, b)
    alive, died = weibull_nbd._log_terms(r, alpha, s, beta, k, x, t_x, T)
    dropped = _dropped_if_bought(r, alpha, a, b, s, beta, k, x, t_x)[0]
    return kept + alive, kept + died, dropped


def loglik_numpy(params: Mapping[str, ArrayLike], x, t_x, T) -> np.ndarray:
    """Per-row log-likelihood in numpy."""
    r, alpha = param_arrays(params, ("r", "alpha"))
    x = np.asarray(x, dtype=float)
    const = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    return const + np.logaddexp.reduce(np.stack(np.broadcast_arrays(*_terms(params, x, t_x, T))))


def loglik_and_grad(theta: np.ndarray, f: Mapping[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """The weighted log-likelihood at ``theta = (r, alpha, a, b, s, beta, k)`` of the rows
    :func:`models.btyd.weibull_nbd.factor` prepared, and its exact gradient: Weibull/NBD's
    fused passes for the lifetime part, the dropout terms beside it. The never-dropped term
    depends on a row through ``x`` and the dropped one through ``(x, t_x)``, so their special
    functions run once per distinct ``x`` and pair, and their derivatives are weighted by the
    rows' summed shares per ``x`` and pair (a million customers hold a few thousand pairs)."""
    theta = np.asarray(theta, dtype=float)
    if not np.all(np.isfinite(theta) & (theta > 0)):  # a search's step past the float range
        return -np.inf, np.zeros(len(theta))
    r, alpha, a, b, s, beta, k = theta
    w = f["w"]
    lifetime, d_lifetime = weibull_nbd.lifetime_rows(np.array([r, alpha, s, beta, k]), f)
    xs, x_index = f["x_levels"], f["x_index"]
    px, pt_x, pair_index = f["pair_x"], f["pair_start"], f["from_index"]
    with np.errstate(all="ignore"):  # overflowing corners of a search: -inf or nan rows
        psi = special.digamma
        ab = psi(a + b)
        kept_x = special.betaln(a, b + xs) - special.betaln(a, b)
        d_kept_x = np.stack([ab - psi(a + b + xs), psi(b + xs) - psi(a + b + xs) - psi(b) + ab])
        # the dropped term and its derivatives on the pairs; a pair with x = 0 has none
        dropped, buyer, x1, t_x1 = _dropped_if_bought(r, alpha, a, b, s, beta, k, px, pt_x)
        dropped = dropped + (special.gammaln(r + px) - special.gammaln(r) + r * np.log(alpha))
        tk = t_x1**k
        tk_log_t = special.xlogy(tk, tk) / k  # t^k log t, 0 at t = 0 (repeats on day one)
        d_dropped = np.stack(
            [
                psi(r + px) - psi(r) + np.log(alpha) - np.log(alpha + pt_x),
                r / alpha - (r + px) / (alpha + pt_x),
                psi(a + 1) - psi(a + b + px) - psi(a) + ab,
                psi(b + x1 - 1) - psi(a + b + px) - psi(b) + ab,
                np.log(beta) - np.log(beta + tk),
                s / beta - s / (beta + tk),
                -s * tk_log_t / (beta + tk),
            ]
        )
        d_dropped[:, ~buyer] = 0.0
        # the rows: logaddexp of the two, and how much of each row's likelihood each holds
        row_dropped = dropped[pair_index]
        rows = np.logaddexp(kept_x[x_index] + lifetime, row_dropped)
        share = np.exp(row_dropped - rows)  # the dropped term's share of the row
        w_keep, w_share = w * (1.0 - share), w * share
        grad = np.zeros(len(PARAM_NAMES))
        # summed without BLAS: its threads spin after a product, on the cores the next pass needs
        grad[[0, 1, 4, 5, 6]] = np.einsum("pn,n->p", d_lifetime, w_keep)
        grad[[2, 3]] = np.einsum("pk,k->p", d_kept_x, np.bincount(x_index, w_keep, len(xs)))
        grad += np.einsum("pk,k->p", d_dropped, np.bincount(pair_index, w_share, len(px)))
    return float(np.einsum("n,n->", w, rows)), grad


FACTORED = FactoredLoglik(weibull_nbd.factor, loglik_and_grad)


def build_model(
    data: pd.DataFrame,
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
) -> BuiltModel:
    """PyMC model of the parameters given customer summaries (``frequency``, ``recency``,
    ``T``); identical rows collapsed with weights unless ``weights`` are given."""
    return per_row_model(
        PARAM_NAMES,
        loglik_pytensor,
        data,
        priors,
        weights,
        collapse,
        FACTORED,
        (weibull_nbd.ageing_start(data),),
    )


# --------------------------------------------------------------------------- predictions
def p_alive(params: Mapping[str, ArrayLike], x, t_x, T) -> np.ndarray:
    """Probability of being alive at ``T``: the likelihood's alive term over the whole."""
    alive, died, dropped = _terms(params, x, t_x, T)
    return np.exp(alive - np.logaddexp(alive, np.logaddexp(died, dropped)))


def expected_purchases_if_alive(params: Mapping[str, ArrayLike], t, x, T) -> np.ndarray:
    """Expected purchases in ``(T, T+t]`` of a customer alive at ``T`` with ``x`` repeats:
    ``(r+x)/(alpha+T) int_0^t 2F1(r+x+1, a; a+b+x; -u/(alpha+T)) S(T+u)/S(T) du``, the
    hypergeometric function being ``E[(1 + p u/(alpha+T))^-(r+x+1)]`` over ``p ~ Beta(a,
    b+x)``, integrated as Weibull/NBD integrates the time alive."""
    r, alpha, a, b, s, beta, k = param_arrays(params, PARAM_NAMES)
    t, x, T = (np.asarray(v, dtype=float) for v in (t, x, T))
    c, scale = r + x, alpha + T

    def rate(u: np.ndarray) -> np.ndarray:  # E[(1 + p u/(alpha+T))^-(c+1)], p ~ Beta(a, b+x)
        return special.hyp2f1(c + 1, a, a + b + x, -u / scale)

    return c / scale * weibull_nbd.survival_integral(s, beta, k, T, t, rate)


def expected_purchases(params: Mapping[str, ArrayLike], t: ArrayLike) -> np.ndarray:
    """Unconditional ``E[X(t)]`` of a customer who just made a first purchase."""
    return expected_purchases_if_alive(params, t, 0.0, 0.0)


def p_no_purchase_if_alive(params: Mapping[str, ArrayLike], t, x, T) -> np.ndarray:
    """Probability of no purchase in ``(T, T+t]`` of a customer alive at ``T``: Weibull/NBD's
    (leaving at a purchase needs one)."""
    return weibull_nbd.p_no_purchase_if_alive(params, t, x, T)


# --------------------------------------------------------------------------- the process
def draw_dropout(
    params: Mapping[str, float], n: int, rng: np.random.Generator, shift: ArrayLike = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``n`` customers' dropout probability at a purchase ``p ~ Beta(a, b
    exp(-shift))`` (the covariates' dropout shift) and Weibull/NBD lifetime."""
    dropout, _ = bgnbd.draw_dropout(params, n, rng, shift)
    _, lifetime = weibull_nbd.draw_dropout(params, n, rng)
    return dropout, lifetime


def lifetime(params: Mapping[str, float], shift: ArrayLike) -> LogAndHazard:
    """The lifetime with its scale integrated out (the covariates shift the dropout at a
    purchase, not the lifetime)."""
    return weibull_nbd.lifetime(params, 0.0)


BGNBD_WEIBULL = PurchaseModel(
    name="bgnbd_weibull",
    param_names=PARAM_NAMES,
    build=build_model,
    p_alive=p_alive,
    expected_purchases=expected_purchases,
    expected_purchases_if_alive=expected_purchases_if_alive,
    p_no_purchase_if_alive=p_no_purchase_if_alive,
    scaled=("alpha", "b"),
    loglik_rows=loglik_pytensor,
    factored=None,
    # CDNOW's BG/NBD purchases and dropout, with lifetimes whose hazard grows with age (k = 2,
    # half the customers gone by 60 weeks of age on the lifetime alone)
    simulation_params=(
        ("r", 0.243),
        ("alpha", 4.414),
        ("a", 0.793),
        ("b", 2.426),
        ("s", 1.0),
        ("beta", 3600.0),
        ("k", 2.0),
    ),
    draw_dropout=draw_dropout,
    drop_after_purchase=bgnbd.drop_after_purchase,
    lifetime=lifetime,
    purchase_dropout=bgnbd.purchase_dropout,
    without_lifetime="bgnbd",
)
