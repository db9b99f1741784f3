"""The churn level: how many of the customers scored will not buy in the churn horizon.

The churn model's shape comes from its validation cutoff; its level is set afterwards to a
purchase model's mean P(no purchase) over the customers scored (``classifier.shifted_to``).
The CLV model is stationary: on a log with a season, or whose customers leave faster as they
age, its mean is off by several points. So the level comes from whichever of these models
erred least on the validation cutoff, out of time (each fit on the data up to that cutoff and
measured on the churn window after it):

- ``clv``: the CLV model's own P(no purchase), as before;
- ``bgnbd_season``: BG/NBD with a yearly season;
- ``weibull``: Pareto/NBD whose lifetimes are Weibull (``k > 1``: dropout rises with age);
- ``weibull_season``: both.

The same models compete for the score's shape: the churn candidates recalibrate the
probability of whichever ranked the validation customers best (:func:`churn_level`'s
``shape``, applied to any feature table by :func:`shape_p_no_purchase`), so that a season or
an ageing the CLV model does not know orders the customers too.

The models are the family's (:mod:`models.btyd.bgnbd`, :mod:`models.btyd.weibull_nbd`: their
likelihoods and P(no purchase)); a season is the change of clock of :mod:`models.btyd.season`,
BG/NBD's as the CLV's seasonal candidates have it. Maximum likelihood, on at most
:data:`MAX_CUSTOMERS` customers drawn at random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from models.btyd import weibull_nbd
from models.btyd.bgnbd import BGNBD
from models.btyd.season import (
    MIN_HISTORY_DAYS,
    Customers,
    Repeats,
    bgnbd_loglik,
    fit_joint,
    seasonal_time,
)
from models.btyd.weibull_nbd import WEIBULL_NBD
from models.churn.calibration import at_mean
from models.evaluation.metrics import log_losses

WEEK = 7.0  # the fits' time unit, in days
MAX_CUSTOMERS = 10_000
CHUNK = 100_000  # customers per prediction pass: bounded memory


MODELS = {  # name: (the family's model, starting log-parameters)
    "bgnbd": (BGNBD, np.log([0.25, 4.0, 0.8, 2.5])),
    "weibull": (WEIBULL_NBD, np.log([0.25, 4.0, 0.6, 10.0, 1.0])),
}


@dataclass(frozen=True)
class LevelFit:
    model: str
    log_params: np.ndarray
    season: tuple[float, float]  # (A, B); (0, 0) without a season

    def p_no_purchase(self, c: Customers, horizon_days: float) -> np.ndarray:
        """Each customer's P(no purchase in the ``horizon_days`` after the cutoff)."""
        a, b = self.season
        t_x, age = c.on_clock(a, b, WEEK)
        clock = [seasonal_time(c.cutoff + d, a, b, WEEK) for d in (0, horizon_days)]
        horizon = clock[1] - clock[0]
        horizon = np.broadcast_to(horizon, c.x.shape)
        model = MODELS[self.model][0]
        params = dict(zip(model.param_names, map(float, np.exp(self.log_params)), strict=True))
        out = np.empty(len(c.x))
        for part in (slice(i, i + CHUNK) for i in range(0, len(c.x), CHUNK)):  # bounded memory
            with np.errstate(all="ignore"):
                p = model.p_no_purchase(params, *(v[part] for v in (horizon, c.x, t_x, age)))
            out[part] = np.clip(p, 0, 1)
        return out

    def mean_p_no_purchase(self, c: Customers, horizon_days: float) -> float:
        return float(np.mean(self.p_no_purchase(c, horizon_days)))

    def to_dict(self) -> dict:
        params = list(map(float, self.log_params))
        return {"model": self.model, "log_params": params, "season": list(self.season)}

    @classmethod
    def from_dict(cls, d: dict) -> LevelFit:
        return cls(d["model"], np.asarray(d["log_params"], dtype=float), tuple(d["season"]))


SHAPE_COLUMNS = ("cutoff", "frequency", "tenure_days", "recency_days")  # what a shape reads


def shape_p_no_purchase(shape: dict, frame: pd.DataFrame) -> np.ndarray:
    """P(no purchase) of each row of a feature table (its own ``cutoff`` each) under a shape
    model (a ``fit`` and its ``horizon_days``: :func:`churn_level`'s ``shape``, at the
    validation or the target cutoff)."""
    fit = LevelFit.from_dict(shape["fit"])
    return fit.p_no_purchase(Customers.from_table(frame), shape["horizon_days"])


def fit_level(
    model: str,
    seasonal: bool,
    c: Customers,
    repeats: Repeats,
    season: tuple[float, float] | None = None,
) -> LevelFit:
    """Maximum likelihood of ``model`` (``bgnbd`` or ``weibull``), with a season or not, on the
    customers ``c``; ``repeats``: the log's repeat purchases, for the season's ``sum log s``.

    The season is BG/NBD's, fit jointly with its parameters, as the CLV's seasonal candidates'
    (:func:`models.btyd.season.fit_season`), or ``season`` when that fit was made already;
    Weibull/NBD is fit on its clock with the exact gradient of its likelihood."""
    start = MODELS[model][1]
    if model == "bgnbd":
        bounds = [(-7.0, 7.0)] * len(start)
        log_params, season = fit_joint(
            bgnbd_loglik, start, bounds, c, repeats if seasonal else None, WEEK
        )
        return LevelFit(model, log_params, season)
    if not seasonal:
        season = (0.0, 0.0)
    elif season is None:
        season = fit_level("bgnbd", True, c, repeats).season
    return LevelFit(model, _weibull_mle(start, c, season), season)


def _weibull_mle(start: np.ndarray, c: Customers, season: tuple[float, float]) -> np.ndarray:
    """Weibull/NBD's maximum likelihood in log-parameters on the ``season``'s clock, with the
    exact gradient of its numpy likelihood (:func:`models.btyd.weibull_nbd.loglik_and_grad`);
    ``k`` within [0.3, 5]."""
    t_x, age = c.on_clock(*season, WEEK)
    weights = np.ones(len(c.x))

    def loss(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.exp(log_params)
        value, grad = weibull_nbd.loglik_and_grad(theta, c.x, t_x, age, weights)
        if not np.isfinite(value):
            return 1e12, np.zeros_like(theta)  # finite: the line search must compare
        return -value, -grad * theta

    bounds = [(-7.0, 7.0)] * 4 + [(np.log(0.3), np.log(5.0))]
    with np.errstate(all="ignore"):  # the search passes through overflowing corners
        res = optimize.minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return res.x


SPECS = {
    "bgnbd_season": ("bgnbd", True),
    "weibull": ("weibull", False),
    "weibull_season": ("weibull", True),
}  # name: (model, seasonal)
LEVELS = ("clv", *SPECS)  # ties go to the earlier


def _fits(names, c: Customers, repeats: Repeats) -> dict[str, LevelFit]:
    """The level models ``names`` (of :data:`SPECS`, in its order) fit on ``c``; BG/NBD's
    seasonal fit, whose season the seasonal Weibull/NBD runs on, made once."""
    fits: dict[str, LevelFit] = {}
    for name in (n for n in SPECS if n in names):
        made = fits.get("bgnbd_season")
        fits[name] = fit_level(*SPECS[name], c, repeats, made.season if made else None)
    return fits


def churn_level(
    validation: Customers,
    validation_churned: np.ndarray,
    validation_clv: np.ndarray,
    target: Customers,
    target_clv_mean: float,
    repeats: Repeats,
    horizon_days: float,
    seed: int = 0,
) -> dict:
    """The churn level and shape of the published score, both chosen at the validation cutoff
    among the CLV model and the level models, each fit on the data up to it.

    - ``mean``: the mean P(no purchase) over ``target`` of the model whose mean erred least.
    - ``shape``: the model whose P(no purchase), shifted to the observed rate, had the lowest
      log loss on the validation customers: the calibration prior of the churn candidates
      (its ``choice``, and its fit at each cutoff, ``None`` for the CLV model's own).

    The CLV model is kept for either unless another is better by more than twice the sampling
    error (of the observed rate, and of the paired per-customer log loss difference): a
    choice among models by a difference the customers at hand cannot tell is noise.

    ``validation_clv``: the CLV model's P(no purchase) of each validation customer;
    ``target_clv_mean``: its mean at the target cutoff; ``repeats``: the log's repeat
    purchases, from its first day (whence the history a season needs).
    """
    observed = float(np.mean(validation_churned))
    v = validation.sample(MAX_CUSTOMERS, seed)
    history = validation.cutoff - repeats.start >= MIN_HISTORY_DAYS
    fits = _fits([n for n, (_, seasonal) in SPECS.items() if history or not seasonal], v, repeats)
    errors = {"clv": float(np.mean(validation_clv)) - observed} | {
        name: fit.mean_p_no_purchase(v, horizon_days) - observed for name, fit in fits.items()
    }
    noise = 2 * np.sqrt(observed * (1 - observed) / len(validation_churned))
    best = min(errors, key=lambda name: (abs(errors[name]), LEVELS.index(name)))
    choice = best if abs(errors[best]) < abs(errors["clv"]) - noise else "clv"
    losses = {"clv": _shifted_log_loss(validation_clv, validation_churned)} | {
        name: _shifted_log_loss(fit.p_no_purchase(validation, horizon_days), validation_churned)
        for name, fit in fits.items()
    }
    shape, shape_noise = _shape(losses)
    fitted = shape != "clv"
    t = target.sample(MAX_CUSTOMERS, seed)
    at_target = _fits({choice, shape} - {"clv"}, t, repeats)
    mean = target_clv_mean
    if choice != "clv":
        mean = at_target[choice].mean_p_no_purchase(t, horizon_days)
    return {
        "choice": choice,
        "mean": float(mean),
        "validation_errors": {k: float(e) for k, e in errors.items()},
        "noise": float(noise),
        "rule": "the level model with the smallest |mean P(no purchase) - observed churn| at "
        "the validation cutoff, each fit on the data up to it; the CLV model's own unless "
        "another is closer by more than the noise (twice the observed rate's standard error)",
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


def _shape_at(fit: LevelFit, horizon_days: float) -> dict:
    """What :func:`shape_p_no_purchase` reads: the fit and the churn horizon."""
    return {"fit": fit.to_dict(), "horizon_days": float(horizon_days)}


def _shifted_log_loss(p: np.ndarray, churned: np.ndarray) -> np.ndarray:
    """Each customer's log loss of ``p`` shifted on the logit scale to the observed rate: the
    shape of a score, its level set aside (the level is chosen on its own)."""
    return log_losses(churned, at_mean(p, np.mean(churned)))


def _shape(losses: dict[str, np.ndarray]) -> tuple[str, float]:
    """The model of lowest mean log loss, unless the CLV model's is within twice the standard
    error of the paired difference; and that noise."""
    best = min(losses, key=lambda name: (losses[name].mean(), LEVELS.index(name)))
    diff = losses["clv"] - losses[best]
    noise = float(2 * diff.std() / np.sqrt(len(diff)))
    return (best if diff.mean() > noise else "clv"), noise


def churn_level_at(
    train: pd.DataFrame,
    target: pd.DataFrame,
    prior: str,
    repeats: Repeats,
    horizon_days: float,
    seed: int = 0,
) -> dict:
    """:func:`churn_level` from the frames a churn model is trained and shifted with: the
    stacked training table (its latest cutoff validates) and the target's features, each with
    the CLV model's P(no purchase) in column ``prior`` and a ``cutoff``."""
    cutoffs = pd.to_datetime(train["cutoff"])
    validation = train[(cutoffs == cutoffs.max()).to_numpy()]
    return churn_level(
        Customers.from_table(validation, cutoffs.max().date()),
        validation["churned"].to_numpy(dtype=float),
        validation[prior].to_numpy(dtype=float),
        Customers.from_table(target, pd.Timestamp(target["cutoff"].iloc[0]).date()),
        float(target[prior].mean()),
        repeats,
        horizon_days,
        seed,
    )
