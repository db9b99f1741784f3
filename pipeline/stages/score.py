"""score: the scored customer table at the scoring date (Parquet, CSV and a JSON schema)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pipeline import artifacts, config, io, tracking


def model_label(report: dict, name: str) -> str:
    """``name`` version N in the registry, else the artifacts' content hash."""
    version = report["scoring"].get("registry_version")
    return f"{name}/{version}" if version else f"{name}@{report['scoring']['model_id']}"


def run(cfg) -> dict:
    """Score every customer known at the scoring date with the scoring models."""
    from models.btyd_features import add_btyd_features
    from models.clv_predict import predict_customers
    from models.scoring import scored_table, table_schema

    paths = config.get(cfg, "paths")
    spec = config.feature_spec(cfg)
    model = config.clv_settings(cfg).model
    tiers, lifecycle = config.tier_settings(cfg)
    clv_dir, churn_dir = Path(paths["clv_dir"]), Path(paths["churn_dir"])
    dates = artifacts.read_json(Path(paths["features_report"]))["dates"]
    features = io.read_parquet(Path(paths["features_dir"]) / "scoring.parquet")

    tx, spend = artifacts.clv_draws(
        clv_dir, "scoring", model, config.get(cfg, "clv.prediction.max_draws")
    )
    predictions = predict_customers(tx, spend, features, model, config.prediction_settings(cfg))
    point = artifacts.clv_map(clv_dir, "scoring", model)
    horizon = spec.churn_horizon_days / spec.unit_days
    churn = artifacts.churn_model(churn_dir, "scoring")
    churn_probability = churn.predict(add_btyd_features(features, point, model, horizon))
    provenance = {
        "clv_model": model_label(artifacts.read_json(clv_dir / "fit_report.json"), "cvm-clv"),
        "churn_model": model_label(
            artifacts.read_json(churn_dir / "train_report.json"), "cvm-churn"
        ),
    }
    as_of = date.fromisoformat(dates["scoring_date"])
    table = scored_table(
        features, predictions, churn_probability, tiers, lifecycle, provenance, as_of
    )
    schema = table_schema(table)
    io.write_table(table, schema, Path(paths["scored"]))
    summary = {
        "customers": len(table),
        "total_clv": float(table.clv.sum()),
        "tiers": {str(k): int(v) for k, v in table.value_tier.value_counts(sort=False).items()},
        "lifecycle": {
            str(k): int(v) for k, v in table.lifecycle_stage.value_counts(sort=False).items()
        },
    }
    io.write_json(summary, Path(paths["reports_dir"]) / "score_summary.json")
    with tracking.stage_run(config.get(cfg, "tracking"), "score", {"provenance": provenance}):
        tracking.log_metrics({"customers": len(table), "total_clv": summary["total_clv"]})
        tracking.log_dict(summary, "score_summary.json")
    return summary
