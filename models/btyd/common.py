"""What the BTYD model modules share: the model value types (:class:`PurchaseModel`,
:class:`BuiltModel`, :class:`LogDensity`) and the helpers that build their likelihoods."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import ArrayLike

from models.btyd.priors import Priors
from models.btyd.sufficient import TRANSACTION_COLUMNS, collapse


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


def levels(values: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``values`` (sorted; rows with ``axis=0``) and, for every element (row), the
    position of its value among them.

    Likelihood terms that depend on one summary column only are computed once per distinct
    value and gathered back, so costly functions (logs, log-gammas) run on a few hundred values
    instead of one per row.
    """
    distinct, position = np.unique(values, return_inverse=True, axis=axis)
    return distinct, position.reshape(-1).astype(np.int64)


def model_data(**arrays: ArrayLike) -> list[pt.TensorVariable]:
    """The ``arrays`` as ``pm.Data`` of the current model, in the order given.

    Data kept out of the graph's constants leaves a graph that does not change with the data,
    so its compiled code (nutpie's numba functions in particular) is reused from the cache
    instead of being rebuilt, and no large array is embedded in compiled code.
    """
    return [pm.Data(name, np.asarray(values)) for name, values in arrays.items()]


LoglikGrad = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass(frozen=True)
class LogDensity:
    """A model's log posterior in numpy, on ``u = log(theta)`` in the order of ``names`` (``u =
    theta`` for the ``unconstrained`` ones).

    ``evaluate(u)`` returns the log posterior (the PyMC model's ``logp(jacobian=False)``), its
    gradient and the log-likelihood; ``start`` is the model's initial point and ``starts``
    further ones, where the likelihood has more than one mode (MAP fits search from each). MAP
    fits optimise it and NUTS samples it without compiling the PyMC model (tests check value
    and gradient against the model).
    """

    names: tuple[str, ...]
    start: np.ndarray
    evaluate: Callable[[np.ndarray], tuple[float, np.ndarray, float]]
    unconstrained: tuple[str, ...] = ()  # names sampled as they are, not as log(theta)
    starts: tuple[np.ndarray, ...] = ()

    def values(self, u: np.ndarray) -> dict[str, float]:
        """``log_<name>`` and ``<name>`` of each positive parameter, ``<name>`` of each
        unconstrained one, at ``u``."""
        pairs = list(zip(self.names, u, strict=True))
        positive = [(n, v) for n, v in pairs if n not in self.unconstrained]
        return (
            {f"log_{n}": v for n, v in positive}
            | {n: np.exp(v) for n, v in positive}
            | {n: v for n, v in pairs if n in self.unconstrained}
        )


@dataclass(frozen=True)
class BuiltModel:
    """A PyMC model of positive parameters ``names`` (free variables ``log_<name>``) and, where
    one is written, the same log posterior in numpy (``density``)."""

    pymc: pm.Model
    names: tuple[str, ...]
    density: LogDensity | None = None


@dataclass(frozen=True)
class FactoredLoglik:
    """A model's summed log-likelihood in numpy with its gradient, on factored rows:
    ``factor(x, t_x, T, w)`` prepares weighted summaries once, ``loglik_and_grad(theta,
    factored)`` returns the log-likelihood and its gradient at ``theta`` (the model's
    ``param_names`` order)."""

    factor: Callable[..., Mapping[str, np.ndarray]]
    loglik_and_grad: Callable[[np.ndarray, Mapping[str, np.ndarray]], tuple[float, np.ndarray]]


LogAndHazard = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


@dataclass(frozen=True)
class PurchaseModel:
    """A purchase model (BG/NBD, Pareto/NBD) as one value: everything the rest of cvm knows
    about it. Parameters are mappings ``name -> array`` that broadcast against the customer
    arrays; a dropout ``shift`` (covariates) is an array of customers or a scalar.

    Fitting and predictions: ``build`` (the PyMC model and, where written, its numpy density)
    and the closed forms.

    Covariates (:mod:`models.btyd.covariates`): ``scaled`` names the parameter the purchase
    coefficients scale and the one the dropout coefficients scale (``theta_i = theta
    exp(-gamma' x_i)``); ``loglik_rows(*params, x, t_x, T)`` is the per-row log-likelihood as a
    pytensor expression (parameters may be per-row vectors); ``factored``, when not ``None``, is
    the numpy log-likelihood with gradient that covariate groups are fit with.

    Simulation (:mod:`models.simulate`): ``simulation_params`` are the population parameters a
    simulation draws from unless given others (the published CDNOW estimates);
    ``draw_dropout(params, n, rng, shift)`` returns each customer's latent dropout (BG/NBD's
    ``p``, Pareto/NBD's ``mu``) and the lifetime it sets (``inf`` where the dropout happens at
    purchases); ``drop_after_purchase(dropout, buyers, rng)``, when not ``None``, returns the
    ``buyers`` that leave right after a purchase.

    The churn ceiling (:mod:`models.evaluation.ceiling`), with the dropout distribution
    integrated out: ``lifetime(params, shift)``, when not ``None``, returns the log-survival
    and the hazard of the lifetime as functions of age; ``purchase_dropout(params, shift, x)``
    returns the log-weights of (left right after the last of ``x`` repeat purchases, did not
    leave at a purchase); ``without_lifetime`` names the model that leaves at purchases alone,
    for a model that has both ways to leave.

    Regularity: ``regularity`` is ``k`` where the times between purchases are Erlang-k
    (MBG/CNBD-k, :mod:`models.btyd.mbgcnbd`), 0 where they are exponential. A regular model's
    ``expected_purchases_if_alive`` and ``p_no_purchase_if_alive`` also take ``t_x`` (after
    ``T``): the phase of the customer's rhythm; :meth:`expected_if_alive` and
    :meth:`none_if_alive` call either kind.
    """

    name: str
    param_names: tuple[str, ...]
    build: Callable[..., BuiltModel]
    p_alive: Callable[..., np.ndarray]
    expected_purchases: Callable[..., np.ndarray]
    expected_purchases_if_alive: Callable[..., np.ndarray]
    p_no_purchase_if_alive: Callable[..., np.ndarray]
    scaled: tuple[str, str]
    loglik_rows: Callable[..., pt.TensorVariable]
    factored: FactoredLoglik | None
    simulation_params: tuple[tuple[str, float], ...]
    draw_dropout: Callable[..., tuple[np.ndarray, np.ndarray]]
    drop_after_purchase: Callable[..., np.ndarray] | None
    lifetime: Callable[..., LogAndHazard] | None
    purchase_dropout: Callable[..., tuple[np.ndarray, np.ndarray]]
    regularity: int = 0  # k of Erlang-k times between purchases (MBG/CNBD-k); 0: exponential
    # a model with both a lifetime and a dropout at purchases: the registry name of the one
    # without the lifetime, whose forecasts the ceilings (which integrate the lifetime) take
    without_lifetime: str | None = None

    @property
    def if_alive_columns(self) -> tuple[str, ...]:
        """The summary columns the forecasts of a customer alive at ``T`` depend on: ``(x,
        T)``, and the recency too where purchases are regular (the phase of the rhythm)."""
        return ("frequency", "T", "recency") if self.regularity > 1 else ("frequency", "T")

    def expected_if_alive(self, params, t, x, t_x, T) -> np.ndarray:
        """Expected purchases in ``(T, T+t]`` of a customer alive at ``T``."""
        return self.expected_purchases_if_alive(params, t, x, T, *self._phase(t_x))

    def none_if_alive(self, params, t, x, t_x, T) -> np.ndarray:
        """Probability of no purchase in ``(T, T+t]`` of a customer alive at ``T``."""
        return self.p_no_purchase_if_alive(params, t, x, T, *self._phase(t_x))

    def _phase(self, t_x) -> tuple:
        """What a regular model's forecasts given alive take after ``T``: the recency, which
        at ``k = 1`` they ignore (``None`` then from a scorer: :attr:`if_alive_columns`)."""
        return (t_x,) if self.regularity else ()

    def conditional_expected_purchases(self, params, t, x, t_x, T) -> np.ndarray:
        """Expected purchases in ``(T, T+t]`` given ``(x, t_x, T)``: P(alive) times the
        expectation given alive."""
        return self.p_alive(params, x, t_x, T) * self.expected_if_alive(params, t, x, t_x, T)

    def p_no_purchase(self, params, t, x, t_x, T) -> np.ndarray:
        """Probability of no purchase in ``(T, T+t]``: ``1 - P(alive) + P(alive) P(none |
        alive)``."""
        alive = self.p_alive(params, x, t_x, T)
        return 1.0 - alive + alive * self.none_if_alive(params, t, x, t_x, T)


def no_purchase_dropout(
    params: Mapping[str, float], shift: ArrayLike, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A model whose customers never leave at a purchase (Pareto/NBD's lifetimes): the
    log-weights ``-inf`` (dropped right after the last purchase) and 0 (not dropped)."""
    return np.full_like(x, -np.inf), np.zeros_like(x)


def per_row_model(
    names: Sequence[str],
    loglik_rows: Callable[..., pt.TensorVariable],
    data: pd.DataFrame,
    priors: Priors | None,
    weights: ArrayLike | None,
    collapse_rows: bool,
    factored: FactoredLoglik | None = None,
    starts: Sequence[Mapping[str, float]] = (),
) -> BuiltModel:
    """The PyMC model of a purchase model whose log-likelihood is written per row
    (``loglik_rows(*params, x, t_x, T)``): the weighted sum over the summaries of ``data``
    (identical rows collapsed unless ``weights`` are given); with ``factored`` (the same sum
    and its gradient in numpy) also its numpy density, with further starting points where
    ``starts`` give some parameters other values."""
    rows, w = weighted_rows(data, TRANSACTION_COLUMNS, weights, collapse_rows)
    x, t_x, T = (rows[c].to_numpy(dtype=float) for c in TRANSACTION_COLUMNS)
    total = lambda *p: pt.dot(w, loglik_rows(*p, x, t_x, T))  # noqa: E731
    direct = None
    if factored is not None:
        prepared = factored.factor(x, t_x, T, w)
        direct = lambda theta: factored.loglik_and_grad(theta, prepared)  # noqa: E731
    return weighted_model(names, priors or Priors(), total, direct, starts)


def weighted_model(
    names: Sequence[str],
    priors: Priors,
    total_loglik: Callable[..., pt.TensorVariable],
    loglik_grad: LoglikGrad | None = None,
    starts: Sequence[Mapping[str, float]] = (),
) -> BuiltModel:
    """A model with positive parameters ``names`` and ``total_loglik(*params)`` as potential;
    with ``loglik_grad(theta)`` (the same log-likelihood and its gradient in numpy) also its
    numpy log density."""
    with pm.Model() as model:
        params = [priors.positive(n) for n in names]
        pm.Potential("loglik", total_loglik(*params))
    density = None if loglik_grad is None else log_density(names, priors, loglik_grad, starts)
    return BuiltModel(model, tuple(names), density)


def log_density(
    names: Sequence[str],
    priors: Priors,
    loglik_grad: LoglikGrad,
    starts: Sequence[Mapping[str, float]] = (),
) -> LogDensity:
    """The log posterior at ``u = log(theta)``: the log-likelihood plus the normal
    log-densities of ``log(theta)`` (nothing for flat priors); ``starts``: further starting
    points, each the initial point with the values it gives."""
    start, prior = log_prior(names, priors)
    others = tuple(
        np.array(
            [np.log(values[n]) if n in values else u for n, u in zip(names, start, strict=True)]
        )
        for values in starts
    )

    def evaluate(u: np.ndarray) -> tuple[float, np.ndarray, float]:
        theta = np.exp(u)
        loglik, grad = loglik_grad(theta)
        grad = grad * theta
        if prior is None:
            return loglik, grad, loglik
        value, d_u = prior(u)
        return loglik + value, grad + d_u, loglik

    return LogDensity(tuple(names), start, evaluate, starts=others)


NormalLogPdf = Callable[[np.ndarray], tuple[float, np.ndarray]]


def log_prior(names: Sequence[str], priors: Priors) -> tuple[np.ndarray, NormalLogPdf | None]:
    """The model's initial point in ``u = log(theta)`` and the summed normal log-density of
    ``u`` with its gradient (``None`` for flat priors, whose initial point is 0)."""
    mu, sigma = (np.array(v, dtype=float) for v in zip(*map(priors.normal, names), strict=True))
    if priors.kind == "flat":
        return np.zeros(len(mu)), None
    return mu, normal_logpdf(mu, sigma)


def normal_logpdf(mu: np.ndarray, sigma: np.ndarray) -> NormalLogPdf:
    """``u -> (sum of the Normal(mu, sigma) log-densities at u, their gradient)``."""
    log_norm = -np.log(sigma) - 0.5 * np.log(2.0 * np.pi)

    def logpdf(u: np.ndarray) -> tuple[float, np.ndarray]:
        z = (u - mu) / sigma
        return float(np.sum(log_norm - 0.5 * z**2)), -z / sigma

    return logpdf
