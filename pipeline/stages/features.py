"""features: clean log → calibration/holdout, scoring and churn-training tables."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pandas as pd

from features.summary import purchase_days
from features.tables import calibration_table, customer_features, training_cutoffs, training_table
from pipeline import config, engine, io, outputs, stages, tracking
from pipeline.catalog import Catalog
from pipeline.errors import CvmError
from pipeline.tracking import Tracker

TABLES = ("calibration", "scoring", "train_calibration", "train_scoring")


def run(cfg) -> dict:
    return build_features(*stages.inputs(cfg))


def build_features(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Write the four feature tables together; returns the features report."""
    if not catalog.clean.is_file():
        raise CvmError(f"{catalog.clean}: not found; run the stage that produces it first")
    targets = [catalog.features(name) for name in TABLES] + [catalog.features_report]
    with (
        engine.session(settings.engine) as con,
        outputs.atomic_outputs(*targets, state=catalog.state) as temps,
        tempfile.TemporaryDirectory(prefix=".features-", dir=catalog.features_report.parent) as tmp,
    ):
        staging = Path(tmp)
        # purchase days once, into a staging file every table reads
        rows = io.parquet_row_count(catalog.clean)
        with engine.query_progress(con, "features: purchase days", rows):
            days = engine.stage(
                con,
                purchase_days(engine.read_parquet(con, catalog.clean)),
                staging / "days.parquet",
            )
        report = _write_tables(settings, con, days, dict(zip(TABLES, temps, strict=False)), staging)
        io.write_json(report, temps[-1], atomic=False)
    params = {"features": settings.section("features"), "dates": report["dates"]}
    with tracker.run("features", params):
        tracking.log_metrics({k: v for k, v in report.items() if k.endswith("_rows")})
        tracking.log_dict(report, "features_report.json")
    return report


def resolve_dates(settings: config.Settings, first_day: date, last_day: date) -> dict[str, date]:
    """Calibration cutoff, holdout end and scoring date, checked against the data's span.

    The holdout end and scoring date default to the last transaction; they may be set later
    (the end of the observation period when the last days saw no purchase).
    """
    cal = settings.dates["calibration_end"]
    holdout = settings.dates["holdout_end"] or last_day
    scoring = settings.dates["scoring_date"] or last_day
    if cal is None or not first_day <= cal < holdout:
        raise CvmError(
            f"data.calibration_end is {cal}; expected a date from the first transaction "
            f"({first_day}) to before data.holdout_end ({holdout})"
        )
    if scoring < first_day:
        raise CvmError(
            f"data.scoring_date is {scoring}; expected a date on or after the first transaction "
            f"({first_day})"
        )
    return {"calibration_end": cal, "holdout_end": holdout, "scoring_date": scoring}


def _write_tables(settings, con, days, out: dict[str, Path], staging: Path) -> dict:
    """The four tables, written by the engine into ``out``; the report of their dates and sizes.

    A table's progress counts the purchase days once per cutoff: each reads them all.
    """
    spec = settings.features
    span = days.aggregate(first=days.day.min(), last=days.day.max()).execute().iloc[0]
    first_day, last_day = (pd.Timestamp(span[k]).date() for k in ("first", "last"))
    dates = resolve_dates(settings, first_day, last_day)
    cal_cutoffs = training_cutoffs(dates["calibration_end"], first_day, spec)
    score_cutoffs = training_cutoffs(dates["scoring_date"], first_day, spec)
    if not cal_cutoffs:
        raise CvmError(
            f"features.churn_horizon_days ({spec.churn_horizon_days}) leaves no training cutoff "
            f"between the first transaction ({first_day}) and data.calibration_end"
        )
    tables = {
        "calibration": [
            calibration_table(days, dates["calibration_end"], dates["holdout_end"], spec)
        ],
        "scoring": [customer_features(days, dates["scoring_date"], spec)],
        # the stacked tables one cutoff at a time, oldest first: the engine never holds more
        # than one cutoff's customers, and the parts in turn are in (cutoff, customer) order
        "train_calibration": [training_table(days, [c], spec) for c in sorted(cal_cutoffs)],
        "train_scoring": [training_table(days, [c], spec) for c in sorted(score_cutoffs)],
    }
    report: dict = {"dates": {k: v.isoformat() for k, v in dates.items()}}
    report["train_cutoffs"] = {
        "calibration": [c.isoformat() for c in cal_cutoffs],
        "scoring": [c.isoformat() for c in score_cutoffs],
    }
    day_rows = io.parquet_row_count(staging / "days.parquet")
    for name, parts in tables.items():
        # a single part is written in place; several are concatenated in order at the end
        files = (
            [out[name]]
            if len(parts) == 1
            else [staging / f"{name}-{i}.parquet" for i in range(len(parts))]
        )
        progress = engine.query_progress(
            con, f"features: {name}", day_rows * len(parts), queries=len(parts)
        )
        rows = 0
        with progress as query_done:
            for part, file in zip(parts, files, strict=True):
                rows += engine.write_parquet(con, part.order_by(["cutoff", "customer_id"]), file)
                query_done()
            if len(files) > 1:
                io.concat_parquet(files, out[name])
        report[f"{name}_rows"] = rows
    return report
