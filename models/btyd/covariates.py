"""Time-invariant customer covariates in BG/NBD and Pareto/NBD.

Covariates scale the population parameters customer by customer, in CLVTools' form; which
parameters each model scales is its :attr:`~models.btyd.common.PurchaseModel.scaled`. With
``x_i`` a customer's covariate vector:

- purchases (both models): ``alpha_i = alpha exp(-gamma_trans' x_i)``; the purchase rate is
  ``Gamma(r, alpha_i)``, so a positive coefficient raises it by ``exp(gamma)``;
- dropout, Pareto/NBD: ``beta_i = beta exp(-gamma_life' x_i)``; the dropout rate is
  ``Gamma(s, beta_i)``, so a positive coefficient raises it by ``exp(gamma)``;
- dropout, BG/NBD: ``b_i = b exp(-gamma_life' x_i)``, ``a`` shared; the dropout probability is
  ``Beta(a, b_i)``, so a positive coefficient raises its mean ``a / (a + b_i)``. CLVTools
  scales ``a`` and ``b`` by the same ``exp(gamma_life' x_i)``, which leaves that mean unchanged
  and moves only the spread of ``p`` (docs/models.md says why cvm does not).

The coefficients are scalar parameters named ``trans_<covariate>`` and ``life_<covariate>`` (a
feature table's ``cov_`` prefix left out) with ``Normal(0, COEFFICIENT_SIGMA)`` priors (flat with
``Priors(kind="flat")``). Customers are collapsed on ``(x, t_x, T, covariates)``: with a few
binary covariates that multiplies the distinct rows by at most the number of covariate
combinations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import ArrayLike

from models.btyd.common import (
    BuiltModel,
    LogDensity,
    PurchaseModel,
    levels,
    log_prior,
    model_data,
    normal_logpdf,
    weighted_rows,
)
from models.btyd.priors import Priors
from models.btyd.sufficient import TRANSACTION_COLUMNS
from models.columns import COVARIATE_PREFIX as PREFIX

COEFFICIENT_SIGMA = 1.0  # a unit change of a covariate scaling a rate by e (2.7x) is 1 sigma
MAX_GROUPS = 256  # distinct covariate vectors up to which a model gets its grouped numpy density


def covariate_columns(frame: pd.DataFrame) -> tuple[str, ...]:
    """The covariate columns of a feature table (``cov_*``), in table order."""
    return tuple(c for c in frame.columns if str(c).startswith(PREFIX))


def coefficient_names(covariates: Sequence[str]) -> tuple[str, ...]:
    """``trans_<name>`` for every covariate, then ``life_<name>``."""
    short = [c.removeprefix(PREFIX) for c in covariates]
    return (*(f"trans_{c}" for c in short), *(f"life_{c}" for c in short))


def _shifts(params: Mapping, X, covariates: Sequence[str], dot) -> tuple:
    names = coefficient_names(covariates)
    k = len(covariates)
    return dot(X, names[:k]), dot(X, names[k:])


def individual_params(
    model: PurchaseModel, params: Mapping[str, ArrayLike], X: ArrayLike, covariates: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each customer's own model parameters (the closed forms take them as they are).

    ``X`` is ``(n, k)`` (parameters scalars: one set per customer) or ``(k,)`` (one customer;
    parameters may be arrays of draws).
    """
    X = np.asarray(X, dtype=float)

    def dot(X, names):
        return sum((np.asarray(params[n], float) * X[..., j] for j, n in enumerate(names)), 0.0)

    out = {n: np.asarray(params[n], dtype=float) for n in model.param_names}
    trans, life = _shifts(params, X, covariates, dot)
    rate, drop = model.scaled
    out[rate] = out[rate] * np.exp(-trans)
    out[drop] = out[drop] * np.exp(-life)
    return out


def _coefficient(priors: Priors, name: str) -> pt.TensorVariable:
    if priors.kind == "flat":
        return pm.Flat(name)
    return pm.Normal(name, mu=0.0, sigma=COEFFICIENT_SIGMA)


def build_model(
    model: PurchaseModel,
    data: pd.DataFrame,
    covariates: Sequence[str],
    priors: Priors | None = None,
    *,
    weights: ArrayLike | None = None,
    collapse: bool = True,
) -> BuiltModel:
    """PyMC model of the purchase ``model`` with covariates.

    ``data`` has ``frequency``, ``recency``, ``T`` and the ``covariates`` columns (numeric);
    rows identical in all of them are collapsed unless ``weights`` are given. Free variables:
    ``log_<name>`` of the positive parameters and the coefficients
    (:func:`coefficient_names`). A model with a numpy log-likelihood (``model.factored``, e.g.
    BG/NBD) also gets its numpy density per covariate group (:func:`grouped_density`), which
    MAP and NUTS use; the others (Pareto/NBD) run on the compiled model.
    """
    priors = priors or Priors()
    covariates = list(covariates)
    rows, w = weighted_rows(data, [*TRANSACTION_COLUMNS, *covariates], weights, collapse)
    values = rows[covariates].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError(f"covariates {covariates} have missing or infinite values")
    base = model.param_names
    coefs = coefficient_names(covariates)
    with pm.Model() as pymc_model:
        params = {n: priors.positive(n) for n in base}
        params |= {n: _coefficient(priors, n) for n in coefs}
        x, t_x, T, weight, X = model_data(
            x=rows["frequency"].to_numpy(dtype=float),
            t_x=rows["recency"].to_numpy(dtype=float),
            T=rows["T"].to_numpy(dtype=float),
            w=w,
            X=values,
        )

        def dot(X, names):
            return pt.dot(X, pt.stack([params[n] for n in names]))

        trans, life = _shifts(params, X, covariates, dot)
        per_row = dict(params)
        rate, drop = model.scaled
        per_row[rate] = params[rate] * pt.exp(-trans)
        per_row[drop] = params[drop] * pt.exp(-life)
        loglik = model.loglik_rows(*(per_row[n] for n in base), x, t_x, T)
        pm.Potential("loglik", pt.dot(weight, loglik))
    density = None
    if model.factored is not None:
        density = grouped_density(model, rows, w, values, coefs, priors)
    return BuiltModel(pymc_model, (*base, *coefs), density)


def grouped_density(
    model: PurchaseModel,
    rows: pd.DataFrame,
    w: np.ndarray,
    X: np.ndarray,
    coefs: Sequence[str],
    priors: Priors,
) -> LogDensity | None:
    """The log posterior of ``model`` (one with ``factored``, e.g. BG/NBD) with covariates in
    numpy, or ``None`` past :data:`MAX_GROUPS` distinct covariate vectors.

    Customers with the same covariates share their scaled parameters (``alpha_i`` and
    ``b_i``): the plain model's factored likelihood (``model.factored``, e.g.
    :func:`models.btyd.bgnbd.loglik_and_grad`) is evaluated once per group and summed, and the
    coefficients' gradients follow by the chain rule. Compiling the per-row graph instead
    costs a gradient proportional to the rows (80 ms at a million customers); this one costs
    what the plain model's does per group.
    """
    groups, index = levels(X, axis=0)
    if len(groups) > MAX_GROUPS:
        return None
    x, t_x, T = (rows[c].to_numpy(dtype=float) for c in TRANSACTION_COLUMNS)
    members = [index == g for g in range(len(groups))]
    factors = [model.factored.factor(x[m], t_x[m], T[m], w[m]) for m in members]
    base, k = model.param_names, X.shape[1]
    p = len(base)
    rate, drop = (base.index(n) for n in model.scaled)
    start, base_prior = log_prior(base, priors)
    coef_prior = normal_logpdf(np.zeros(2 * k), np.full(2 * k, COEFFICIENT_SIGMA))

    def evaluate(v: np.ndarray) -> tuple[float, np.ndarray, float]:
        u, trans, life = v[:p], v[p : p + k], v[p + k :]
        loglik, grad = 0.0, np.zeros(len(v))
        for g, f in zip(groups, factors, strict=True):
            shift = np.zeros(p)
            shift[rate], shift[drop] = g @ trans, g @ life
            theta = np.exp(u - shift)
            value, d_theta = model.factored.loglik_and_grad(theta, f)
            d_u = d_theta * theta  # in log(theta_g)
            loglik += value
            grad[:p] += d_u
            grad[p : p + k] -= d_u[rate] * g
            grad[p + k :] -= d_u[drop] * g
        if base_prior is None:
            return loglik, grad, loglik
        (base_value, d_base), (coef_value, d_coef) = base_prior(u), coef_prior(v[p:])
        return loglik + base_value + coef_value, grad + np.concatenate([d_base, d_coef]), loglik

    start = np.concatenate([start, np.zeros(2 * k)])
    return LogDensity((*base, *coefs), start, evaluate, unconstrained=tuple(coefs))


def build_purchase(
    model: PurchaseModel, data: pd.DataFrame, priors: Priors, covariates: Sequence[str] = ()
) -> BuiltModel:
    """The purchase model's PyMC model: the plain one without covariates."""
    if not covariates:
        return model.build(data, priors)
    return build_model(model, data, covariates, priors)
