"""features: clean log → calibration/holdout, scoring and churn-training tables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from features.summary import purchase_days
from features.tables import calibration_table, customer_features, training_cutoffs, training_table
from pipeline import config, io, tracking
from pipeline.engine import connect
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
    spec = config.feature_spec(cfg)
    io.read_parquet(Path(paths["clean"]))  # a clear error if ingest has not run
    con = connect(config.get(cfg, "engine"))
    days = con.create_table("days", purchase_days(con.read_parquet(paths["clean"])), temp=True)
    span = days.aggregate(first=days.day.min(), last=days.day.max()).execute().iloc[0]
    first_day, last_day = span["first"].date(), span["last"].date()
    dates = resolve_dates(cfg, first_day, last_day)
    cal_cutoffs = training_cutoffs(dates["calibration_end"], first_day, spec)
    score_cutoffs = training_cutoffs(dates["scoring_date"], first_day, spec)
    if not cal_cutoffs:
        raise CvmError(
            f"features.churn_horizon_days ({spec.churn_horizon_days}) leaves no training cutoff "
            f"between the first transaction ({first_day}) and data.calibration_end"
        )
    tables = {
        "calibration": calibration_table(
            days, dates["calibration_end"], dates["holdout_end"], spec
        ),
        "scoring": customer_features(days, dates["scoring_date"], spec),
        "train_calibration": training_table(days, cal_cutoffs, spec),
        "train_scoring": training_table(days, score_cutoffs, spec),
    }
    out = Path(paths["features_dir"])
    report: dict = {"dates": {k: v.isoformat() for k, v in dates.items()}}
    report["train_cutoffs"] = {
        "calibration": [c.isoformat() for c in cal_cutoffs],
        "scoring": [c.isoformat() for c in score_cutoffs],
    }
    for name, expr in tables.items():
        table = con.to_pyarrow(expr.order_by(["cutoff", "customer_id"]))
        io.write_parquet(table, out / f"{name}.parquet")
        report[f"{name}_rows"] = table.num_rows
    io.write_json(report, Path(paths["features_report"]))
    params = {"features": config.get(cfg, "features"), "dates": report["dates"]}
    with tracking.stage_run(config.get(cfg, "tracking"), "features", params):
        tracking.log_metrics({k: v for k, v in report.items() if k.endswith("_rows")})
        tracking.log_dict(report, "features_report.json")
    return report
