"""features: clean log → calibration/holdout, scoring and churn-training tables."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pandas as pd

from features.summary import purchase_days
from features.tables import calibration_table, customer_features, training_cutoffs, training_table
from pipeline import config, engine, io, tracking
from pipeline.errors import CvmError


def resolve_dates(cfg, first_day: date, last_day: date) -> dict[str, date]:
    """Calibration cutoff, holdout end and scoring date, checked against the data's span.

    The holdout end and scoring date default to the last transaction; they may be set later
    (the end of the observation period when the last days saw no purchase).
    """
    cal = config.as_date(config.get(cfg, "data.calibration_end"), "data.calibration_end")
    holdout = config.as_date(config.get(cfg, "data.holdout_end"), "data.holdout_end") or last_day
    scoring = config.as_date(config.get(cfg, "data.scoring_date"), "data.scoring_date") or last_day
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


def run(cfg) -> dict:
    """Run the stage with ``cfg`` (params.yaml); returns the features report."""
    paths = config.get(cfg, "paths")
    clean = Path(paths["clean"])
    if not clean.is_file():
        raise CvmError(f"{clean}: not found; run the stage that produces it first")
    out = Path(paths["features_dir"])
    with (
        engine.session(config.get(cfg, "engine")) as con,
        tempfile.TemporaryDirectory(prefix=".features-", dir=_mkdir(out)) as staging,
    ):
        # purchase days once, into a staging file every table reads
        with engine.query_progress(con, "features: purchase days", io.parquet_row_count(clean)):
            days = engine.stage(
                con, purchase_days(engine.read_parquet(con, clean)), Path(staging) / "days.parquet"
            )
        report = _write_tables(cfg, con, days, out, Path(staging))
    io.write_json(report, Path(paths["features_report"]))
    params = {"features": config.get(cfg, "features"), "dates": report["dates"]}
    with tracking.stage_run(config.get(cfg, "tracking"), "features", params):
        tracking.log_metrics({k: v for k, v in report.items() if k.endswith("_rows")})
        tracking.log_dict(report, "features_report.json")
    return report


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_tables(cfg, con, days, out: Path, staging: Path) -> dict:
    """The four tables, written by the engine; the report of their dates and sizes.

    A table's progress counts the purchase days once per cutoff: each reads them all.
    """
    spec = config.feature_spec(cfg)
    span = days.aggregate(first=days.day.min(), last=days.day.max()).execute().iloc[0]
    first_day, last_day = (pd.Timestamp(span[k]).date() for k in ("first", "last"))
    dates = resolve_dates(cfg, first_day, last_day)
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
    # the four files are replaced together, once all are complete
    with io.atomic_paths(*(out / f"{name}.parquet" for name in tables)) as temps:
        for (name, parts), tmp in zip(tables.items(), temps, strict=True):
            # a single part is written in place; several are concatenated in order at the end
            files = (
                [tmp]
                if len(parts) == 1
                else [staging / f"{name}-{i}.parquet" for i in range(len(parts))]
            )
            progress = engine.query_progress(
                con, f"features: {name}", day_rows * len(parts), queries=len(parts)
            )
            rows = 0
            with progress as query_done:
                for part, file in zip(parts, files, strict=True):
                    rows += engine.write_parquet(
                        con, part.order_by(["cutoff", "customer_id"]), file
                    )
                    query_done()
                if len(files) > 1:
                    io.concat_parquet(files, tmp)
            report[f"{name}_rows"] = rows
    return report
