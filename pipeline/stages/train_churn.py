"""train_churn: the churn classifier for evaluation and the one for scoring."""

from __future__ import annotations

import json
import logging

from pipeline import churn_store, config, io, outputs, registry, stages, tracking
from pipeline.catalog import Catalog
from pipeline.errors import CvmError
from pipeline.tracking import Tracker

FITS = ("calibration", "scoring")
log = logging.getLogger(__name__)


def run(cfg) -> dict:
    return train_churn(*stages.inputs(cfg))


def train_churn(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Train on the stacked cutoffs before each anchor; write both models and the report
    together, register the scoring model. Returns the report."""
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
    targets = (catalog.churn_calibration, catalog.churn_scoring, catalog.train_report)
    with (
        outputs.atomic_outputs(*targets, state=catalog.state) as (cal_dir, scoring_dir, report_tmp),
        tracker.run("train_churn", settings.section("churn")),
    ):
        for name, directory in (("calibration", cal_dir), ("scoring", scoring_dir)):
            churn_store.save(models[name], directory, {"btyd_points": btyd_points[name]})
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
        version = None
        if tracker.register:
            version = registry.register_churn(scoring_dir, settings.tracking)
        tracking.set_tags({f"cvm.churn.{n}.choice": report[n]["choice"] for n in FITS})
        tracking.log_dict(report, "churn_report.json")
        io.write_json(report, report_tmp, atomic=False)  # the registry version is MLflow's
        report["scoring"]["registry_version"] = version
    log.info("train_churn: %s", json.dumps(report["calibration"]["validation"]))
    return report


def _fit(name: str, settings: config.Settings, catalog: Catalog):
    """The churn model of a fit, shifted to the customers it will score, and the purchase
    model's MAP point at each of its training cutoffs."""
    from models.btyd.churn_features import add_btyd_features_by_cutoff
    from models.btyd.clv import purchase_model
    from models.churn.classifier import LABEL_COLUMNS, shifted_to
    from models.churn.classifier import train_churn as train

    clv = settings.clv

    def with_btyd(table):  # what the purchase model, fit at each cutoff alone, expects
        model = purchase_model(clv.model)
        return add_btyd_features_by_cutoff(
            table, model, clv.priors, settings.churn_horizon, clv.seed
        )

    table, points = with_btyd(io.read_parquet(catalog.features(f"train_{name}")))
    log.info("train_churn: %s model on %d rows", name, len(table))
    try:
        model = train(table, settings.churn, settings.features.churn_horizon_days)
    except ValueError as err:
        raise CvmError(f"train_churn ({name}): {err}") from None
    # the customers it will score, at its own cutoff: their features only, no outcome
    target = io.read_parquet(catalog.features(name)).drop(columns=LABEL_COLUMNS, errors="ignore")
    return shifted_to(model, with_btyd(target)[0]), points
