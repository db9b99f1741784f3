"""The purchase model chosen out of time.

Each candidate is a purchase model of the family, on the calendar's clock or on a yearly
seasonal one (:mod:`models.btyd.season`). At the validation cutoff (the latest training cutoff,
whose window ends by the fit's own cutoff) every candidate is fit (MAP) on the customers'
summaries at that cutoff alone and forecasts each customer's purchases in the window after it;
its scores are measured on the purchases made there:

- ``deviance``: the customers' mean Poisson deviance of the forecast, ``2 (y log(y / m) -
  (y - m))`` for ``y`` purchases forecast at ``m`` (the criterion);
- ``mae``: their mean absolute error of purchases;
- ``aggregate_error_pct``: the forecast total against the actual one, in percent;
- ``predicted`` and ``actual``: those totals.

The criterion is the deviance, not the MAE: a forecast is an expected count, and the deviance,
like the squared error, is lowest in expectation at the true mean, whereas the MAE is lowest at
the median, which is 0 for most customers of a log, so it rewards a forecast that runs low (on a
seasonal log ahead of the busy months, stationary models 25 % short had a lower MAE than
seasonal ones 8 % over). The rule prefers the simpler model: candidates are listed from the
simplest (fewest parameters, no season) and the first whose deviance is within the noise of the
lowest is chosen, the noise being twice the standard error of the paired per-customer
difference. A difference the customers at hand cannot tell apart is not a reason for a bigger
model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.btyd.clv import ClvSettings, DegenerateData, FittedClv, fit_clv
from models.btyd.point_fit import PointFit
from models.btyd.predict import PredictionSettings
from models.btyd.season import Repeats, cutoff_days, history_problem, named

RULE = (
    "the candidate of lowest mean Poisson deviance of each customer's purchases in the window "
    "after the validation cutoff, each fit on the data up to it; the simplest candidate (first "
    "listed) whose deviance is within twice the standard error of the paired difference from "
    "the lowest"
)


@dataclass(frozen=True)
class Candidate:
    """A purchase model of the family, with a yearly season or not."""

    model: str
    season: bool

    @property
    def name(self) -> str:
        return named(self.model, self.season)


def candidates(models: Sequence[str], season: bool | str) -> list[Candidate]:
    """The candidates from the simplest: ``models`` in their order, without a season, then with
    one (``season``: ``"auto"`` both, ``True`` only with, ``False`` only without)."""
    seasons = {"auto": (False, True), True: (True,), False: (False,)}[season]
    return [Candidate(model, s) for s in seasons for model in models]


def choose(
    validation: pd.DataFrame,
    outcome: str,
    horizon: float,
    candidates: Sequence[Candidate],
    settings: ClvSettings,
    repeats: Repeats | None,
    unit_days: float,
) -> dict:
    """Score every candidate at the validation cutoff and choose one.

    ``validation``: the customers at the validation cutoff (the summary, ``cutoff``,
    ``tenure_days``, ``recency_days``) and in column ``outcome`` their purchases in the
    ``horizon`` (model units) after it; ``settings``: how each candidate is fit (its model,
    season and method replaced); ``repeats``: the log's repeat purchases, which the seasonal
    candidates need. A seasonal candidate is left out, with the reason, where the log holds
    less than a year before the validation cutoff (``DegenerateData`` says so when that leaves
    none), and so is a candidate the data cannot identify (:func:`fit_candidate`).

    Returns ``choice`` (the candidate's name), ``model``, ``season``, the ``scores`` of each
    candidate, the ``noise`` of each against the lowest deviance, the ``rule``, the ``reason``,
    the candidates ``left_out`` and the ``fits`` (each a :class:`PointFit`'s dict: what the
    churn level reads at the same cutoff, :mod:`models.churn.level`).
    """
    actual = validation[outcome].to_numpy(dtype=float)
    kept, left_out = usable(candidates, validation, repeats)
    if not kept:  # every candidate seasonal, and less than a year before the cutoff
        problem = next(iter(left_out.values()))
        raise DegenerateData(
            f"clv.season: {problem}; with clv.season=auto the candidates "
            "without a season compete too"
        )
    fitted, unfit = fit_candidates(validation, kept, settings, repeats, unit_days)
    left_out |= unfit
    if not fitted:
        raise DegenerateData("no candidate can be fit: " + "; ".join(left_out.values()))
    window = PredictionSettings(horizon=horizon, clv_periods=0)
    errors, scores, fits = {}, {}, {}
    for name, fit in fitted.items():
        fits[name] = PointFit.of(fit, unit_days).to_dict()
        predicted = fit.predict(validation, window)["expected_purchases"].to_numpy()
        errors[name] = poisson_deviance(actual, predicted)
        scores[name] = {
            "deviance": float(errors[name].mean()),
            "mae": float(np.abs(predicted - actual).mean()),
            "aggregate_error_pct": 100 * (predicted.sum() / max(actual.sum(), 1.0) - 1),
            "predicted": float(predicted.sum()),
            "actual": float(actual.sum()),
        }
    best = min(scores, key=lambda name: scores[name]["deviance"])
    noise = {name: _noise(errors[name] - errors[best]) for name in scores}
    lowest = scores[best]["deviance"]
    choice = next(name for name in scores if scores[name]["deviance"] - lowest <= noise[name])
    chosen = next(c for c in candidates if c.name == choice)
    return {
        "choice": choice,
        "model": chosen.model,
        "season": chosen.season,
        "validation_cutoff": pd.Timestamp(validation["cutoff"].iloc[0]).date().isoformat(),
        "customers": len(validation),
        "scores": scores,
        "noise": noise,
        "rule": RULE,
        "reason": _reason(choice, best, scores, noise),
        "left_out": left_out,
        "fits": fits,
    }


def usable(
    candidates: Sequence[Candidate], table: pd.DataFrame, repeats: Repeats | None
) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates that can be fit at the table's cutoff, and those left out with the
    reason: the seasonal ones where the log holds less than a year before it."""
    seasonal = [c.name for c in candidates if c.season]
    problem = seasonal and history_problem(float(cutoff_days(table)[0]), repeats)
    left_out = dict.fromkeys(seasonal, problem) if problem else {}
    return [c for c in candidates if c.name not in left_out], left_out


# a Weibull shape above this is a lifetime fit that ran along its ridge (k -> inf and s -> 0
# with k s fixed: a survival falling as a small power of age), not an ageing the log shows:
# there the MAP stops wherever the search does, and its forecast with it (BG/NBD with Weibull
# lifetimes on CDNOW stopped at k = 60 in one build and k = 36 in another, deviances 8e-4
# apart, which moved the out-of-time choice)
MAX_SHAPE = 10.0


def fit_candidates(
    table: pd.DataFrame,
    candidates: Sequence[Candidate],
    settings: ClvSettings,
    repeats: Repeats | None,
    unit_days: float,
) -> tuple[dict[str, FittedClv], dict[str, str]]:
    """Each candidate's fit (:func:`fit_candidate`) by name, and those the data cannot
    identify with the reason."""
    fits, left_out = {}, {}
    for candidate in candidates:
        try:
            fits[candidate.name] = fit_candidate(table, candidate, settings, repeats, unit_days)
        except DegenerateData as err:
            left_out[candidate.name] = str(err)
    return fits, left_out


def fit_candidate(
    table: pd.DataFrame,
    candidate: Candidate,
    settings: ClvSettings,
    repeats: Repeats | None,
    unit_days: float,
) -> FittedClv:
    """A candidate's MAP fit on the customers ``table`` (one cutoff), purchases alone and
    without covariates, otherwise as ``settings`` say: how every out-of-time choice of the
    family fits its candidates, the CLV's and the churn level's. ``DegenerateData`` where the
    data cannot identify it, a Weibull lifetime's shape beyond :data:`MAX_SHAPE` included."""
    fit_settings = replace(
        settings,
        model=candidate.model,
        season=candidate.season,
        method="map",
        spend=False,
        covariates=(),
    )
    fit = fit_clv(table, fit_settings, repeats, unit_days)
    shape = fit.point.get("k")  # a Weibull lifetime's shape
    if shape is not None and shape > MAX_SHAPE:
        raise DegenerateData(
            f"{candidate.name}: the lifetime's Weibull shape ran to k = {shape:.3g} (s = "
            f"{fit.point['s']:.3g}) along the ridge where only k s is told: a lifetime this "
            "log does not identify"
        )
    return fit


def poisson_deviance(actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Each customer's Poisson deviance of ``actual`` purchases forecast at ``predicted``."""
    m = np.maximum(predicted, 1e-12)
    ratio = np.where(actual > 0, actual / m, 1.0)
    return 2 * (actual * np.log(ratio) - (actual - m))


def _noise(difference: np.ndarray) -> float:
    """Twice the standard error of the mean of a paired difference."""
    return float(2 * difference.std() / np.sqrt(max(len(difference), 1)))


def _reason(choice: str, best: str, scores: dict, noise: dict) -> str:
    deviance = scores[choice]["deviance"]
    if choice == best:
        if len(scores) == 1:
            return f"{choice}: the only candidate (deviance {deviance:.4f})"
        return (
            f"{choice} has the lowest deviance ({deviance:.4f}); every simpler candidate's is "
            "higher by more than the noise"
        )
    return (
        f"{choice} (deviance {deviance:.4f}) is within the noise ({noise[choice]:.4f}) of the "
        f"lowest, {best} ({scores[best]['deviance']:.4f}), and simpler"
    )
