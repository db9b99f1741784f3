"""score: the scored customer table at the scoring date (Parquet, CSV and a JSON schema) and its
segment summary (Parquet and CSV).

The scorer is :func:`models.scoring.score_customers`; on Spark its row scorer runs in the
executors over partitions of the feature table (:func:`pipeline.engine.map_on_spark`).
"""

from __future__ import annotations

from datetime import date

from models.scoring import value_totals
from pipeline import (
    churn_store,
    clv_store,
    config,
    engine,
    io,
    publication,
    stages,
    tracking,
)
from pipeline.catalog import Catalog
from pipeline.tracking import Tracker


def run(cfg) -> dict:
    return score(*stages.inputs(cfg))


def model_label(report: dict, name: str) -> str:
    """``name@<content hash>``: the model files that scored (``cvm retrain``'s tables name
    registry versions instead)."""
    return f"{name}@{report['scoring']['model_id']}"


def score(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Score every customer known at the scoring date with the scoring models in ``catalog``;
    writes the table's three files, its segment summary's two and the summary together and
    returns the summary."""
    from models.scoring import score_customers

    dates = io.read_json(catalog.features_report)["dates"]
    features = io.read_parquet(catalog.features_scoring)
    provenance = {
        "clv_model": model_label(io.read_json(catalog.fit_report), "cvm-clv"),
        "churn_model": model_label(io.read_json(catalog.train_report), "cvm-churn"),
    }
    execute = None
    if settings.engine.get("name") == "spark":

        def execute(scorer, frame):
            return engine.map_on_spark(settings.engine, catalog.features_scoring, scorer, frame)

    table = score_customers(
        features,
        clv_store.load(catalog.clv_scoring),
        churn_store.load(catalog.churn_scoring),
        settings.scoring,
        provenance,
        date.fromisoformat(dates["scoring_date"]),
        execute,
    )
    summary = {
        "customers": len(table),
        **value_totals(table),
        "tiers": {str(k): int(v) for k, v in table.value_tier.value_counts(sort=False).items()},
        "lifecycle": {
            str(k): int(v) for k, v in table.lifecycle_stage.value_counts(sort=False).items()
        },
    }
    # cvm score and cvm retrain publish the tables teams read; the pipeline, when asked, its own
    database_settings = (
        settings.database.for_pipeline() if settings.database.from_pipeline else None
    )
    published = publication.write_table(
        table,
        catalog.scored,
        catalog.state,
        settings.guard_formulas,
        segments=catalog.segments,
        extra={catalog.score_summary: summary},
        database=database_settings,
    )
    with tracker.run("score", {"provenance": provenance}):
        tracking.log_metrics({"customers": len(table), **value_totals(table)})
        tracking.log_dict(summary | {"database": published}, "score_summary.json")
    return summary
