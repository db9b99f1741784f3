"""train_churn: the churn classifier for evaluation and the one for scoring."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline import config, io, registry, tracking
from pipeline.errors import CvmError

FITS = ("calibration", "scoring")
log = logging.getLogger(__name__)


def run(cfg) -> dict:
    """Train on the stacked cutoffs before each anchor; write booster, calibrator, importances."""
    from models.btyd_features import add_btyd_features_by_cutoff
    from models.churn import feature_importance, to_artifacts, train_churn

    settings = config.churn_settings(cfg)
    clv = config.clv_settings(cfg)
    spec = config.feature_spec(cfg)
    paths = config.get(cfg, "paths")
    out = Path(paths["churn_dir"])
    horizon = spec.churn_horizon_days / spec.unit_days
    report: dict = {}
    models, btyd_points = {}, {}
    for name in FITS:
        train = io.read_parquet(Path(paths["features_dir"]) / f"train_{name}.parquet")
        train, points = add_btyd_features_by_cutoff(train, clv.model, clv.priors, horizon, clv.seed)
        log.info("train_churn: %s model on %d rows", name, len(train))
        try:
            models[name] = train_churn(train, settings)
        except ValueError as err:
            raise CvmError(f"train_churn ({name}): {err}") from None
        btyd_points[name] = points
    # written only once both models are trained: a failure leaves the previous ones
    for name, model in models.items():
        text, meta = to_artifacts(model)
        meta["btyd_points"] = btyd_points[name]
        io.write_atomic(out / name / "model.txt", lambda tmp, t=text: tmp.write_text(t))
        io.write_json(meta, out / name / "meta.json")
        importance = feature_importance(model)
        io.write_parquet(importance, out / name / "importance.parquet")
        report[name] = {
            "best_iteration": model.best_iteration,
            "train_cutoffs": list(model.train_cutoffs),
            "validation_cutoffs": list(model.validation_cutoffs),
            "validation": meta["validation_metrics"],
            "top_features": importance.feature.head(10).tolist(),
            "model_id": io.content_id(out / name),
        }
    with tracking.stage_run(config.get(cfg, "tracking"), "train_churn", config.get(cfg, "churn")):
        tracking.log_metrics(
            {
                f"{name}.validation.{kind}.{metric}": value
                for name in FITS
                for kind, values in report[name]["validation"].items()
                for metric, value in values.items()
                if value is not None
            }
        )
        tracking.log_artifacts(out, "churn")
        report["scoring"]["registry_version"] = registry.register_churn(
            out / "scoring", config.get(cfg, "tracking")
        )
        tracking.log_dict(report, "churn_report.json")
    io.write_json(report, out / "train_report.json")
    log.info("train_churn: %s", json.dumps(report["calibration"]["validation"]))
    return report
