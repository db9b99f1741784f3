"""A CLV model pair: a purchase model (BG/NBD or Pareto/NBD) and the Gamma-Gamma spend model.

:func:`fit_clv` fits the pair (the evaluation fit on the calibration period, the scoring fit on
all history); :class:`FittedClv` is the result as one value: both posteriors, the MAP points and
the settings it was fit with, with thinning, predictions and the churn features as methods. It
turns into ArviZ data trees carrying all of that (:meth:`FittedClv.to_trees`) and back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from models.btyd import gamma_gamma
from models.btyd.common import BuiltModel, PurchaseModel
from models.btyd.covariates import build_purchase, coefficient_names
from models.btyd.family import NAMES, purchase_model
from models.btyd.inference import convergence_problems, diagnostics, fit_map, sample_posterior
from models.btyd.mbgcnbd import LOG_GAPS, MAX_REGULARITY, regularity_loglik
from models.btyd.predict import PredictionSettings, predict_customers, predict_with_covariates
from models.btyd.priors import Priors
from models.btyd.season import OMEGA, YEAR, Repeats, Season, SeasonError, fit_season, named
from models.btyd.settings import METHODS, ConvergenceSettings, SamplerSettings
from models.settings import Column, Flag, Seed, listing, settings

# a saved pair's files (:meth:`FittedClv.save`); a purchase-only pair has no spend posterior
FILES = {"purchase": "transactions.nc", "spend": "spend.nc"}
FORMAT = "cvm.clv/2"  # written into the posteriors' attributes, checked on load


class ConvergenceError(Exception):
    """NUTS did not converge; ``problems`` says which diagnostic failed and by how much."""

    def __init__(self, part: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"the {part} posterior did not converge: " + "; ".join(problems))


@settings
class ClvSettings:
    """Which models, how to fit them, with which priors; ``spend=False`` fits the purchase model
    alone (a log without amounts); ``covariates`` are the summary's columns that shift the
    purchase and dropout rates (:mod:`models.btyd.covariates`), none by default; ``season``
    puts the purchase model on a yearly seasonal clock (:mod:`models.btyd.season`)."""

    model: Literal[NAMES] = "bgnbd"
    method: Literal[METHODS] = "nuts"
    season: Flag = False
    priors: Priors = field(default_factory=Priors)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    convergence: ConvergenceSettings = field(default_factory=ConvergenceSettings)
    seed: Seed = 0
    spend: Flag = True
    covariates: listing(Column) = ()

    def to_dict(self) -> dict:
        """The settings as plain data; ``covariates`` and ``season`` only when used, so a model
        without them is stored as before."""
        values = asdict(self)
        for unused in ("covariates", "season"):
            if not values[unused]:
                del values[unused]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> ClvSettings:
        """The settings :meth:`to_dict` gave (JSON: tuples come back as lists)."""
        return cls(**values)


@dataclass(frozen=True)
class FittedClv:
    """A fitted purchase + spend model pair, as one value.

    ``purchase_posterior`` and ``spend_posterior`` are ArviZ data trees (a MAP fit stores its
    point as a single draw, so predictions treat both methods alike); ``spend_posterior`` is
    ``None`` for a purchase-only pair. ``map_point`` holds the MAP of each part
    (``{"purchase": {...}, "spend": {...}}``, with its log-likelihood); ``fit_info`` the
    convergence problems, diagnostics, times and counts of the fit; ``season`` the yearly
    season the purchase model runs on, if any: then the customers' summaries and the forecast
    windows go onto its clock (every table predicted carries ``cutoff``, ``tenure_days`` and
    ``recency_days``).
    """

    purchase: PurchaseModel
    purchase_posterior: xr.DataTree
    spend_posterior: xr.DataTree | None
    map_point: dict[str, dict[str, float]]
    settings: ClvSettings
    fit_info: dict = field(default_factory=dict)
    season: Season | None = None

    @property
    def purchase_names(self) -> tuple[str, ...]:
        """The purchase model's parameters, then its covariate coefficients (if any)."""
        return (*self.purchase.param_names, *coefficient_names(self.settings.covariates))

    @property
    def name(self) -> str:
        """The purchase model's name, ``+season`` on a seasonal clock (as the candidates of
        :mod:`models.btyd.choice` are named)."""
        return named(self.purchase.name, self.season is not None)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns a table to predict needs: the summary, the covariates, and on a
        seasonal clock where each customer stands in the calendar."""
        summary = ("frequency", "recency", "T", "monetary_value", *self.settings.covariates)
        return summary + (("cutoff", "tenure_days", "recency_days") if self.season else ())

    @property
    def point(self) -> dict[str, float]:
        """The purchase model's parameters at the MAP (the churn features are computed there)."""
        return {k: float(self.map_point["purchase"][k]) for k in self.purchase_names}

    def purchase_draws(self, max_draws: int | None = None) -> dict[str, np.ndarray]:
        """Purchase-model draws, evenly thinned to at most ``max_draws``."""
        return posterior_draws(self.purchase_posterior, self.purchase_names, max_draws)

    def spend_draws(self, max_draws: int | None = None) -> dict[str, np.ndarray] | None:
        """Gamma-Gamma draws (paired draw by draw with the purchase draws), or ``None``."""
        if self.spend_posterior is None:
            return None
        return posterior_draws(self.spend_posterior, gamma_gamma.PARAM_NAMES, max_draws)

    def thinned(self, max_draws: int | None) -> FittedClv:
        """The same pair with at most ``max_draws`` evenly spaced posterior draws (the same
        draws :meth:`purchase_draws` picks), as one chain: small enough to ship to workers."""
        if max_draws is None:
            return self
        spend = self.spend_draws(max_draws)
        return replace(
            self,
            purchase_posterior=draws_as_posterior(self.purchase_draws(max_draws)),
            spend_posterior=None if spend is None else draws_as_posterior(spend),
        )

    def predict(
        self,
        customers: pd.DataFrame,
        settings: PredictionSettings,
        max_draws: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        with_spend: bool = True,
    ) -> pd.DataFrame:
        """Every customer's predictions with credible intervals
        (:func:`models.btyd.predict.predict_customers`) from at most ``max_draws`` draws;
        ``with_spend=False`` leaves out spend and CLV. With covariates, every customer's
        predictions come from their own parameters (``customers`` carries the covariates)."""
        ends = None
        if self.season is not None:  # the summaries, the horizon and the periods on its clock
            f, k = settings.time_units_per_period, settings.clv_periods
            ends = self.season.windows(customers, [settings.horizon, *(f * np.arange(1, k + 1))])
            settings, ends = replace(settings, horizon=float(ends[0])), ends[1:]
            customers = self.season.summaries(customers)
        args = (
            self.purchase_draws(max_draws),
            self.spend_draws(max_draws) if with_spend else None,
            customers,
            self.purchase,
        )
        if self.settings.covariates:
            covariates = self.settings.covariates
            return predict_with_covariates(*args, covariates, settings, progress, ends)
        return predict_customers(*args, settings, progress, ends)

    def churn_features(self, table: pd.DataFrame, horizon: float) -> pd.DataFrame:
        """``table`` plus what the purchase model expects over ``horizon`` at its MAP point."""
        from models.btyd.churn_features import add_btyd_features

        return add_btyd_features(
            table, self.point, self.purchase, horizon, self.settings.covariates, self.season
        )

    def to_trees(self) -> dict[str, xr.DataTree]:
        """The posteriors, each carrying the model kind, the settings and the MAP point."""
        attrs = {
            "cvm_format": FORMAT,
            "cvm_model": self.purchase.name,
            "cvm_clv_settings": json.dumps(self.settings.to_dict()),
            "cvm_map_point": json.dumps(self.map_point),
        }
        if self.season is not None:
            attrs["cvm_season"] = json.dumps(self.season.to_dict())
        if self.purchase.regularity:
            attrs["cvm_regularity"] = self.purchase.regularity
        trees = {"purchase": self.purchase_posterior, "spend": self.spend_posterior}
        out = {}
        for part, tree in trees.items():
            if tree is not None:
                out[part] = tree.copy()
                out[part].attrs = dict(tree.attrs) | attrs | {"cvm_part": part}
        return out

    @classmethod
    def from_trees(cls, purchase: xr.DataTree, spend: xr.DataTree | None) -> FittedClv:
        """The pair :meth:`to_trees` wrote; a ``ValueError`` when the trees are not such a pair."""
        attrs = purchase.attrs
        if attrs.get("cvm_format") != FORMAT:
            raise ValueError(f"not a cvm CLV posterior (format {attrs.get('cvm_format')!r})")
        if spend is not None and spend.attrs.get("cvm_map_point") != attrs.get("cvm_map_point"):
            raise ValueError("the purchase and spend posteriors come from different fits")
        return cls(
            purchase=purchase_model(attrs["cvm_model"], int(attrs.get("cvm_regularity", 0))),
            purchase_posterior=purchase,
            spend_posterior=spend,
            map_point=json.loads(attrs["cvm_map_point"]),
            settings=ClvSettings.from_dict(json.loads(attrs["cvm_clv_settings"])),
            season=Season.from_dict(json.loads(attrs["cvm_season"]))
            if "cvm_season" in attrs
            else None,
        )

    def save(self, directory: Path) -> None:
        """Write the pair into ``directory`` (created): each posterior as ArviZ netCDF
        (:data:`FILES`), with no creation time, so the same fit gives the same bytes."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for part, tree in self.to_trees().items():
            for node in tree.subtree:
                node.attrs.pop("created_at", None)
            tree.to_netcdf(directory / FILES[part])

    @classmethod
    def load(cls, directory: Path) -> FittedClv:
        """The pair :meth:`save` wrote into ``directory`` (a purchase-only pair has no spend
        file).

        Raises
        ------
        FileNotFoundError, ValueError
            No purchase posterior, or files that are not a cvm CLV pair.
        """
        purchase, spend = (Path(directory) / FILES[part] for part in ("purchase", "spend"))
        if not purchase.is_file():
            raise FileNotFoundError(f"{purchase} not found")
        return cls.from_trees(
            xr.load_datatree(purchase), xr.load_datatree(spend) if spend.is_file() else None
        )


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


def draws_as_posterior(draws: dict[str, np.ndarray]) -> xr.DataTree:
    """Draws ``{name: 1-D array}`` as a posterior of one chain."""
    n = len(next(iter(draws.values())))
    data = {
        k: (("chain", "draw"), np.asarray(v, dtype=float).reshape(1, n)) for k, v in draws.items()
    }
    posterior = xr.Dataset(data, coords={"chain": [0], "draw": np.arange(n)})
    return xr.DataTree.from_dict({"posterior": posterior})


def point_as_posterior(point: dict[str, float], names: tuple[str, ...]) -> xr.DataTree:
    """A MAP point as a posterior of one chain with one draw."""
    return draws_as_posterior({n: np.array([point[n]]) for n in names})


def _fit_part(
    part: str,
    built: BuiltModel,
    settings: ClvSettings,
    sample: tuple | None = None,
    point: dict | None = None,
) -> dict:
    """Fit one model: ``tree``, ``point``, ``problems``, ``seconds``, ``diagnostics``;
    ``sample``: where the MAP search starts (:func:`~models.btyd.inference.fit_map`);
    ``point``: the MAP where it is found already (the search for a regularity)."""
    start = time.perf_counter()
    if point is None:
        point = fit_map(built, seed=settings.seed, sample=sample)
    out = {"point": point, "problems": [], "diagnostics": {}}
    out["seconds"] = {f"{part}_map": time.perf_counter() - start}
    if settings.method == "map":
        return out | {"tree": point_as_posterior(point, built.names)}
    s = settings.sampler
    start = time.perf_counter()
    idata = sample_posterior(
        built,
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


class DegenerateData(ValueError):
    """The data cannot identify a model: what is missing and what to do instead."""


MIN_SPEND_CV = 1e-6  # below this coefficient of variation, spend per purchase is a constant


def check_data(summary: pd.DataFrame, settings: ClvSettings) -> pd.DataFrame:
    """The Gamma-Gamma sample (repeat buyers with positive spend), once the data is checked to
    identify the models; a :class:`DegenerateData` saying what is missing otherwise."""
    repeaters = int((summary["frequency"] > 0).sum())
    if len(summary) < 2 or repeaters == 0:
        raise DegenerateData(
            f"{len(summary)} customer(s), {repeaters} with a repeat purchase: the purchase model "
            "needs several customers, some of whom bought more than once. Move the cutoff later "
            "or use a longer log"
        )
    missing = [c for c in settings.covariates if c not in summary.columns]
    if missing:
        raise DegenerateData(f"the summary has no covariate columns {missing}")
    if (
        settings.covariates
        and not np.isfinite(summary[list(settings.covariates)].to_numpy(float)).all()
    ):
        raise DegenerateData(f"covariates {list(settings.covariates)} have missing values")
    if not settings.spend:
        return summary.iloc[:0]
    buyers = gamma_gamma.repeaters(summary)
    if len(buyers) < 2:
        raise DegenerateData(
            f"{len(buyers)} repeat buyer(s) with positive spend: Gamma-Gamma needs at least two. "
            "For a log without meaningful amounts set data.mapping.amount: null (purchase-only)"
        )
    spend = buyers["monetary_value"].to_numpy(dtype=float)
    if spend.std() <= MIN_SPEND_CV * spend.mean():
        raise DegenerateData(
            f"every repeat buyer spends {spend.mean():.6g} per purchase: with no variation in "
            "spend Gamma-Gamma cannot be fit. Set data.mapping.amount: null (purchase-only) and "
            "clv.prediction.value_per_purchase to value purchases at a fixed amount"
        )
    return buyers


def fit_clv(
    summary: pd.DataFrame,
    settings: ClvSettings,
    repeats: Repeats | None = None,
    unit_days: float = 7.0,
) -> FittedClv:
    """Fit the purchase model on every customer and, unless ``settings.spend`` is off,
    Gamma-Gamma on the repeat buyers.

    ``summary`` has ``frequency``, ``recency``, ``T`` and ``monetary_value``; identical rows are
    collapsed inside the models, so the cost grows with distinct summaries. Data that cannot
    identify a model raises :class:`DegenerateData` before anything is fit.

    With ``settings.season``, the season is fit first (:func:`models.btyd.season.fit_season`:
    ``summary`` also has ``cutoff``, ``tenure_days`` and ``recency_days``; ``repeats`` are the
    log's repeat purchases per period; ``unit_days`` the days in a model time unit) and the
    purchase model on the summaries on its clock.

    A model with regular purchases (MBG/CNBD-k) is fit at the regularity its likelihood
    prefers (:func:`fit_regularity`; ``summary`` also has ``log_gap_sum``).
    """
    purchase = purchase_model(settings.model)
    buyers = check_data(summary, settings)
    season = _season(summary, settings, repeats, unit_days) if settings.season else None
    if season is not None:
        summary = season.summaries(summary)
    info = {"season": season_info(season)} if season is not None else {}
    if purchase.regularity:
        purchase, built, point, info["regularity"] = fit_regularity(
            purchase.name, summary, settings
        )
        searched = info["regularity"].pop("seconds")  # a time: with the fit's, not in the report
        tx = _fit_part("transactions", built, settings, point=point)
        tx["seconds"]["regularity_search"] = searched
    else:
        built = build_purchase(purchase, summary, settings.priors, settings.covariates)
        tx = _fit_part("transactions", built, settings, _map_sample(purchase, summary, settings))
    parts = [tx]
    map_point = {"purchase": {k: tx["point"][k] for k in (*built.names, "loglik")}}
    if settings.spend:
        sp = _fit_part("spend", gamma_gamma.build_model(buyers, settings.priors), settings)
        parts.append(sp)
        map_point["spend"] = {k: sp["point"][k] for k in (*gamma_gamma.PARAM_NAMES, "loglik")}
    counts = {
        "customers": len(summary),
        "distinct_summaries": len(summary[["frequency", "recency", "T"]].drop_duplicates()),
        "repeat_buyers": int((summary["frequency"] > 0).sum()),
        "spend_buyers": len(buyers),
    }
    if settings.covariates:
        columns = ["frequency", "recency", "T", *settings.covariates]
        counts["distinct_rows"] = len(summary[columns].drop_duplicates())
    return FittedClv(
        purchase=purchase,
        purchase_posterior=tx["tree"],
        spend_posterior=sp["tree"] if settings.spend else None,
        map_point=map_point,
        settings=settings,
        fit_info={
            "convergence_problems": [p for part in parts for p in part["problems"]],
            "seconds": {k: v for part in parts for k, v in part["seconds"].items()},
            "counts": counts,
            "diagnostics": {k: v for part in parts for k, v in part["diagnostics"].items()},
        }
        | info,
        season=season,
    )


def fit_regularity(
    name: str, summary: pd.DataFrame, settings: ClvSettings
) -> tuple[PurchaseModel, BuiltModel, dict, dict]:
    """The purchase model ``name`` at the regularity ``k`` of highest likelihood, the MAP fit
    at each ``k`` plus the part only ``k`` moves (``regularity_loglik``); ``k`` from 1 up,
    stopping once the likelihood has fallen twice in a row (BTYDplus's search). Returns the
    model, its built model and MAP point at that ``k``, and ``{"k": k, "loglik": {k: value},
    "seconds": the search's}``."""
    if LOG_GAPS not in summary.columns:
        raise DegenerateData(
            f"clv.model={name} chooses its regularity by the summary's {LOG_GAPS} column (the "
            "sum of the logs of each customer's times between purchases), which this table lacks"
        )
    started = time.perf_counter()
    loglik: dict[int, float] = {}
    fits: dict[int, tuple[PurchaseModel, BuiltModel, dict]] = {}
    for k in range(1, MAX_REGULARITY + 1):
        model = purchase_model(name, k)
        built = build_purchase(model, summary, settings.priors, settings.covariates)
        point = fit_map(built, seed=settings.seed, sample=_map_sample(model, summary, settings))
        loglik[k] = point["loglik"] + regularity_loglik(summary, k)
        fits[k] = (model, built, point)
        if k > 2 and loglik[k] < loglik[k - 1] < loglik[k - 2]:
            break
    best = max(loglik, key=loglik.__getitem__)
    seconds = time.perf_counter() - started
    return *fits[best], {"k": best, "loglik": loglik, "seconds": seconds}


MAP_SAMPLE = 40_000  # customers a purchase model's MAP on many more starts from


def _map_sample(
    purchase: PurchaseModel, summary: pd.DataFrame, settings: ClvSettings
) -> tuple[BuiltModel, float] | None:
    """For a model without a grouped density (whose every evaluation reads each distinct
    summary) on more than twice :data:`MAP_SAMPLE` customers: the model on that many of them,
    drawn at random, and how many times fewer they are; ``None`` otherwise."""
    if purchase.factored is not None or len(summary) <= 2 * MAP_SAMPLE:
        return None
    rows = summary.sample(MAP_SAMPLE, random_state=settings.seed)
    built = build_purchase(purchase, rows, settings.priors, settings.covariates)
    return built, len(summary) / MAP_SAMPLE


def _season(
    summary: pd.DataFrame, settings: ClvSettings, repeats: Repeats | None, unit_days: float
) -> Season:
    if repeats is None:
        raise DegenerateData("clv.season: a seasonal fit needs the log's repeat purchases")
    try:
        return fit_season(summary, repeats, unit_days, settings.seed)
    except SeasonError as err:
        raise DegenerateData(
            f"clv.season: {err}. Set clv.season=false, or move the cutoff later"
        ) from None


def season_info(season: Season) -> dict[str, float]:
    """The season as a report shows it: ``a``, ``b``, the amplitude (the busiest day's intensity
    is ``1 + amplitude``) and the busiest day of the year (1-366)."""
    peak = (np.pi / 2 - np.arctan2(season.b, season.a)) / OMEGA % YEAR
    peak_day = float(peak) + 1
    return {"a": season.a, "b": season.b, "amplitude": season.amplitude, "peak_day": peak_day}
