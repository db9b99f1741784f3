"""The feed of a retraining run: idempotence, the log snapshot, ingest and the checks that stop
a broken feed before anything changes, and the features at the as-of date."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from pipeline import io, registry, staging
from pipeline.catalog import Catalog
from pipeline.config import Settings
from pipeline.errors import CvmError
from pipeline.retrain.record import EXIT_NOTHING_TO_DO, RetrainRun

log = logging.getLogger(__name__)


def already_done(run: RetrainRun) -> bool:
    """Nothing to do: a completed run had this as-of date, log content and config, and (when
    it was the latest run) the champions and the scored table are still its own."""
    run.begin("idempotence")
    log_sha = staging.log_sha256(run.source)
    run.summary["log"]["sha256"] = log_sha
    run.summary["config_sha256"] = run.config_sha
    records = completed_records(run.retrain.work_dir)
    for record in records:
        day = run.as_of_requested
        same_day = record["as_of"] == (
            day.isoformat() if day else record["log"].get("last_transaction")
        )
        if not (
            same_day
            and record["log"].get("sha256") == log_sha
            and record.get("config_sha256") == run.config_sha
        ):
            continue
        if record is records[-1] and not outputs_match(run, record):
            log.warning(
                "retrain: as-of %s was processed, but the champions or the scored table "
                "changed since; running again",
                record["as_of"],
            )
            return False
        run.summary |= {
            "status": "nothing_to_do",
            "exit_code": EXIT_NOTHING_TO_DO,
            "as_of": record["as_of"],
            "previous_run": record.get("mlflow_run_id"),
            "message": (
                f"as-of {record['as_of']} was already processed with this log and config "
                f"(run of {record['finished']}); nothing to do"
            ),
        }
        run.append_history()
        return True
    return False


def completed_records(work_dir: Path) -> list[dict]:
    """Summaries of the completed runs, oldest first."""
    runs = work_dir / "runs"
    records = []
    for path in sorted(runs.glob("*/summary.json")) if runs.is_dir() else []:
        try:
            records.append(json.loads(path.read_text()))
        except ValueError:
            continue
    return sorted(records, key=lambda r: r.get("finished", ""))


def outputs_match(run: RetrainRun, record: dict) -> bool:
    client = registry.connect(run.settings.tracking)
    for kind, name in run.names.items():
        champion = registry.aliases(client, name).get(registry.CHAMPION)
        if champion != record["champion_after"].get(kind):
            return False
    scored = run.retrain.scored.with_suffix(".parquet")
    return scored.is_file() and io.file_sha256(scored) == record["scored"]["sha256"]


@dataclass(frozen=True)
class Feed:
    """The checked log of a run: its staged settings and catalog, the as-of date and the
    calibration cutoff (as-of minus the churn horizon: the latest complete churn window)."""

    settings: Settings
    catalog: Catalog
    as_of: date
    calibration_end: date


def ingest_and_check(run: RetrainRun) -> Feed:
    """Snapshot and ingest the log into the staging catalog; stop on a broken feed."""
    from pipeline.stages.ingest import ingest

    run.begin("snapshot")
    copy, log_sha = staging.snapshot(run.source, run.root / "log")
    run.summary["log"]["sha256"] = log_sha
    catalog = run.settings.catalog.under(run.root / "project")
    settings = run.settings.with_data(path=copy)
    run.begin("ingest")
    report = ingest(settings, catalog, run.tracker("ingest"))
    run.summary["log"] |= {
        k: report[k] for k in ("rows_read", "rows_quarantined", "quarantined_by_reason")
    }
    run.begin("feed_checks")
    retrain = run.retrain
    run.summary["log"]["quarantine_share"] = staging.check_quarantine(
        report, retrain.feed.max_quarantine_share, run.source
    )
    span = staging.resolve_as_of(
        catalog.clean, run.as_of_requested, retrain.feed.max_days_without_data, run.source
    )
    as_of = span["as_of"]
    cal_end = as_of - timedelta(days=settings.features.churn_horizon_days)
    run.summary |= {"as_of": as_of.isoformat(), "calibration_end": cal_end.isoformat()}
    run.summary["log"] |= {
        "first_transaction": span["first_transaction"].isoformat(),
        "last_transaction": span["last_transaction"].isoformat(),
        "clean_rows": span["rows"],
    }
    run.client.set_tag(run.run_id, "cvm.as_of", as_of.isoformat())
    run.client.set_tag(run.run_id, "mlflow.runName", f"retrain {as_of}")
    dates = {"calibration_end": cal_end, "holdout_end": as_of, "scoring_date": as_of}
    return Feed(settings.with_data(**dates), catalog, as_of, cal_end)


def check_history(run: RetrainRun, feed: Feed, champion: dict) -> None:
    """The log must still hold the rows the champion was trained on (a log only grows)."""
    run.begin("feed_checks")
    before = champion["manifest"].get("clean_rows_to_as_of")
    if not before:
        return
    now = staging.rows_until(feed.catalog.clean, champion["as_of"])
    run.summary["log"]["champion_rows_now"] = now
    run.summary["log"]["champion_rows_then"] = before
    lost = (before - now) / before
    if lost > run.retrain.feed.max_history_loss:
        raise CvmError(
            f"{run.source}: broken feed: it holds {now:,} clean rows up to "
            f"{champion['as_of']}, the champion's as-of date, where it held {before:,} "
            f"({lost:.1%} lost, more than retrain.feed.max_history_loss "
            f"{run.retrain.feed.max_history_loss:.1%}); a truncated file? Nothing was changed"
        )


def build_features(run: RetrainRun, feed: Feed):
    """Cut the log at the as-of date and build the feature tables; returns today's customers."""
    from pipeline.stages.features import build_features as features_stage

    log_summary = run.summary["log"]
    log_summary["rows_after_as_of"] = staging.cut_at(feed.catalog.clean, feed.as_of)
    log_summary["clean_rows_to_as_of"] = log_summary["clean_rows"] - log_summary["rows_after_as_of"]
    run.begin("features")
    try:
        features_stage(feed.settings, feed.catalog, run.tracker("features"))
    except CvmError as err:
        raise CvmError(
            f"features as of {feed.as_of} (calibration cutoff {feed.calibration_end} = as-of "
            f"minus features.churn_horizon_days): {err}"
        ) from None
    current = io.read_parquet(feed.catalog.features_scoring)
    run.summary["customers"] = len(current)
    return current
