"""The peers' benchmark steps (lifetimes, pymc-marketing), run in the peers' own environment.

Each step does with the peer what the cvm step of the same name does with cvm, in weeks, on the
same log and the same reference summary; the CLV covers 12 months at 1 % monthly discount.
``pymc_marketing_nutpie`` is pymc-marketing sampling with ``nuts_sampler="nutpie"``: its ``nuts``
step and the ``clv`` from that posterior (its other steps are pymc-marketing's own).
"""

from __future__ import annotations

import sys
import warnings

import pandas as pd
from steps_common import (
    CLV_DRAWS,
    CLV_MONTHS,
    INTERVAL,
    MONTHLY_DISCOUNT,
    NUTS,
    UNIT_DAYS,
    Context,
    Timer,
    clv_stats,
    main,
    summary_stats,
)

warnings.filterwarnings("ignore")  # lifetimes on pandas 3 and PyMC warn a lot, harmlessly

TX_COLUMNS = ["customer_id", "frequency", "recency", "T"]
NUTPIE = NUTS | {"tune": 500, "nuts_sampler": "nutpie"}
SPEND_COLUMNS = ["customer_id", "frequency", "monetary_value"]


def _read_log(ctx: Context) -> pd.DataFrame:
    return pd.read_parquet(ctx.log, columns=["customer_id", "timestamp", "amount"])


def _read_summary(ctx: Context) -> pd.DataFrame:
    return pd.read_parquet(ctx.reference_summary)


def _repeaters(data: pd.DataFrame) -> pd.DataFrame:
    """The Gamma-Gamma sample: repeat buyers with positive mean spend."""
    return data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]


def _summary_result(summary: pd.DataFrame, timer: Timer, ctx: Context) -> dict:
    summary.to_parquet(ctx.output("summary.parquet"))
    return timer.record() | summary_stats(summary)


# --- lifetimes -------------------------------------------------------------------------------


def lifetimes_summary(ctx: Context) -> dict:
    from lifetimes.utils import summary_data_from_transaction_data

    log = _read_log(ctx)
    with Timer() as timer:
        summary = summary_data_from_transaction_data(
            log,
            "customer_id",
            "timestamp",
            monetary_value_col="amount",
            observation_period_end=ctx.cutoff.isoformat(),
            freq="D",
            freq_multiplier=UNIT_DAYS,
        )
    return _summary_result(summary.reset_index(), timer, ctx)


def lifetimes_map(ctx: Context) -> dict:
    """Maximum likelihood (lifetimes has no priors): BG/NBD, then Gamma-Gamma."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    data = _read_summary(ctx)
    buyers = _repeaters(data)
    with Timer() as timer:
        bg = BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])
        gg = GammaGammaFitter().fit(buyers["frequency"], buyers["monetary_value"])
    bg.save_model(str(ctx.output("bg_map.pkl")), save_data=False, save_generate_data_method=False)
    gg.save_model(str(ctx.output("gg_map.pkl")), save_data=False, save_generate_data_method=False)
    params = {k: float(v) for k, v in (bg.params_.to_dict() | gg.params_.to_dict()).items()}
    return timer.record() | {"params": params}


def lifetimes_clv_point(ctx: Context) -> dict:
    """``GammaGammaFitter.customer_lifetime_value`` at the maximum-likelihood point."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    bg, gg = BetaGeoFitter(), GammaGammaFitter()
    bg.load_model(str(ctx.input("bg_map.pkl", "map")))
    gg.load_model(str(ctx.input("gg_map.pkl", "map")))
    data = _read_summary(ctx)
    with Timer() as timer:
        value = gg.customer_lifetime_value(
            bg,
            data["frequency"],
            data["recency"],
            data["T"],
            data["monetary_value"],
            time=CLV_MONTHS,
            discount_rate=MONTHLY_DISCOUNT,
            freq="W",
        )
    return timer.record() | clv_stats(value, value, value)


# --- pymc-marketing --------------------------------------------------------------------------


def pymc_summary(ctx: Context) -> dict:
    from pymc_marketing.clv import rfm_summary

    log = _read_log(ctx)
    with Timer() as timer:
        summary = rfm_summary(
            log,
            "customer_id",
            "timestamp",
            monetary_value_col="amount",
            observation_period_end=ctx.cutoff.isoformat(),
            time_unit="D",
            time_scaler=UNIT_DAYS,
        )
    return _summary_result(summary, timer, ctx)


def _pymc_fit(ctx: Context, method: str, **kwargs) -> tuple[dict, object, object]:
    """Fit BetaGeoModel and GammaGammaModel with ``method``; returns (timing, bg, gg)."""
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    data = _read_summary(ctx)
    tx, spend = data[TX_COLUMNS], _repeaters(data)[SPEND_COLUMNS]
    bg, gg = BetaGeoModel(), GammaGammaModel()
    with Timer() as timer:
        bg.fit(tx, method=method, progressbar=False, random_seed=0, **kwargs)
        gg.fit(spend, method=method, progressbar=False, random_seed=0, **kwargs)
    return timer.record(), bg, gg


def _pymc_params(*models) -> dict:
    names = ("r", "alpha", "a", "b", "p", "q", "v")
    post = {k: v for m in models for k, v in m.fit_result.data_vars.items() if k in names}
    return {"params": {k: float(v.mean()) for k, v in post.items()}}


def _pymc_divergences(*models) -> int:
    return int(sum(int(m.idata["sample_stats"]["diverging"].sum()) for m in models))


def pymc_map(ctx: Context) -> dict:
    timing, bg, gg = _pymc_fit(ctx, "map")
    bg.save(str(ctx.output("bg_map.nc")))
    gg.save(str(ctx.output("gg_map.nc")))
    return timing | _pymc_params(bg, gg)


def pymc_nuts(ctx: Context) -> dict:
    """MCMC with pymc-marketing's default sampler (PyMC's NUTS), 2 chains on 2 cores."""
    return _pymc_mcmc(ctx, NUTS)


def pymc_nutpie_nuts(ctx: Context) -> dict:
    """MCMC with ``nuts_sampler="nutpie"`` (PyMC hands the model to nutpie, compiled with numba),
    2 chains × 1,000 draws after 500 tuning steps: the tuning of cvm's own nutpie sampling."""
    return _pymc_mcmc(ctx, NUTPIE)


def _pymc_mcmc(ctx: Context, sampling: dict) -> dict:
    """Both models by MCMC with ``sampling``; their posteriors saved for the ``clv`` step."""
    timing, bg, gg = _pymc_fit(ctx, "mcmc", **sampling)
    bg.save(str(ctx.output("bg_nuts.nc")))
    gg.save(str(ctx.output("gg_nuts.nc")))
    return timing | _pymc_params(bg, gg) | {"divergences": _pymc_divergences(bg, gg)}


def _pymc_clv(ctx: Context, suffix: str, producer: str) -> dict:
    """``GammaGammaModel.expected_customer_lifetime_value`` for every customer, with quantiles.

    pymc-marketing's CLV takes the purchase model's draws and each customer's posterior mean spend.
    """
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    bg = BetaGeoModel.load(str(ctx.input(f"bg_{suffix}.nc", producer)))
    gg = GammaGammaModel.load(str(ctx.input(f"gg_{suffix}.nc", producer)))
    draws = bg.fit_result.sizes["chain"] * bg.fit_result.sizes["draw"]
    if draws > CLV_DRAWS:  # the same number of draws as cvm's CLV, evenly thinned
        keep = -(-draws // CLV_DRAWS)
        bg, gg = bg.thin_fit_result(keep_every=keep), gg.thin_fit_result(keep_every=keep)
    data = _read_summary(ctx)
    with Timer() as timer:
        value = gg.expected_customer_lifetime_value(
            bg, data, future_t=CLV_MONTHS, discount_rate=MONTHLY_DISCOUNT, time_unit="W"
        )
        mean = value.mean(("chain", "draw")).values
        lower, upper = value.quantile(INTERVAL, dim=("chain", "draw")).values
    used = bg.fit_result.sizes["chain"] * bg.fit_result.sizes["draw"]
    return timer.record() | clv_stats(mean, lower, upper) | {"draws": used}


def pymc_clv(ctx: Context) -> dict:
    return _pymc_clv(ctx, "nuts", "nuts")


def pymc_clv_point(ctx: Context) -> dict:
    return _pymc_clv(ctx, "map", "map")


STEPS = {
    "lifetimes": {
        "summary": lifetimes_summary,
        "map": lifetimes_map,
        "clv_point": lifetimes_clv_point,
    },
    "pymc_marketing": {
        "summary": pymc_summary,
        "map": pymc_map,
        "nuts": pymc_nuts,
        "clv": pymc_clv,
        "clv_point": pymc_clv_point,
    },
    "pymc_marketing_nutpie": {"nuts": pymc_nutpie_nuts, "clv": pymc_clv},
}

if __name__ == "__main__":
    sys.exit(main(STEPS))
