"""Fit a CLV model pair: a purchase model (BG/NBD or Pareto/NBD) and the Gamma-Gamma spend model.

One entry point, :func:`fit_clv`, used for the evaluation fit (calibration period) and the
scoring fit (all history); the result carries both posteriors, the MAP points, the convergence
diagnostics and the fit times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np
import pandas as pd
import xarray as xr

from models import bgnbd, gamma_gamma, pareto_nbd
from models.clv_fit import convergence_problems, diagnostics, fit_map, sample_posterior
from models.priors import Priors

TRANSACTION_MODELS: dict[str, ModuleType] = {"bgnbd": bgnbd, "pareto_nbd": pareto_nbd}
METHODS = ("map", "nuts")


class ConvergenceError(Exception):
    """NUTS did not converge; ``problems`` says which diagnostic failed and by how much."""

    def __init__(self, part: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"the {part} posterior did not converge: " + "; ".join(problems))


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings (chains run in parallel on ``cores``); ``progressbar`` shows the sampler's.

    500 tuning steps and a target acceptance of 0.8 halve the gradient evaluations of 1,000 and
    0.9 on these low-dimensional, nearly Gaussian posteriors, with higher ESS: on 1,000,000
    simulated customers BG/NBD bulk ESS 3,463 vs 2,179, Gamma-Gamma 3,184 vs 2,093, no
    divergences, r-hat <= 1.005.
    """

    name: str = "nutpie"
    draws: int = 1000
    tune: int = 500
    chains: int = 2
    cores: int = 2
    target_accept: float = 0.8
    progressbar: bool = False


@dataclass(frozen=True)
class ConvergenceSettings:
    """Limits on r-hat, ESS and divergences; ``on_failure`` is ``fail`` or ``warn``."""

    max_rhat: float = 1.01
    min_ess: float = 400
    max_divergences: int = 0
    on_failure: str = "fail"

    def __post_init__(self) -> None:
        if self.on_failure not in ("fail", "warn"):
            raise ValueError(
                f"clv.convergence.on_failure is {self.on_failure!r}; expected fail|warn"
            )


@dataclass(frozen=True)
class ClvSettings:
    """Which models, how to fit them, with which priors."""

    model: str = "bgnbd"
    method: str = "nuts"
    priors: Priors = field(default_factory=Priors)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    convergence: ConvergenceSettings = field(default_factory=ConvergenceSettings)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in TRANSACTION_MODELS:
            raise ValueError(
                f"clv.model is {self.model!r}; expected one of {', '.join(TRANSACTION_MODELS)}"
            )
        if self.method not in METHODS:
            raise ValueError(f"clv.method is {self.method!r}; expected one of {', '.join(METHODS)}")


@dataclass
class ClvFit:
    """A fitted purchase + spend model pair.

    ``transactions`` and ``spend`` are posteriors (ArviZ data trees); a MAP fit stores its point
    as a single draw so predictions treat both methods alike.
    """

    model: str
    method: str
    transactions: xr.DataTree
    spend: xr.DataTree
    map_point: dict[str, float]
    problems: list[str]
    seconds: dict[str, float]
    counts: dict[str, int]
    diagnostics: dict[str, float] = field(default_factory=dict)

    def transaction_draws(self) -> dict[str, np.ndarray]:
        return posterior_draws(self.transactions, TRANSACTION_MODELS[self.model].PARAM_NAMES)

    def spend_draws(self) -> dict[str, np.ndarray]:
        return posterior_draws(self.spend, gamma_gamma.PARAM_NAMES)


def posterior_draws(
    idata: xr.DataTree, names: tuple[str, ...], max_draws: int | None = None
) -> dict[str, np.ndarray]:
    """Draws of ``names``, chains concatenated: ``{name: 1-D array}``.

    With ``max_draws``, at most that many, evenly spaced (the same draws for every name, so the
    joint posterior is kept).
    """
    post = idata["posterior"].to_dataset()
    draws = {n: np.asarray(post[n].values, dtype=float).reshape(-1) for n in names}
    total = len(draws[names[0]])
    if max_draws is None or max_draws >= total:
        return draws
    keep = np.linspace(0, total - 1, max_draws).round().astype(int)
    return {n: v[keep] for n, v in draws.items()}


def point_as_posterior(point: dict[str, float], names: tuple[str, ...]) -> xr.DataTree:
    """A MAP point as a posterior of one chain with one draw."""
    data = {n: (("chain", "draw"), np.array([[point[n]]])) for n in names}
    posterior = xr.Dataset(data, coords={"chain": [0], "draw": [0]})
    return xr.DataTree.from_dict({"posterior": posterior})


def _fit_part(part: str, model, names: tuple[str, ...], settings: ClvSettings) -> dict:
    """Fit one model: ``tree``, ``point``, ``problems``, ``seconds``, ``diagnostics``."""
    start = time.perf_counter()
    point = fit_map(model, seed=settings.seed)
    out = {"point": point, "problems": [], "diagnostics": {}}
    out["seconds"] = {f"{part}_map": time.perf_counter() - start}
    if settings.method == "map":
        return out | {"tree": point_as_posterior(point, names)}
    s = settings.sampler
    start = time.perf_counter()
    idata = sample_posterior(
        model,
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        cores=s.cores,
        seed=settings.seed,
        sampler=s.name,
        target_accept=s.target_accept,
        progressbar=s.progressbar,
    )
    out["seconds"][f"{part}_nuts"] = time.perf_counter() - start
    out["diagnostics"] = {f"{part}_{k}": v for k, v in diagnostics(idata).items()}
    c = settings.convergence
    problems = convergence_problems(idata, c.max_rhat, c.min_ess, c.max_divergences)
    if problems and c.on_failure == "fail":
        raise ConvergenceError(part, problems)
    return out | {"tree": idata, "problems": [f"{part}: {p}" for p in problems]}


def fit_clv(summary: pd.DataFrame, settings: ClvSettings) -> ClvFit:
    """Fit the purchase model on every customer and Gamma-Gamma on the repeat buyers.

    ``summary`` has ``frequency``, ``recency``, ``T`` and ``monetary_value``; identical rows are
    collapsed inside the models, so the cost grows with distinct summaries.
    """
    module = TRANSACTION_MODELS[settings.model]
    buyers = gamma_gamma.repeaters(summary)
    if len(buyers) < 2:
        raise ValueError("Gamma-Gamma needs at least two repeat buyers with positive spend")
    tx_model = module.build_model(summary, settings.priors)
    spend_model = gamma_gamma.build_model(buyers, settings.priors)
    tx = _fit_part("transactions", tx_model, module.PARAM_NAMES, settings)
    sp = _fit_part("spend", spend_model, gamma_gamma.PARAM_NAMES, settings)
    keys = (*module.PARAM_NAMES, "loglik")
    map_point = {f"transactions.{k}": tx["point"][k] for k in keys}
    map_point |= {f"spend.{k}": sp["point"][k] for k in (*gamma_gamma.PARAM_NAMES, "loglik")}
    counts = {
        "customers": len(summary),
        "distinct_summaries": len(summary[["frequency", "recency", "T"]].drop_duplicates()),
        "repeat_buyers": len(buyers),
    }
    return ClvFit(
        model=settings.model,
        method=settings.method,
        transactions=tx["tree"],
        spend=sp["tree"],
        map_point=map_point,
        problems=tx["problems"] + sp["problems"],
        seconds=tx["seconds"] | sp["seconds"],
        counts=counts,
        diagnostics=tx["diagnostics"] | sp["diagnostics"],
    )
