"""fit_clv: CLV posteriors for evaluation (calibration summary) and scoring (all history)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

from pipeline import config, io, outputs, registry, stages, tracking
from pipeline.catalog import Catalog
from pipeline.errors import CvmError
from pipeline.tracking import Tracker

FITS = ("calibration", "scoring")
log = logging.getLogger(__name__)


def run(cfg) -> dict:
    return fit_clv(*stages.inputs(cfg))


def fit_clv(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Fit both model pairs; write both and the fit report together, register the scoring
    pair. Returns the fit report."""
    clv = settings.clv
    _check_amounts(clv.spend, catalog)
    tables = {name: io.read_parquet(catalog.features(name)) for name in FITS}
    candidates = settings.clv_candidates
    seasonal = any(c.season for c in candidates)
    repeats = stages.repeats(settings, catalog) if seasonal else None
    choices = {name: _choose(name, settings, catalog, repeats) for name in FITS}
    fits = {name: _fit_pair(name, tables[name], settings, choices[name], repeats) for name in FITS}
    report: dict = {"model": settings.config.clv.model, "method": clv.method}
    report |= {
        name: {"model": fit.name}
        | ({"choice": choices[name]} if choices[name] else {})
        | {"map": fit.map_point, **fit.fit_info}
        for name, fit in fits.items()
    }
    targets = (
        catalog.clv_calibration,
        catalog.clv_scoring,
        catalog.fit_report,
        catalog.fit_metrics,
    )
    with (
        outputs.atomic_outputs(*targets, state=catalog.state) as (cal_dir, scoring_dir, *files),
        tracker.run("fit_clv", settings.section("clv")),
    ):
        for name, directory in (("calibration", cal_dir), ("scoring", scoring_dir)):
            fits[name].save(directory)
            report[name]["model_id"] = io.content_id(directory)
            tracking.log_artifacts(directory, f"clv/{name}")
        _log_figures(report)
        tracking.set_tags({f"cvm.clv.{name}.model": report[name]["model"] for name in FITS})
        version = _register(settings, tracker, scoring_dir, tables["scoring"], report)
        tracking.log_dict(report, "fit_report.json")
        # fit times and the registry version go to MLflow only: the file depends on the inputs
        for name in FITS:
            del report[name]["seconds"]
        io.write_report(report, *files)
        report["scoring"]["registry_version"] = version
    return report


def _log_figures(report: dict) -> None:
    """Fit times, diagnostics and MAP points of both pairs as MLflow metrics."""
    tracking.log_metrics(
        {
            f"{name}.{group}.{key}": value
            for name in FITS
            for group in ("seconds", "diagnostics")
            for key, value in report[name][group].items()
        }
        | {
            f"{name}.map.{part}.{key}": value
            for name in FITS
            for part, point in report[name]["map"].items()
            for key, value in point.items()
        }
    )


def _register(settings, tracker: Tracker, directory, table, report: dict) -> str | None:
    """Register the scoring pair when the tracker registers (an unconverged one is tagged)."""
    if not tracker.register:
        return None
    problems = report["scoring"]["convergence_problems"]  # kept: on_failure is warn
    tags = {"cvm.unconverged": "; ".join(problems)[:5000]} if problems else {}
    return registry.register_clv(
        directory, table.head(5), settings.tracking, tags, settings.prediction, settings.max_draws
    )


def _choose(name: str, settings: config.Settings, catalog: Catalog, repeats) -> dict | None:
    """The purchase model of a fit chosen out of time among ``settings.clv_candidates``, at
    its validation cutoff (the latest of its training table: the churn window after it ends by
    the fit's cutoff); ``None`` when there is one candidate."""
    from models.btyd.choice import choose
    from models.btyd.clv import DegenerateData

    candidates = settings.clv_candidates
    if len(candidates) == 1:
        return None
    train = io.read_parquet(catalog.features(f"train_{name}"))
    cutoffs = pd.to_datetime(train["cutoff"])
    validation = train[(cutoffs == cutoffs.max()).to_numpy()].reset_index(drop=True)
    log.info("fit_clv: choosing the %s purchase model at %s", name, cutoffs.max().date())
    args = ("next_purchases", settings.churn_horizon, candidates, settings.clv, repeats)
    try:
        choice = choose(validation, *args, settings.features.unit_days)
    except DegenerateData as err:
        raise CvmError(
            f"fit_clv ({name} fit): the purchase model cannot be chosen at the validation "
            f"cutoff {cutoffs.max().date()} ({len(validation):,} customers): {err}. Name one "
            "(clv.model, clv.season)"
        ) from None
    log.info("fit_clv (%s): %s", name, choice["reason"])
    return choice


def _fit_pair(name: str, table, settings: config.Settings, choice: dict | None, repeats):
    """One pair, on the table's covariates (``cov_*`` columns, from ``data.customers``) if any;
    the ``choice``'s purchase model and clock, or the configured ones; a season is fit from the
    log's ``repeats``."""
    from models.btyd.clv import ConvergenceError, DegenerateData
    from models.btyd.clv import fit_clv as fit_pair
    from models.btyd.covariates import covariate_columns

    clv = replace(settings.clv, covariates=covariate_columns(table))
    if choice is not None:
        clv = replace(clv, model=choice["model"], season=choice["season"])
    log.info("fit_clv: fitting the %s pair on %d customers", name, len(table))
    try:
        fit = fit_pair(table, clv, repeats, settings.features.unit_days)
    except DegenerateData as err:
        raise CvmError(f"fit_clv ({name} fit, {len(table):,} customers): {err}") from None
    except ConvergenceError as err:
        raise CvmError(
            f"fit_clv ({name} fit): {err}. Sample longer (clv.sampler.draws/tune) or set "
            "clv.convergence.on_failure=warn"
        ) from None
    for problem in fit.fit_info["convergence_problems"]:
        log.warning("fit_clv (%s): %s", name, problem)
    return fit


def _check_amounts(spend: bool, catalog: Catalog) -> None:
    """A log whose every amount is the same has no spend to fit: say so before any fitting."""
    distinct = io.read_json(catalog.ingest_report).get("distinct_amounts")
    if spend and distinct is not None and distinct <= 1:
        raise CvmError(
            f"fit_clv: every transaction in the log has the same amount ({catalog.ingest_report}"
            ": distinct_amounts is 1): there is no variation in spend to fit Gamma-Gamma on. Set "
            "data.mapping.amount: null (purchase-only) and clv.prediction.value_per_purchase to "
            "value purchases at a fixed amount"
        )
