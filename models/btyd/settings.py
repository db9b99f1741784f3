"""The CLV models' settings (config group ``clv``): which purchase model, how it is fit (MAP or
NUTS, the sampler, convergence limits, priors) and what the predictions cover. Importing them
loads no PyMC."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from models.btyd.family import NAMES
from models.btyd.priors import Priors
from models.settings import (
    NOT_CONFIG,
    AtLeastOne,
    Count,
    Flag,
    NonNegative,
    OpenShare,
    Positive,
    PositiveNumber,
    integer,
    listing,
    number,
    settings,
)

METHODS = ("map", "nuts")
CHOICES = ("auto", *NAMES)  # clv.model: a purchase model, or the one chosen out of time
Model = Literal[NAMES]


@settings
class SamplerSettings:
    """NUTS settings (chains run in parallel on ``cores``); ``progressbar`` shows the sampler's.

    500 tuning steps and a target acceptance of 0.8 halve the gradient evaluations of 1,000 and
    0.9 on these low-dimensional, nearly Gaussian posteriors, with higher ESS: on 1,000,000
    simulated customers BG/NBD bulk ESS 3,463 vs 2,179, Gamma-Gamma 3,184 vs 2,093, no
    divergences, r-hat <= 1.005.
    """

    name: Literal["nutpie", "pymc"] = "nutpie"
    draws: AtLeastOne = 1000
    tune: Count = 500
    chains: AtLeastOne = 2
    cores: AtLeastOne = 2
    target_accept: OpenShare = 0.8
    progressbar: Annotated[Flag, NOT_CONFIG] = False


@settings
class ConvergenceSettings:
    """Limits on r-hat, ESS and divergences; ``on_failure`` is ``fail`` or ``warn``."""

    max_rhat: number(ge=1) = 1.01
    min_ess: NonNegative = 400
    max_divergences: Count = 0
    on_failure: Literal["fail", "warn"] = "fail"


@settings
class PredictionConfig:
    """What the predictions cover, in calendar units (``clv.prediction``): expected purchases
    over ``horizon_days``, the CLV over ``clv_months`` discounted at ``annual_discount_rate``
    with the share ``margin`` of spend as profit (with a margin column, each customer's own
    share, shrunk toward the population's by ``margin_prior_days``: :mod:`models.margin`),
    credible intervals of width ``interval``,
    ``chunk_size`` distinct summaries at a time from at most ``max_draws`` posterior draws
    (None: all); a log without amounts ranks ``value_per_purchase`` x expected purchases."""

    horizon_days: Positive = 365
    clv_months: Positive = 12
    annual_discount_rate: NonNegative = 0.1
    margin: number(gt=0, le=1) = 1.0
    margin_prior_days: number(ge=0) = 3.0
    interval: OpenShare = 0.9
    chunk_size: Positive = 2000
    max_draws: integer(gt=0) | None = 1000
    value_per_purchase: PositiveNumber | None = None


@settings
class ClvConfig:
    """The config group ``clv``: ``model`` a purchase model of the family, or ``auto``: the
    one of ``candidates`` chosen out of time (:mod:`models.btyd.choice`); ``season`` puts it on
    a yearly seasonal clock (:mod:`models.btyd.season`), ``auto``: where it forecasts better
    out of time."""

    model: Literal[CHOICES] = "bgnbd"
    method: Literal[METHODS] = "nuts"
    season: Flag | Literal["auto"] = False
    candidates: listing(Model, min_len=1, unique=True) = (
        "bgnbd",
        "mbgcnbd",
        "weibull_nbd",
        "bgnbd_weibull",
    )
    priors: Priors = field(default_factory=Priors)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    convergence: ConvergenceSettings = field(default_factory=ConvergenceSettings)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
