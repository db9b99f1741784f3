"""Small helpers shared by the model modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import ArrayLike

from models.priors import Priors
from models.sufficient import collapse


def param_arrays(params: Mapping[str, ArrayLike], names: Sequence[str]) -> list[np.ndarray]:
    """Return ``params[name]`` as float arrays, in the order of ``names``.

    Raises
    ------
    KeyError
        If a parameter is missing.
    """
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"missing parameters {missing}; expected {list(names)}")
    return [np.asarray(params[n], dtype=float) for n in names]


def weighted_rows(
    data: pd.DataFrame, columns: Sequence[str], weights: ArrayLike | None, collapse_rows: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows and weights to put in a likelihood.

    With explicit ``weights`` the rows are used as given; otherwise identical rows are
    collapsed (``collapse_rows=True``) or every row gets weight one.
    """
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(data),):
            raise ValueError(f"weights must have shape ({len(data)},), got {w.shape}")
        return data[list(columns)].reset_index(drop=True), w
    if collapse_rows:
        col = collapse(data, columns)
        return col.unique, col.weights.astype(float)
    return data[list(columns)].reset_index(drop=True), np.ones(len(data))


def levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``values`` (sorted) and, for every element, the position of its value among them.

    Likelihood terms that depend on one summary column only are computed once per distinct
    value and gathered back, so costly functions (logs, log-gammas) run on a few hundred values
    instead of one per row.
    """
    distinct, position = np.unique(values, return_inverse=True)
    return distinct, position.reshape(-1).astype(np.int64)


def model_data(**arrays: ArrayLike) -> list[pt.TensorVariable]:
    """The ``arrays`` as ``pm.Data`` of the current model, in the order given.

    Data kept out of the graph's constants leaves a graph that does not change with the data,
    so its compiled code (nutpie's numba functions in particular) is reused from the cache
    instead of being rebuilt, and no large array is embedded in compiled code.
    """
    return [pm.Data(name, np.asarray(values)) for name, values in arrays.items()]


LoglikGrad = Callable[[np.ndarray], tuple[float, np.ndarray]]


def weighted_model(
    names: Sequence[str],
    priors: Priors,
    total_loglik: Callable[..., pt.TensorVariable],
    loglik_grad: LoglikGrad | None = None,
) -> pm.Model:
    """A model with positive parameters ``names`` and ``total_loglik(*params)`` as potential.

    ``loglik_grad(theta)``, the same log-likelihood and its gradient in numpy, is attached as
    ``model.direct_logp`` (see :func:`direct_log_posterior`): :func:`models.clv_fit.fit_map`
    uses it to find the MAP without compiling the model, which at small and medium sizes costs
    more than the optimisation itself.
    """
    with pm.Model() as model:
        params = [priors.positive(n) for n in names]
        pm.Potential("loglik", total_loglik(*params))
    if loglik_grad is not None:
        model.direct_logp = direct_log_posterior(names, priors, loglik_grad)
    return model


def direct_log_posterior(
    names: Sequence[str], priors: Priors, loglik_grad: LoglikGrad
) -> Callable[[np.ndarray], tuple[float, np.ndarray, float]]:
    """``f(u) -> (log posterior, its gradient, log-likelihood)`` at ``u = log(theta)``.

    The log posterior is the model's ``logp(jacobian=False)``: the log-likelihood plus the
    normal log-densities of ``log(theta)`` (nothing for flat priors).
    """
    flat = priors.kind == "flat"
    mu, sigma = (np.array(v, dtype=float) for v in zip(*map(priors.normal, names), strict=True))
    log_norm = -np.log(sigma) - 0.5 * np.log(2.0 * np.pi)

    def log_posterior(u: np.ndarray) -> tuple[float, np.ndarray, float]:
        theta = np.exp(u)
        loglik, grad = loglik_grad(theta)
        grad = grad * theta
        if flat:
            return loglik, grad, loglik
        z = (u - mu) / sigma
        return loglik + float(np.sum(log_norm - 0.5 * z**2)), grad - z / sigma, loglik

    log_posterior.start = np.zeros(len(mu)) if flat else mu  # the model's initial point
    return log_posterior
