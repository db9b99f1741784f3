"""score: the scored customer table at the scoring date (Parquet, CSV and a JSON schema).

One function scores a batch of customers (:class:`Scorer`): on DuckDB it scores the whole
feature table at once; on Spark it runs in the executors over partitions of the table
(``mapInPandas``), with the posterior draws and the churn model broadcast to them. Tiers,
lifecycle stages and RFM scores rank customers against each other, so they are assigned to the
gathered scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import artifacts, config, engine, io, tracking


def model_label(report: dict, name: str) -> str:
    """``name`` version N in the registry, else the artifacts' content hash."""
    version = report["scoring"].get("registry_version")
    return f"{name}/{version}" if version else f"{name}@{report['scoring']['model_id']}"


@dataclass(frozen=True)
class Scorer:
    """The scoring models: CLV posterior draws, the purchase model's MAP point, the churn model.

    Calling it on customer features (a batch or the whole table) returns, row for row,
    ``customer_id``, every prediction of :func:`models.clv_predict.predict_customers` with its
    interval, and ``churn_probability``.
    """

    model: str
    transaction_draws: dict[str, np.ndarray]
    spend_draws: dict[str, np.ndarray]
    point: dict[str, float]
    churn: Any
    settings: Any
    churn_horizon: float

    def __call__(self, features: pd.DataFrame) -> pd.DataFrame:
        from models.btyd_features import add_btyd_features
        from models.clv_predict import predict_customers

        features = features.reset_index(drop=True)
        scores = predict_customers(
            self.transaction_draws, self.spend_draws, features, self.model, self.settings
        )
        with_btyd = add_btyd_features(features, self.point, self.model, self.churn_horizon)
        scores["churn_probability"] = self.churn.predict(with_btyd)
        scores.insert(0, "customer_id", features["customer_id"].astype(str).to_numpy())
        return scores


def run(cfg) -> dict:
    """Score every customer known at the scoring date with the scoring models."""
    from models.scoring import scored_table, table_schema

    paths = config.get(cfg, "paths")
    spec = config.feature_spec(cfg)
    model = config.clv_settings(cfg).model
    tiers, lifecycle = config.tier_settings(cfg)
    clv_dir, churn_dir = Path(paths["clv_dir"]), Path(paths["churn_dir"])
    dates = artifacts.read_json(Path(paths["features_report"]))["dates"]
    features_path = Path(paths["features_dir"]) / "scoring.parquet"
    features = io.read_parquet(features_path)

    tx, spend = artifacts.clv_draws(
        clv_dir, "scoring", model, config.get(cfg, "clv.prediction.max_draws")
    )
    scorer = Scorer(
        model=model,
        transaction_draws=tx,
        spend_draws=spend,
        point=artifacts.clv_map(clv_dir, "scoring", model),
        churn=artifacts.churn_model(churn_dir, "scoring"),
        settings=config.prediction_settings(cfg),
        churn_horizon=spec.churn_horizon_days / spec.unit_days,
    )
    engine_cfg = config.get(cfg, "engine")
    if engine_cfg.get("name") == "spark":
        scores = score_on_spark(engine_cfg, features_path, scorer, features)
    else:
        scores = scorer(features)
    provenance = {
        "clv_model": model_label(artifacts.read_json(clv_dir / "fit_report.json"), "cvm-clv"),
        "churn_model": model_label(
            artifacts.read_json(churn_dir / "train_report.json"), "cvm-churn"
        ),
    }
    as_of = date.fromisoformat(dates["scoring_date"])
    table = scored_table(
        features, scores, scores["churn_probability"], tiers, lifecycle, provenance, as_of
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


def score_on_spark(
    engine_cfg: dict, features_path: Path, scorer: Scorer, features: pd.DataFrame
) -> pd.DataFrame:
    """``scorer`` run by Spark over partitions of the feature file, aligned with ``features``."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    columns = scorer(features.iloc[:1]).columns
    schema = StructType(
        [StructField("customer_id", StringType(), False)]
        + [StructField(c, DoubleType(), True) for c in columns[1:]]
    )
    with engine.session(engine_cfg) as con:
        spark = con._session
        shared = spark.sparkContext.broadcast(scorer)

        def score_partition(batches):
            score = shared.value
            for batch in batches:
                yield score(batch)

        frame = spark.read.parquet(str(features_path.resolve()))
        scores = frame.mapInPandas(score_partition, schema).toArrow().to_pandas()
        shared.destroy()
    scores = scores.set_index("customer_id").reindex(features["customer_id"].astype(str))
    if scores["churn_probability"].isna().any() or len(scores) != len(features):
        raise RuntimeError("Spark scored a different set of customers than the feature table")
    return scores.reset_index()
