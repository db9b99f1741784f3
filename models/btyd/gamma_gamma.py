"""Gamma-Gamma model of monetary value (Fader, Hardie & Lee 2005; Fader & Hardie note 025).

Individual transaction values are ``Gamma(p, nu)`` with ``nu ~ Gamma(q, gamma)``. A customer with
``x`` repeat transactions of mean value ``mbar`` (``frequency``, ``monetary_value``) contributes
the density of the mean,

``f(mbar | x) = G(px+q) / (G(px) G(q)) gamma^q mbar^(px-1) x^(px) / (gamma + x mbar)^(px+q)``.

Only customers with ``x > 0`` carry information; the model assumes spend is independent of the
transaction process. Parameters are a mapping with keys ``p, q, gamma``.
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
    levels,
    model_data,
    param_arrays,
    weighted_model,
    weighted_rows,
)
from models.btyd.kernels import log_shift_sums, log_shift_sums_kernel
from models.btyd.priors import Priors
from models.btyd.sufficient import SPEND_COLUMNS

PARAM_NAMES: tuple[str, str, str] = ("p", "q", "gamma")


def factor(x: np.ndarray, mbar: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted repeat-buyer rows → the arrays of :func:`total_loglik_pytensor` and
    :func:`loglik_and_grad`."""
    xs, ix = levels(x)
    log_m = np.log(mbar)
    return {
        "x_levels": xs,
        "weight_by_x": np.bincount(ix, weights=w),
        "total_spend": x * mbar,
        "weighted_x": w * x,
        "weight": w,
        "weighted_x_log_mean": np.dot(w * x, log_m),
        "weighted_log_mean": np.dot(w, log_m),
    }


def total_loglik_pytensor(
    p: pt.TensorLike,
    q: pt.TensorLike,
    gamma: pt.TensorLike,
    x: np.ndarray,
    mbar: np.ndarray,
    w: np.ndarray,
) -> pt.TensorVariable:
    """``sum_i w_i log f(mbar_i | x_i)``, the same value as :func:`loglik_numpy` summed, factored.

    The log-gammas and ``px ln x`` are evaluated per distinct ``x``, ``sum w (px-1) ln mbar``
    reduces to two data constants, and the ``ln(gamma + x mbar)`` sums, one log per row, are one
    fused pass (:func:`models.loglik_ops.log_shift_sums_kernel`). Must run inside a model.
    """
    gl = pt.gammaln
    xs, w_x, total, w_x_row, w_row, sum_x_log_m, sum_log_m = model_data(**factor(x, mbar, w))
    px = p * xs
    per_x = gl(px + q) - gl(px) - gl(q) + q * pt.log(gamma) + px * pt.log(xs)
    by_x, by_row = log_shift_sums(gamma, total, w_x_row, w_row)[:2]
    return pt.dot(w_x, per_x) + p * sum_x_log_m - sum_log_m - p * by_x - q * by_row


def loglik_and_grad(theta: np.ndarray, f: Mapping[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """:func:`total_loglik_pytensor` and its gradient in ``(p, q, gamma)``, in numpy."""
    p, q, gamma = theta
    xs, w_x = f["x_levels"], f["weight_by_x"]
    gl, dg = special.gammaln, special.digamma
    px = p * xs
    by_x, by_row, d_by_x, d_by_row = log_shift_sums_kernel(
        gamma, f["total_spend"], f["weighted_x"], f["weight"]
    )
    per_x = gl(px + q) - gl(px) - gl(q) + q * np.log(gamma) + px * np.log(xs)
    value = w_x @ per_x + p * f["weighted_x_log_mean"] - f["weighted_log_mean"]
    value -= p * by_x + q * by_row
    grad = np.array(
        [
            w_x @ (xs * (dg(px + q) - dg(px) + np.log(xs))) + f["weighted_x_log_mean"] - by_x,
            w_x @ (dg(px + q) - dg(q) + np.log(gamma)) - by_row,
            w_x.sum() * q / gamma - p * d_by_x - q * d_by_row,
        ]
    )
    return float(value), grad


def loglik_numpy(params: Mapping[str, ArrayLike], x: ArrayLike, mbar: ArrayLike) -> np.ndarray:
    """Per-row Gamma-Gamma log-likelihood in numpy/scipy (the per-row formula)."""
    p, q, gamma = param_arrays(params, PARAM_NAMES)
    x, mbar = (np.asarray(v, dtype=float) for v in (x, mbar))
    px = p * x
    return (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(gamma)
        + (px - 1.0) * np.log(mbar)
        + px * np.log(x)
        - (px + q) * np.log(gamma + x * mbar)
    )


def repeaters(data: pd.DataFrame) -> pd.DataFrame:
    """Rows with ``frequency > 0`` and positive ``monetary_value`` (the Gamma-Gamma sample)."""
    keep = (data["frequency"] > 0) & (data["monetary_value"] > 0)
    return data.loc[keep]


def build_model(
    data: pd.DataFrame,
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
) -> BuiltModel:
    """PyMC model for the Gamma-Gamma parameters.

    Parameters
    ----------
    data : pandas.DataFrame
        Columns ``frequency`` and ``monetary_value``. Rows with ``frequency == 0`` or
        non-positive ``monetary_value`` are dropped (only when ``weights`` is not given;
        with explicit weights all rows must be repeaters).
    priors : Priors, optional
        Defaults to ``Priors()`` (weakly informative).
    weights : array-like, optional
        Row multiplicities; when omitted identical rows are collapsed (``collapse=True``).
    collapse : bool
        Collapse identical rows when ``weights`` is not given.

    Returns
    -------
    BuiltModel
        The PyMC model (free variables ``log_<name>``, deterministics ``p, q, gamma``,
        the weighted log-likelihood as the potential ``"loglik"``) and its numpy log density.
    """
    priors = priors or Priors()
    if weights is None:
        data = repeaters(data)
    rows, w = weighted_rows(data, SPEND_COLUMNS, weights, collapse)
    x = rows["frequency"].to_numpy(dtype=float)
    mbar = rows["monetary_value"].to_numpy(dtype=float)
    if np.any(x <= 0) or np.any(mbar <= 0):
        raise ValueError("Gamma-Gamma needs frequency > 0 and monetary_value > 0 on every row")
    f = factor(x, mbar, w)
    return weighted_model(
        PARAM_NAMES,
        priors,
        lambda *p: total_loglik_pytensor(*p, x, mbar, w),
        lambda theta: loglik_and_grad(theta, f),
    )


def spend_coefficients(
    params: Mapping[str, ArrayLike], x: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """``E[Z | x, mbar] = intercept + slope * mbar`` with ``intercept = p gamma / (p x + q - 1)``
    and ``slope = p x / (p x + q - 1)``: linear in the observed mean spend."""
    p, q, gamma = param_arrays(params, PARAM_NAMES)
    x = np.asarray(x, dtype=float)
    denominator = p * x + q - 1.0
    return p * gamma / denominator, p * x / denominator


def conditional_expected_spend(
    params: Mapping[str, ArrayLike], x: ArrayLike, mbar: ArrayLike
) -> np.ndarray:
    """Posterior mean transaction value ``E[Z | x, mbar] = p (gamma + x mbar) / (p x + q - 1)``.

    A weighted average of the population mean ``p gamma/(q-1)`` and the observed ``mbar``; for
    ``x = 0`` it equals the population mean (``mbar`` is ignored there; NaN is allowed).
    """
    x = np.asarray(x, dtype=float)
    intercept, slope = spend_coefficients(params, x)
    return intercept + slope * np.where(x > 0, np.asarray(mbar, dtype=float), 0.0)


def population_mean_spend(params: Mapping[str, ArrayLike]) -> np.ndarray:
    """Population mean transaction value ``E[Z] = p gamma / (q - 1)`` (finite for ``q > 1``)."""
    p, q, gamma = param_arrays(params, PARAM_NAMES)
    return p * gamma / (q - 1.0)
