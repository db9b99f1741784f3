"""Publishing a retraining run: the scored table with the winning models, the challenger's
release (both model pairs and the profile of its training data), then the registry aliases and
the table together."""

from __future__ import annotations

from datetime import date

import pandas as pd

from models.report.appendix import promotion
from pipeline import io, publication, registry
from pipeline.history import kpi_metrics, latest_kpis, next_history
from pipeline.retrain.compare import RELEASE
from pipeline.retrain.feed import Feed
from pipeline.retrain.record import RetrainRun


def score_with(run: RetrainRun, features: pd.DataFrame, versions: dict[str, str], as_of: date):
    """The scored table of ``features`` with the registered ``versions``."""
    models = registry.ScoringModels(run.names, versions)
    return publication.score_features(features, models, run.settings, as_of)


def log_release(run: RetrainRun, feed: Feed, current: pd.DataFrame, table) -> None:
    """The challenger's release in this run's MLflow run: both model pairs, the profile of its
    training data (and of its scores when they were computed) and a manifest."""
    from models import drift

    settings = run.retrain
    run.begin("release")
    profile = {
        "as_of": feed.as_of.isoformat(),
        "features": drift.profiles(
            current,
            list(settings.drift.features or ()),
            settings.drift.bins,
            settings.drift.dated,
            feed.as_of,
        ),
    }
    if table is not None:
        profile["scores"] = drift.profiles(
            table, list(settings.drift.scores or ()), settings.drift.bins
        )
    manifest = {
        "as_of": feed.as_of.isoformat(),
        "calibration_end": feed.calibration_end.isoformat(),
        "log_sha256": run.summary["log"]["sha256"],
        "clean_rows_to_as_of": run.summary["log"]["clean_rows_to_as_of"],
        "versions": dict(run.challenger),
        "model": io.read_json(feed.catalog.fit_report)["scoring"]["model"],  # chosen or named
    }
    catalog = feed.catalog
    for kind in registry.KINDS:
        for fit in ("calibration", "scoring"):
            directory = getattr(catalog, kind)(fit)
            run.client.log_artifacts(run.run_id, str(directory), f"{RELEASE}/{kind}/{fit}")
    run.client.log_dict(run.run_id, profile, f"{RELEASE}/profile.json")
    run.client.log_dict(run.run_id, manifest, f"{RELEASE}/manifest.json")


def publish(run: RetrainRun, table: pd.DataFrame, promoted: bool) -> None:
    """Replace the scored table, then move the aliases (the pair's and the scorer's), together
    (:func:`pipeline.publication.publish_with_aliases`)."""
    run.begin("publish")
    kinds = list(run.challenger)  # the pair and its scorer: their aliases move together
    before = {kind: registry.aliases(run.client, run.names[kind]) for kind in kinds}
    aliases = [registry.CHALLENGER, *([registry.CHAMPION] if promoted else [])]
    winners = run.challenger if promoted else {k: before[k].get(registry.CHAMPION) for k in before}
    history = next_history(table, run.retrain.scored)
    report = publication.report_file(run.retrain.scored)
    page = publication.report_page(
        run.settings, table, "cvm retrain", history, appendix=promotion(run.summary)
    )
    published = publication.publish_with_aliases(
        table,
        run.retrain.scored,
        run.settings.catalog.state,
        run.settings.guard_formulas,
        run.client,
        labels={f"{k}_model": f"{run.names[k]}/{winners[k]}" for k in registry.KINDS},
        after=[[run.names[k], a, run.challenger[k]] for a in aliases for k in kinds],
        before=[[run.names[k], a, before[k].get(a)] for a in aliases for k in kinds],
        database=run.settings.database,
        history=history,
        extra={report: page},
    )
    run.published = True
    run.summary["report"] = str(report)
    run.client.log_artifact(run.run_id, str(report))
    run.summary["database"] = published
    run.summary["kpis"] = latest_kpis(history)
    for name, value in kpi_metrics(run.summary["kpis"]).items():
        run.client.log_metric(run.run_id, name, value)
