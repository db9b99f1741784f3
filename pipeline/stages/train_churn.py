"""train_churn: the churn classifier for evaluation and the one for scoring."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

from pipeline import clv_store, config, io, outputs, registry, stages, tracking
from pipeline.catalog import Catalog
from pipeline.errors import CvmError
from pipeline.tracking import Tracker

FITS = ("calibration", "scoring")
log = logging.getLogger(__name__)


def run(cfg) -> dict:
    return train_churn(*stages.inputs(cfg))


def train_churn(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Train on the stacked cutoffs before each anchor; write both models and the report
    together; with ``tracker.register``, register the scoring model and the scorer. Returns the
    report."""
    from models.churn.classifier import feature_importance, json_metrics

    models, btyd_points = {}, {}
    for name in FITS:
        models[name], btyd_points[name] = _fit(name, settings, catalog)
    report: dict = {
        name: {
            "best_iteration": model.best_iteration,
            "train_cutoffs": list(model.train_cutoffs),
            "validation_cutoffs": list(model.validation_cutoffs),
            "validation": json_metrics(model.validation_metrics),
            "choice": model.selection["choice"],
            "selection": model.selection,
            "top_features": feature_importance(model).feature.head(10).tolist(),
        }
        for name, model in models.items()
    }
    targets = (catalog.churn_calibration, catalog.churn_scoring)
    targets += (catalog.train_report, catalog.train_metrics)
    with (
        outputs.atomic_outputs(*targets, state=catalog.state) as (cal_dir, scoring_dir, *files),
        tracker.run("train_churn", settings.section("churn")),
    ):
        for name, directory in (("calibration", cal_dir), ("scoring", scoring_dir)):
            models[name].save(directory, {"btyd_points": btyd_points[name]})
            report[name]["model_id"] = io.content_id(directory)
            tracking.log_artifacts(directory, f"churn/{name}")
        tracking.log_metrics(
            {
                f"{name}.validation.{kind}.{metric}": value
                for name in FITS
                for kind, values in report[name]["validation"].items()
                for metric, value in values.items()
                if value is not None
            }
        )
        versions = _register(settings, catalog, scoring_dir) if tracker.register else {}
        tracking.set_tags({f"cvm.churn.{n}.{k}": v for n in FITS for k, v in _tags(report[n])})
        tracking.log_dict(report, "churn_report.json")
        io.write_report(report, *files)  # the registry version is MLflow's
        report["scoring"]["registry_version"] = versions.get("churn")
        report["scoring"]["scorer_version"] = versions.get("scorer")
    log.info("train_churn: %s", json.dumps(report["calibration"]["validation"]))
    return report


def _tags(report: dict) -> list[tuple[str, str]]:
    """The published candidate, and with a shift, whose probability it recalibrates and whose
    churn level it is shifted to."""
    level = report["selection"].get("level")
    tags = [("choice", report["choice"])]
    if level:
        tags += [("prior", level["shape"]["choice"]), ("level", level["choice"])]
    return tags


def _fit(name: str, settings: config.Settings, catalog: Catalog):
    """The churn model of a fit, shifted to the customers it will score, and the purchase
    model's MAP point at each of its training cutoffs."""
    from models.churn.classifier import shifted_to
    from models.churn.training import train_churn as train
    from models.columns import LABEL_COLUMNS

    pair = clv_store.load(catalog.clv(name))  # its purchase model (the chosen one), its clock
    table, points = with_btyd(io.read_parquet(catalog.features(f"train_{name}")), pair, settings)
    log.info("train_churn: %s model on %d rows", name, len(table))
    # the customers it will score, at its own cutoff: their features only, no outcome
    target = io.read_parquet(catalog.features(name)).drop(columns=LABEL_COLUMNS, errors="ignore")
    target = with_btyd(target, pair, settings)[0]
    try:
        level = _level(name, table, target, pair.name, settings, catalog)
        shape = level["shape"]["validation"] if level else None
        model = train(table, settings.churn, settings.features.churn_horizon_days, shape)
    except ValueError as err:
        raise CvmError(f"train_churn ({name}): {err}") from None
    return shifted_to(model, target, level), points


def with_btyd(table, pair, settings: config.Settings):
    """``table`` with what the CLV ``pair``'s purchase model, fit at each of its cutoffs alone,
    expects in the churn window (the ``btyd_*`` features), and that fit's MAP point per cutoff
    (:func:`models.btyd.churn_features.add_btyd_features_by_cutoff`)."""
    from models.btyd.churn_features import add_btyd_features_by_cutoff

    clv = settings.clv
    return add_btyd_features_by_cutoff(
        table, pair.purchase, clv.priors, settings.churn_horizon, clv.seed, pair.season
    )


def _level(name: str, table, target, clv_model: str, settings: config.Settings, catalog):
    """The churn level for the shift and the shape of the prior (:mod:`models.churn.level`):
    chosen at the validation cutoff among the CLV model (``clv_model``) and the other
    candidates of ``clv.candidates``, with a season and without, the fits the CLV's choice made
    there taken as they are (``fit_report.json``); fit at the target's. ``None`` when nothing
    is shifted."""
    from models.btyd.choice import candidates
    from models.churn.level import churn_level_at

    if not settings.churn.shifts:
        return None
    family = [c for c in candidates(settings.config.clv.candidates, "auto") if c.name != clv_model]
    choice = io.read_json(catalog.fit_report)[name].get("choice") or {}  # None: one candidate
    return churn_level_at(
        table,
        target,
        settings.churn.calibration_prior,
        family,
        settings.clv,
        stages.repeats(settings, catalog),
        settings.features.unit_days,
        settings.features.churn_horizon_days,
        settings.churn.seed,
        choice.get("fits"),
    )


def _register(settings: config.Settings, catalog: Catalog, churn_dir: Path) -> dict[str, str]:
    """Register the scoring churn model, then the scorer of it and the scoring CLV model, tagged
    ``cvm.paired_with`` both versions (the CLV version registered from the same files, found by
    their content id); returns their versions."""
    import mlflow

    features = io.read_parquet(catalog.features_scoring)
    clv = clv_store.load(catalog.clv_scoring)
    example = clv.churn_features(features.head(10), settings.churn_horizon)
    churn = registry.register_churn(churn_dir, example, settings.tracking)
    if churn is None:
        return {}
    names, client = registry.model_names(settings.tracking), mlflow.MlflowClient()
    clv_id = io.read_json(catalog.fit_report)["scoring"]["model_id"]
    clv_version = registry.latest_version(client, names["clv"], {"cvm.model_id": clv_id})
    provenance = {
        "clv_model": f"{names['clv']}/{clv_version}" if clv_version else f"{names['clv']}@{clv_id}",
        "churn_model": f"{names['churn']}/{churn}",
    }
    as_of = date.fromisoformat(io.read_json(catalog.features_report)["dates"]["scoring_date"])
    scorer = registry.register_scorer(
        catalog.clv_scoring,
        churn_dir,
        features,
        settings.scoring,
        as_of,
        provenance,
        settings.tracking,
    )
    pair = ",".join(provenance.values())
    registry.tag_version(client, names["scorer"], scorer, {"cvm.paired_with": pair})
    return {"churn": churn, "scorer": scorer}
