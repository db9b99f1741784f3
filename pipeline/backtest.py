"""`cvm backtest`: the pipeline's real stages on several logs and rolling calibration cutoffs,
each case in its own scratch catalog, measured on the window after its cutoff.

A suite (``conf/backtest/<name>.yaml``) lists the logs (a data config, or a simulated log with
its settings) and the cutoffs of each; every case composes the project's config with the
suite's and the log's overrides and the case's dates, runs ingest, features, fit_clv,
train_churn and evaluate, and records the churn model against its strongest baseline and the
CLV model's holdout accuracy. Nothing is tracked or registered.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from models.btyd.season import MIN_HISTORY_DAYS
from pipeline import clv_store, config, io
from pipeline.catalog import Catalog
from pipeline.errors import CvmError
from pipeline.tracking import Tracker

log = logging.getLogger(__name__)
SUITES = Path("conf/backtest")


@dataclass(frozen=True)
class LogSpec:
    """One log of a suite: its config overrides, cutoffs and, if simulated, how."""

    name: str
    overrides: tuple[str, ...]
    cutoffs: tuple[date, ...]
    simulate: dict[str, Any] | None = None
    from_baseline_model: bool = False


def load_suite(name: str) -> tuple[dict, list[LogSpec]]:
    """The suite ``conf/backtest/<name>.yaml`` (or the YAML file ``name``): its settings and
    its logs."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else SUITES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUITES.glob("*.yaml")))
        raise CvmError(f"{path}: no such backtest suite; known suites: {known}")
    suite = yaml.safe_load(path.read_text())
    try:
        logs = [
            LogSpec(
                name=name,
                overrides=tuple(spec.get("overrides", ())),
                cutoffs=tuple(config.as_date(c, f"{name}.cutoffs") for c in spec["cutoffs"]),
                simulate=spec.get("simulate"),
                from_baseline_model=bool(spec.get("from_baseline_model", False)),
            )
            for name, spec in suite["logs"].items()
        ]
    except (KeyError, TypeError) as err:
        raise CvmError(f"{path}: expected logs with overrides and cutoffs ({err})") from None
    return suite, logs


def run(suite_name: str, only: list[str] | None = None) -> dict:
    """Run every case of the suite (or of the logs named in ``only``); write and return the
    results."""
    from models.evaluation.backtest import summary, table

    suite, logs = load_suite(suite_name)
    work = Path(suite["work_dir"])
    logs = [spec for spec in logs if not only or spec.name in only]
    sources = {spec.name: _source(spec, work / spec.name) for spec in logs}
    # every case's config composed now: the run uses conf/ as it was when it started
    plan = [
        (spec, cutoff, case_settings(suite, spec, sources[spec.name], cutoff))
        for spec in logs
        for cutoff in spec.cutoffs
    ]
    cases = []
    for spec, cutoff, settings in plan:
        source = sources[spec.name]
        simulated = source.parent if source is not None else None
        cases.append(run_case(spec, cutoff, settings, work / spec.name / str(cutoff), simulated))
        print(table(cases[-1:]).splitlines()[-1], flush=True)
    results = {"suite": suite_name, "cases": cases, "summary": summary(cases)}
    io.write_json(results, Path(suite["out"]))
    return results


def _source(spec: LogSpec, directory: Path) -> Path | None:
    """The simulated log of ``spec`` (written into ``directory``), or ``None`` for a data config."""
    from pipeline import simulate

    if spec.simulate is None:
        return None
    shutil.rmtree(directory, ignore_errors=True)
    settings = dict(spec.simulate)
    with_amounts = settings.pop("with_amounts", True)
    simulate.run(directory / "log", with_amounts=with_amounts, **settings)
    return directory / "log" / "transactions.parquet"


def case_settings(suite: dict, spec: LogSpec, source: Path | None, cutoff: date):
    """The settings of one case: the project's config with the suite's, the log's and the
    case's dates (the holdout is the churn horizon after the cutoff)."""
    overrides = [*suite.get("overrides", ()), *spec.overrides]
    horizon = config.Settings(_compose(overrides)).features.churn_horizon_days
    end = cutoff + timedelta(days=horizon)
    dates = [
        f"data.calibration_end={cutoff}",
        f"data.holdout_end={end}",
        f"data.scoring_date={end}",
        "data.rules.end=null",
    ]
    path = [f"data.path={source.resolve()}"] if source is not None else []
    return config.Settings(_compose([*overrides, *path, *dates]))


def _compose(overrides: list[str]):
    cfg = OmegaConf.create(config.compose(overrides))
    OmegaConf.set_struct(cfg, True)
    return cfg


def run_case(
    spec: LogSpec,
    cutoff: date,
    settings: config.Settings,
    directory: Path,
    simulated: Path | None = None,
) -> dict:
    """One (log, cutoff): the stages in a scratch catalog; its verdict and timings, and on a
    log simulated into ``simulated`` the churn ceiling."""
    from models.evaluation.backtest import case_verdict, clv_accuracy, clv_verdict
    from pipeline.stages.evaluate import evaluate
    from pipeline.stages.features import build_features
    from pipeline.stages.fit_clv import fit_clv
    from pipeline.stages.ingest import ingest
    from pipeline.stages.train_churn import train_churn

    shutil.rmtree(directory, ignore_errors=True)
    catalog = settings.catalog.under(directory)
    tracker = Tracker({"enabled": False})
    seconds = {}
    for stage in (ingest, build_features, fit_clv, train_churn, evaluate):
        started = time.perf_counter()
        result = stage(settings, catalog, tracker)
        seconds[stage.__name__] = round(time.perf_counter() - started, 2)
    churn_report = io.read_json(catalog.train_report)["calibration"]
    fit = io.read_json(catalog.fit_report)["calibration"]
    first_day = date.fromisoformat(io.read_json(catalog.features_report)["first_day"])
    verdict = case_verdict(result)
    ceiling, clv_ceiling = (
        _ceilings(catalog, verdict, settings, cutoff, simulated) if simulated else (None, None)
    )
    full_year = (cutoff - first_day).days >= MIN_HISTORY_DAYS
    return {
        "log": spec.name,
        "cutoff": cutoff.isoformat(),
        "simulated_from_baseline_model": spec.from_baseline_model,
        "customers": int(result["churn"]["churn_model"]["n"]),
        "churn_rate": result["churn"]["churn_model"]["base_rate"],
        "churn": verdict,
        **({"ceiling": ceiling} if ceiling else {}),
        "clv": clv_accuracy(result),
        "clv_model": fit["model"],
        "clv_verdict": clv_verdict(result, full_year, ceiling=clv_ceiling),
        "stacked": _stacked(catalog, settings),
        "metrics": result["churn"],
        "churn_model": {k: churn_report.get(k) for k in ("best_iteration", "choice")}
        | _prior_and_level(churn_report),
        "seconds": seconds,
    }


def _stacked(catalog: Catalog, settings: config.Settings) -> dict:
    """The forecast learnt on the case's stacked past cutoffs on top of its calibration fit's
    purchase model (:mod:`models.btyd.stacked`): its accuracy on the holdout (the churn
    window after the cutoff, the window it learns), its rounds and how they were judged."""
    from models.btyd.stacked import StackedSettings, fit_stacked
    from models.evaluation.backtest import stacked_accuracy
    from pipeline.stages.train_churn import with_btyd

    pair = clv_store.load(catalog.clv("calibration"))
    train, target = (
        with_btyd(io.read_parquet(catalog.features(name)), pair, settings)[0]
        for name in ("train_calibration", "calibration")
    )
    horizon = settings.features.churn_horizon_days
    forecast = fit_stacked(train, horizon, StackedSettings(seed=settings.clv.seed))
    return stacked_accuracy(forecast.predict(target), target) | {
        "rounds": {part: model.rounds for part, model in forecast.parts.items()},
        "judge": forecast.judge,
    }


def _prior_and_level(churn_report: dict) -> dict[str, str]:
    """The purchase models the churn score's prior and level come from (``clv``: the CLV
    model's own), when it is shifted."""
    level = churn_report["selection"].get("level")
    return {"prior": level["shape"]["choice"], "level": level["choice"]} if level else {}


def _ceilings(
    catalog: Catalog, verdict: dict, settings: config.Settings, cutoff: date, log: Path
) -> tuple[dict, dict]:
    """The churn and CLV ceilings of a case whose log was simulated into ``log`` with its
    truth: the churn verdict's, and the CLV ceiling's accuracy on the holdout purchases."""
    from models.evaluation.backtest import ceiling_verdict, clv_ceiling_accuracy
    from models.evaluation.ceiling import churn_ceiling, clv_ceiling

    table = io.read_parquet(catalog.features_calibration)
    truth, customers = io.read_json(log / "truth.json"), io.read_parquet(log / "customers.parquet")
    horizon = settings.features.churn_horizon_days
    churn = churn_ceiling(truth, table, cutoff, horizon, customers)
    holdout = (settings.dates["holdout_end"] - cutoff).days
    expected = clv_ceiling(truth, table, cutoff, holdout, customers)
    bought = io.read_parquet(log / "transactions.parquet")["timestamp"]
    purchases = int((bought.dt.date <= cutoff).sum())
    return (
        ceiling_verdict(table["churned"].to_numpy(dtype=int), churn, verdict),
        clv_ceiling_accuracy(expected, table, purchases),
    )
