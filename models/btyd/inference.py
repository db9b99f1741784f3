"""Fitting helpers: MAP by L-BFGS on the unconstrained space, NUTS sampling and diagnostics.

nutpie and ArviZ are imported where NUTS draws are made or diagnosed: together they take about
2 s to import, which every MAP fit, scoring run and served model would otherwise pay.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from scipy import optimize
from threadpoolctl import threadpool_limits

from models.btyd.common import BuiltModel, LogDensity

Sampler = Literal["nutpie", "pymc"]


def _loglik_expression(model: pm.Model) -> pt.TensorVariable:
    """Data log-likelihood: sum of the potentials plus the observed variables' log-densities."""
    terms = [pt.sum(p) for p in model.potentials]
    if model.observed_RVs:
        terms.append(model.logp(vars=model.observed_RVs, sum=True))
    if not terms:
        raise ValueError("model has neither potentials nor observed variables")
    return pt.add(*terms) if len(terms) > 1 else terms[0]


@dataclass(frozen=True)
class Objective:
    """A model's negative log posterior (without the transforms' Jacobian) on the unconstrained
    vector, with its gradient (``neg``); the starting point ``x0``; and ``report``, the
    :func:`fit_map` values at a point."""

    neg: Callable[[np.ndarray], tuple[float, np.ndarray]]
    x0: np.ndarray
    report: Callable[[np.ndarray], dict[str, float]]
    others: tuple[np.ndarray, ...] = ()  # further starting points (a density's ``starts``)


def objective(built: BuiltModel, seed: int | None = 0) -> Objective:
    """The :class:`Objective` of ``built``: its numpy density where it has one, otherwise the
    PyMC model compiled once into one function."""
    if built.density is not None:
        return _direct_objective(built.density)
    model = built.pymc
    value_vars = list(model.value_vars)
    start = model.initial_point(random_seed=seed)
    names = [v.name for v in value_vars]
    shapes = [np.shape(start[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    x0 = np.concatenate([np.ravel(start[n]).astype(float) for n in names])

    logp = model.logp(jacobian=False)
    grads = pt.grad(logp, value_vars)
    reported = [*model.free_RVs, *model.deterministics]
    reported = [v for v in reported if v.type.ndim == 0]
    extra = model.replace_rvs_by_values([*reported, _loglik_expression(model)])
    # one compiled function for the optimiser and the reported values: compiling is most of
    # the cost of a MAP fit
    fn = pytensor.function(value_vars, [logp, *grads, *extra], on_unused_input="ignore")
    n_grads = len(grads)

    def split(theta: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for shape, size in zip(shapes, sizes, strict=True):
            out.append(theta[i : i + size].reshape(shape))
            i += size
        return out

    def neg(theta: np.ndarray) -> tuple[float, np.ndarray]:
        val, *g = fn(*split(theta))[: 1 + n_grads]
        if not np.isfinite(val):
            return np.inf, np.zeros_like(theta)
        return -float(val), -np.concatenate([np.ravel(gi) for gi in g])

    def report(theta: np.ndarray) -> dict[str, float]:
        values = fn(*split(theta))
        result = {
            var.name: float(v) for var, v in zip(reported, values[1 + n_grads : -1], strict=True)
        }
        return result | {"loglik": float(values[-1]), "logp": float(values[0])}

    return Objective(neg, x0, report)


def _direct_objective(density: LogDensity) -> Objective:
    """The :class:`Objective` of a numpy log density: reports ``log_<name>`` and ``<name>``
    (``<name>`` alone for the unconstrained)."""

    last: dict = {}  # the latest point's values: the optimum is reported where it was found

    def evaluate(u: np.ndarray) -> tuple[float, np.ndarray, float]:
        if "u" not in last or not np.array_equal(last["u"], u):
            last.update(u=u.copy(), values=density.evaluate(u))
        return last["values"]

    def neg(u: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, _ = evaluate(u)
        return (-value, -grad) if np.isfinite(value) else (np.inf, np.zeros_like(u))

    def report(u: np.ndarray) -> dict[str, float]:
        logp, _, loglik = evaluate(u)
        values = {n: float(v) for n, v in density.values(u).items()}
        return values | {"loglik": float(loglik), "logp": float(logp)}

    return Objective(neg, np.array(density.start, dtype=float), report, density.starts)


def fit_map(
    built: BuiltModel,
    seed: int | None = 0,
    *,
    jitter: float = 0.0,
    maxiter: int = 10_000,
    sample: tuple[BuiltModel, float] | None = None,
) -> dict[str, float]:
    """Maximum a-posteriori point by L-BFGS-B on the unconstrained (transformed) space.

    The log-posterior *without* the log-Jacobian of the transforms and its gradient are compiled
    once into a single function; with flat priors (``Priors(kind="flat")``) the optimum is the
    maximum-likelihood estimate.

    A model with a numpy log density (``built.density``) is optimised on it directly, with no
    compilation; otherwise the PyMC model is compiled.

    Parameters
    ----------
    built : BuiltModel
        Model whose free variables are scalars or small arrays.
    seed : int, optional
        Seed of the jitter applied to the starting point.
    jitter : float
        Half-width of the uniform jitter added to the unconstrained starting point (0 = none).
    maxiter : int
        Maximum L-BFGS iterations.
    sample : (BuiltModel, float), optional
        The same model on a random sample of the customers and how many times fewer they are.
        For many customers: L-BFGS on the sample, then Newton steps on all of them with the
        sample's Hessian scaled up (:func:`_newton`), a few evaluations of the whole data where
        L-BFGS from the prior would take dozens.

    A density with further starting points (``starts``: a likelihood with more than one mode)
    is searched from each of them too, and the highest optimum kept.

    Returns
    -------
    dict of str to float
        The constrained free variables (and scalar deterministics) at the optimum, plus
        ``"loglik"`` (data log-likelihood, i.e. the potentials/observed terms),
        ``"logp"`` (the maximised log-posterior without Jacobian), ``"n_iter"`` and
        ``"converged"`` (1.0 or 0.0).
    """
    whole = objective(built, seed)
    x0 = whole.x0
    if jitter > 0:
        x0 = x0 + np.random.default_rng(seed).uniform(-jitter, jitter, size=x0.shape)
    starts, ftol = (x0, *whole.others), 1e-14
    if sample is not None:
        part, ratio = objective(sample[0], seed), sample[1]
        # only a start: settled to the Newton steps' own tolerance
        first = _highest(part.neg, starts, maxiter, NEWTON_SETTLED / max(abs(part.neg(x0)[0]), 1))
        x, steps = _newton(whole.neg, first.x, ratio * _hessian(part.neg, first.x))
        if x is not None:
            return whole.report(x) | {"n_iter": float(first.nit + steps), "converged": 1.0}
        # Newton did not settle (a flat direction: a parameter the data barely tell): L-BFGS on
        # everyone from the sample's optimum, settled to the Newton steps' tolerance too
        starts, ftol = (first.x,), NEWTON_SETTLED / max(abs(whole.neg(first.x)[0]), 1.0)
    res = _highest(whole.neg, starts, maxiter, ftol)
    # L-BFGS-B stops "successfully" on a nan gradient: an optimum that is not finite is none
    found = bool(res.success) and np.isfinite(res.fun) and np.all(np.isfinite(res.x))
    return whole.report(res.x) | {"n_iter": float(res.nit), "converged": float(found)}


def _highest(neg, starts, maxiter: int, ftol: float = 1e-14) -> optimize.OptimizeResult:
    """L-BFGS-B from each of ``starts``: the highest optimum, with the iterations of all."""
    results = [_maximise(neg, start, maxiter, ftol) for start in starts]
    best = min(results, key=lambda res: res.fun if np.isfinite(res.fun) else np.inf)
    best.nit = sum(res.nit for res in results)
    return best


NEWTON_STEPS = 8
# a step that raises the log posterior by less than this (nats) settles the optimum: a change of
# the likelihood that no test could tell from none (L-BFGS's own tolerance is relative, 1e-14
# of a log posterior in the millions)
NEWTON_SETTLED = 1e-2


def _hessian(neg, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """The Hessian of ``neg`` at ``x`` by forward differences of its gradient (a Newton
    step's metric: its error of order ``h`` only slows the steps' convergence)."""
    at = neg(x)[1]
    columns = []
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h
        columns.append((neg(x + e)[1] - at) / h)
    hessian = np.column_stack(columns)
    return (hessian + hessian.T) / 2


def _newton(neg, x: np.ndarray, hessian: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Newton steps on ``neg`` from ``x`` with a fixed ``hessian`` until a step gains less than
    :data:`NEWTON_SETTLED`; the optimum and the steps taken, ``None`` when a step does not
    lower ``neg`` or the steps do not settle."""
    value, grad = neg(x)
    for step in range(1, NEWTON_STEPS + 1):
        try:
            delta = np.linalg.solve(hessian, grad)
        except np.linalg.LinAlgError:
            return None, step
        new_value, new_grad = neg(x - delta)
        if not np.isfinite(new_value) or new_value > value + 1e-9 * abs(value):
            return None, step
        x, gain, value, grad = x - delta, value - new_value, new_value, new_grad
        if gain < NEWTON_SETTLED:
            return x, step
    return None, NEWTON_STEPS


def _maximise(neg, x0: np.ndarray, maxiter: int, ftol: float = 1e-14) -> optimize.OptimizeResult:
    """L-BFGS-B on a handful of parameters; one BLAS thread, because multithreaded BLAS spends
    milliseconds per iteration waking and spinning threads for vectors of length 4."""
    options = {"maxiter": maxiter, "ftol": ftol, "gtol": 1e-9, "maxcor": 20}
    with threadpool_limits(1, user_api="blas"):
        return optimize.minimize(neg, x0, jac=True, method="L-BFGS-B", options=options)


def sample_posterior(
    built: BuiltModel,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 2,
    cores: int = 2,
    seed: int | None = 0,
    sampler: Sampler = "nutpie",
    *,
    target_accept: float = 0.8,
    low_rank_mass_matrix: bool = True,
    progressbar: bool = False,
) -> xr.DataTree:
    """Draw from the posterior with NUTS.

    Parameters
    ----------
    built : BuiltModel
        The model; with nutpie, its numpy log density when it has one.
    draws, tune, chains, cores : int
        NUTS settings (``cores`` parallel chains).
    seed : int, optional
        Random seed.
    sampler : {"nutpie", "pymc"}
        ``"nutpie"`` (Rust NUTS, numba-compiled logp) or PyMC's own NUTS.
    target_accept : float
        Target acceptance probability of the step-size adaptation.
    low_rank_mass_matrix : bool
        nutpie only: adapt a low-rank-modified mass matrix. The BG/NBD ``(a, b)`` and the
        Gamma-Gamma ``(p, gamma)`` posteriors are strongly correlated; with the default diagonal
        mass matrix 2 x 500 draws give bulk ESS ~180 (BG/NBD) and r-hat ~1.03 (Gamma-Gamma),
        with the low-rank one both pass ``convergence_problems`` defaults.
    progressbar : bool
        Show a progress bar.

    Returns
    -------
    xarray.DataTree
        ArviZ (>= 1.0) inference data with ``posterior`` and ``sample_stats`` groups.
    """
    if sampler not in ("nutpie", "pymc"):
        raise ValueError(f"unknown sampler {sampler!r}")
    if sampler == "nutpie" and built.density is not None:
        settings = {"draws": draws, "tune": tune, "chains": chains, "cores": cores, "seed": seed}
        return _whole(
            _sample_direct(
                built.density, settings, target_accept, low_rank_mass_matrix, progressbar
            ),
            draws,
        )
    nuts: dict = {"target_accept": target_accept}
    if sampler == "nutpie":
        nuts["adaptation"] = "low_rank" if low_rank_mass_matrix else "diag"
    with built.pymc:
        drawn = pm.sample(
            draws=draws,
            tune=tune,
            chains=chains,
            cores=cores,
            random_seed=seed,
            nuts_sampler=sampler,
            progressbar=progressbar,
            compute_convergence_checks=False,
            nuts=nuts,
        )
    return _whole(drawn, draws)


def _whole(drawn: xr.DataTree, draws: int) -> xr.DataTree:
    """The posterior draws, all of them: nutpie and PyMC catch Ctrl-C (or a stop signal) and
    return what they drew so far, which is an interrupted run, not a posterior to diagnose."""
    got = drawn["posterior"].sizes.get("draw", 0)
    if got < draws:
        raise KeyboardInterrupt(f"sampling interrupted after {got} of {draws} draws per chain")
    return drawn


def _sample_direct(
    density: LogDensity,
    settings: dict,
    target_accept: float,
    low_rank_mass_matrix: bool,
    progressbar: bool,
) -> xr.DataTree:
    """nutpie's NUTS on the model's numpy log posterior.

    The density is the PyMC model's (tests compare value and gradient); skipping the model's
    compilation saves 10-20 s per fit, and the likelihood kernel releases the GIL, so the
    chains still run in parallel. Draws of ``log_<name>`` and ``<name>`` are stored, as with
    the compiled model; chains start at the model's initial point jittered by U(-1, 1), as
    PyMC's nutpie path does.
    """
    import nutpie
    from nutpie.compiled_pyfunc import from_pyfunc

    names = list(density.values(np.zeros(len(density.names))))
    start = np.asarray(density.start, dtype=float)

    def make_logp():
        def logp(u: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad, _ = density.evaluate(u)
            return value, grad

        return logp

    def make_expand(*_seeds):
        def expand(u: np.ndarray) -> dict[str, np.ndarray]:
            return {n: np.array(v) for n, v in density.values(u).items()}

        return expand

    def initial_point(seed: int) -> np.ndarray:
        return start + np.random.default_rng(seed).uniform(-1.0, 1.0, size=start.shape)

    compiled = from_pyfunc(
        len(density.names),
        make_logp,
        make_expand,
        [np.dtype("float64")] * len(names),
        [()] * len(names),
        names,
        make_initial_point_fn=initial_point,
    )
    return nutpie.sample(
        compiled,
        draws=settings["draws"],
        tune=settings["tune"],
        chains=settings["chains"],
        cores=settings["cores"],
        seed=settings["seed"],
        target_accept=target_accept,
        adaptation="low_rank" if low_rank_mass_matrix else "diag",
        progress_bar=progressbar,
    )


def _worst(values: xr.Dataset, var: str, larger_is_worse: bool) -> tuple[float, str]:
    """Worst element of ``values[var]`` and a label such as ``alpha`` or ``beta[2]``."""
    arr = np.asarray(values[var].values, dtype=float)
    if arr.ndim == 0:
        return float(arr), var
    flat = np.where(np.isnan(arr), -np.inf if larger_is_worse else np.inf, arr)
    idx = np.unravel_index(np.argmax(flat) if larger_is_worse else np.argmin(flat), arr.shape)
    return float(arr[idx]), f"{var}[{','.join(str(i) for i in idx)}]"


def convergence_problems(
    idata: xr.DataTree,
    max_rhat: float = 1.01,
    min_ess: float = 400,
    max_divergences: int = 0,
    var_names: list[str] | None = None,
) -> list[str]:
    """List human-readable convergence problems (empty list = no problem found).

    Checks the rank-normalised split r-hat, the bulk and tail effective sample sizes of every
    posterior variable (worst element for non-scalar ones) and the number of divergent
    transitions.

    Parameters
    ----------
    idata : xarray.DataTree
        Output of :func:`sample_posterior`.
    max_rhat : float
        Largest acceptable r-hat.
    min_ess : float
        Smallest acceptable bulk and tail ESS.
    max_divergences : int
        Largest acceptable number of divergent transitions (summed over chains).
    var_names : list of str, optional
        Variables to check. Default: all posterior variables except ``log_<name>`` when
        ``<name>`` is also present (the models' ``log_`` free variables and their ``exp``
        deterministics have identical rank-based r-hat and ESS, so only ``<name>`` is reported).

    Returns
    -------
    list of str
        e.g. ``["r-hat of alpha is 1.034 (> 1.01)", "bulk ESS of b is 212 (< 400)"]``.
    """
    problems: list[str] = []
    post = idata["posterior"].to_dataset()
    names = var_names or [
        v for v in post.data_vars if not (v.startswith("log_") and v[4:] in post.data_vars)
    ]
    n_chains = post.sizes.get("chain", 1)
    n_draws = post.sizes.get("draw", 0)
    if n_chains < 2:
        problems.append(f"only {n_chains} chain(s): r-hat cannot detect non-convergence")
    if n_draws < 4:
        problems.append(f"only {n_draws} draw(s) per chain: diagnostics are not computable")
        return problems

    import arviz as az

    rhat = az.rhat(idata, var_names=names)
    ess_bulk = az.ess(idata, var_names=names, method="bulk")
    ess_tail = az.ess(idata, var_names=names, method="tail")
    rhat, ess_bulk, ess_tail = (
        d.to_dataset() if isinstance(d, xr.DataTree) else d for d in (rhat, ess_bulk, ess_tail)
    )
    for name in names:
        val, label = _worst(rhat, name, larger_is_worse=True)
        if not np.isfinite(val) or val > max_rhat:
            problems.append(f"r-hat of {label} is {val:.3f} (> {max_rhat:g})")
        for kind, ess in (("bulk", ess_bulk), ("tail", ess_tail)):
            val, label = _worst(ess, name, larger_is_worse=False)
            if not np.isfinite(val) or val < min_ess:
                problems.append(f"{kind} ESS of {label} is {val:.0f} (< {min_ess:g})")

    if "sample_stats" in idata.children and "diverging" in idata["sample_stats"].data_vars:
        n_div = int(np.asarray(idata["sample_stats"]["diverging"].values).sum())
        if n_div > max_divergences:
            problems.append(f"{n_div} divergent transitions (> {max_divergences})")
    return problems


def diagnostics(idata: xr.DataTree) -> dict[str, float]:
    """Worst r-hat, smallest bulk and tail ESS over the named parameters, and divergences."""
    import arviz as az

    post = idata["posterior"].to_dataset()
    names = [v for v in post.data_vars if not (v.startswith("log_") and v[4:] in post.data_vars)]
    found = {
        "max_rhat": az.rhat(idata, var_names=names),
        "min_ess_bulk": az.ess(idata, var_names=names, method="bulk"),
        "min_ess_tail": az.ess(idata, var_names=names, method="tail"),
    }
    out = {}
    for key, values in found.items():
        data = values.to_dataset() if isinstance(values, xr.DataTree) else values
        arr = np.concatenate([np.ravel(data[n].values) for n in names])
        out[key] = float(arr.max() if key == "max_rhat" else arr.min())
    stats = idata["sample_stats"] if "sample_stats" in idata.children else None
    diverging = stats["diverging"].values if stats is not None and "diverging" in stats else [0]
    out["divergences"] = float(np.asarray(diverging).sum())
    return out
