"""The churn level and the shape of its prior, chosen out of time among the purchase models.

The churn model's shape comes from its validation cutoff; its level is set afterwards to a
purchase model's mean P(no purchase) over the customers scored (``classifier.shifted_to``).
The CLV model may be a stationary one: on a log with a season, or whose customers leave
faster as they age, its mean is off by several points. So the level comes from whichever
model of the family erred least at the validation cutoff, out of time: the CLV model's own
P(no purchase) (``clv``) or one of the candidates ``clv.candidates`` names, with and without a
yearly season. They are fit as the CLV's out-of-time choice fits them
(:func:`models.btyd.choice.fit_candidate`: MAP on the data up to the validation cutoff) and
measured on the churn window after it, the window that choice scores too.

The same candidates compete for the score's shape: the churn candidates recalibrate the
probability of whichever ranked the validation customers best (``shape``), so that a season,
an ageing or a regularity the CLV model does not know orders the customers too. A shape travels
with the churn model as a :class:`~models.btyd.point_fit.PointFit`. Each candidate is fit on at
most :data:`MAX_CUSTOMERS` customers drawn at random, and measured on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.btyd.choice import Candidate, fit_candidates, usable
from models.btyd.clv import ClvSettings
from models.btyd.point_fit import PointFit
from models.btyd.season import Repeats
from models.churn.calibration import at_mean
from models.evaluation.metrics import log_losses

MAX_CUSTOMERS = 10_000


def _fits(
    table: pd.DataFrame,
    candidates: Sequence[Candidate],
    settings: ClvSettings,
    repeats: Repeats | None,
    unit_days: float,
    seed: int,
    made: dict[str, dict] | None = None,
) -> tuple[dict[str, PointFit], dict[str, str]]:
    """Each candidate fit on at most :data:`MAX_CUSTOMERS` of the customers ``table``, and
    those that cannot be fit there with the reason; a candidate ``made`` holds (a
    :class:`PointFit`'s dict, fit on these customers) is taken as it is."""
    made = made or {}
    fits = {c.name: PointFit.from_dict(made[c.name]) for c in candidates if c.name in made}
    rows = table.sample(MAX_CUSTOMERS, random_state=seed) if len(table) > MAX_CUSTOMERS else table
    kept, left_out = usable([c for c in candidates if c.name not in made], rows, repeats)
    fitted, unfit = fit_candidates(rows, kept, settings, repeats, unit_days)
    left_out |= unfit
    fits |= {name: PointFit.of(fit, unit_days) for name, fit in fitted.items()}
    return {c.name: fits[c.name] for c in candidates if c.name in fits}, left_out


def churn_level(
    validation: pd.DataFrame,
    validation_clv: np.ndarray,
    target: pd.DataFrame,
    target_clv_mean: float,
    candidates: Sequence[Candidate],
    settings: ClvSettings,
    repeats: Repeats | None,
    unit_days: float,
    horizon_days: float,
    seed: int = 0,
    made: dict[str, dict] | None = None,
) -> dict:
    """The churn level and shape of the published score, both chosen at the validation cutoff
    among the CLV model and the ``candidates``, each fit on the data up to it.

    - ``mean``: the mean P(no purchase) over ``target`` of the model whose mean erred least.
    - ``shape``: the model whose P(no purchase), shifted to the observed rate, had the lowest
      log loss on the validation customers: the calibration prior of the churn candidates
      (its ``choice``, and its fit at each cutoff, ``None`` for the CLV model's own).

    The CLV model is kept for either unless another is better by more than twice the sampling
    error (of the observed rate, and of the paired per-customer log loss difference): a
    choice among models by a difference the customers at hand cannot tell is noise. Ties go
    to the earlier, the candidates being listed from the simplest.

    ``validation``: the customers at the validation cutoff (summary, dates, ``cutoff``) with
    ``churned``; ``validation_clv``: the CLV model's P(no purchase) of each; ``target``: the
    customers scored, ``target_clv_mean`` the CLV model's mean over them; ``settings``,
    ``repeats`` and ``unit_days``: how the candidates are fit
    (:func:`models.btyd.choice.fit_candidate`); ``made``: the fits the CLV's own out-of-time
    choice made at the validation cutoff (its ``fits``), used as they are.
    """
    churned = validation["churned"].to_numpy(dtype=float)
    observed = float(np.mean(churned))
    how = (settings, repeats, unit_days, seed)
    fits, left_out = _fits(validation, candidates, *how, made)
    p = {name: fit.p_no_purchase(validation, horizon_days) for name, fit in fits.items()}
    p = {"clv": np.asarray(validation_clv, dtype=float)} | p
    order = list(p)  # the CLV model's first, then the candidates from the simplest
    errors = {name: float(np.mean(values)) - observed for name, values in p.items()}
    noise = 2 * np.sqrt(observed * (1 - observed) / len(churned))
    best = min(errors, key=lambda name: (abs(errors[name]), order.index(name)))
    choice = best if abs(errors[best]) < abs(errors["clv"]) - noise else "clv"
    losses = {name: _shifted_log_loss(values, churned) for name, values in p.items()}
    shape, shape_noise = _shape(losses, order)
    named = {c.name: c for c in candidates}
    at_target, _ = _fits(target, [named[n] for n in order if n in {choice, shape} - {"clv"}], *how)
    choice, shape = (n if n == "clv" or n in at_target else "clv" for n in (choice, shape))
    mean = target_clv_mean
    if choice != "clv":
        mean = float(np.mean(at_target[choice].p_no_purchase(target, horizon_days)))
    fitted = shape != "clv"
    return {
        "choice": choice,
        "mean": float(mean),
        "validation_errors": errors,
        "noise": float(noise),
        "left_out": left_out,
        "rule": "the model with the smallest |mean P(no purchase) - observed churn| at the "
        "validation cutoff, each fit on the data up to it; the CLV model's own unless another "
        "is closer by more than the noise (twice the observed rate's standard error)",
        "shape": {
            "choice": shape,
            "validation_log_loss": {k: float(v.mean()) for k, v in losses.items()},
            "noise": shape_noise,
            "rule": "the model whose P(no purchase), shifted to the observed churn rate, has the "
            "lowest log loss on the validation customers; the CLV model's own unless another "
            "is lower by more than twice the standard error of the paired difference",
            "validation": _shape_at(fits[shape], horizon_days) if fitted else None,
            "target": _shape_at(at_target[shape], horizon_days) if fitted else None,
        },
    }


def _shape_at(fit: PointFit, horizon_days: float) -> dict:
    """What a churn model's prior reads (``classifier.prior_of``): the fit and the churn
    horizon."""
    return {"fit": fit.to_dict(), "horizon_days": float(horizon_days)}


def _shifted_log_loss(p: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """Each customer's log loss of ``p`` shifted on the logit scale to the observed rate: the
    shape of a score, its level set aside (the level is chosen on its own)."""
    return log_losses(churned, at_mean(p, np.mean(churned)))


def _shape(losses: dict[str, np.ndarray], order: list[str]) -> tuple[str, float]:
    """The model of lowest mean log loss, unless the CLV model's is within twice the standard
    error of the paired difference; and that noise."""
    best = min(losses, key=lambda name: (losses[name].mean(), order.index(name)))
    diff = losses["clv"] - losses[best]
    noise = float(2 * diff.std() / np.sqrt(len(diff)))
    return (best if diff.mean() > noise else "clv"), noise


def churn_level_at(
    train: pd.DataFrame,
    target: pd.DataFrame,
    prior: str,
    candidates: Sequence[Candidate],
    settings: ClvSettings,
    repeats: Repeats | None,
    unit_days: float,
    horizon_days: float,
    seed: int = 0,
    made: dict[str, dict] | None = None,
) -> dict:
    """:func:`churn_level` from the frames a churn model is trained and shifted with: the
    stacked training table (its latest cutoff validates) and the target's features, each with
    the CLV model's P(no purchase) in column ``prior`` and a ``cutoff``."""
    cutoffs = pd.to_datetime(train["cutoff"])
    validation = train[(cutoffs == cutoffs.max()).to_numpy()].reset_index(drop=True)
    return churn_level(
        validation,
        validation[prior].to_numpy(dtype=float),
        target.reset_index(drop=True),
        float(target[prior].mean()),
        candidates,
        settings,
        repeats,
        unit_days,
        horizon_days,
        seed,
        made,
    )
