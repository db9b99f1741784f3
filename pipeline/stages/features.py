"""features: clean log → calibration/holdout, scoring and churn-training tables."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from features.attributes import AttributesError, AttributeSpec, encode, match
from features.summary import purchase_days
from features.tables import customers_dropped_by_netting, stage_tables, training_cutoffs
from pipeline import config, engine, io, outputs, stages, tracking
from pipeline.catalog import Catalog
from pipeline.errors import CvmError
from pipeline.tracking import Tracker

TABLES = ("calibration", "scoring", "train_calibration", "train_scoring", "repeats")


def run(cfg) -> dict:
    return build_features(*stages.inputs(cfg))


def build_features(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Write the four feature tables together; returns the features report."""
    if not catalog.clean.is_file():
        raise CvmError(f"{catalog.clean}: not found; run the stage that produces it first")
    if io.parquet_row_count(catalog.clean) == 0:
        raise CvmError(_nothing_clean(settings, catalog))
    targets = [catalog.features(name) for name in TABLES]
    targets += [catalog.features_report, catalog.features_metrics]
    with (
        engine.session(settings.engine) as con,
        outputs.atomic_outputs(*targets, state=catalog.state) as temps,
        outputs.scratch(catalog.features_report.parent, "features") as tmp,
    ):
        staging = Path(tmp)
        # purchase days once, into a staging file every table reads
        rows = io.parquet_row_count(catalog.clean)
        with engine.query_progress(con, "features: purchase days", rows):
            days = engine.stage(
                con,
                purchase_days(engine.read_parquet(con, catalog.clean), settings.has_margin),
                staging / "days.parquet",
            )
        attributes = _attributes(settings, con, days, staging)
        out = dict(zip(TABLES, temps, strict=False))
        report = _write_tables(settings, con, days, out, staging, attributes)
        io.write_report(report, *temps[-2:])
    params = {"features": settings.section("features"), "dates": report["dates"]}
    with tracker.run("features", params):
        tracking.log_metrics({k: v for k, v in report.items() if k.endswith("_rows")})
        tracking.log_dict(report, "features_report.json")
    return report


def _nothing_clean(settings: config.Settings, catalog: Catalog) -> str:
    """Why the clean log is empty, from the ingest report when there is one."""
    reasons = ""
    if catalog.ingest_report.is_file():
        counts = io.read_json(catalog.ingest_report).get("quarantined_by_reason") or {}
        reasons = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    return (
        f"{catalog.clean} holds no transaction: every row of {settings.source} was quarantined"
        + (f" ({reasons})" if reasons else "")
        + f"; see {catalog.quarantine} and check data.mapping and data.rules against the log"
    )


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


def attribute_spec(settings: config.Settings) -> AttributeSpec | None:
    """``data.customers`` as an :class:`AttributeSpec`, ``None`` when it is null."""
    section = settings.section("data").get("customers")
    if section is None:
        return None
    return AttributeSpec(
        path=section["path"],
        id=section["id"],
        covariates=tuple(section["covariates"]),
        categorical=tuple((c["column"], str(c["base"])) for c in section["categorical"]),
    )


def _attributes(settings, con, days, staging: Path) -> tuple[object, dict] | None:
    """The encoded customer attributes as an engine table and the report of how they matched
    the log; ``None`` without ``data.customers``. Problems are a :class:`CvmError` naming the
    file, line and column."""
    spec = attribute_spec(settings)
    if spec is None:
        return None
    path = Path(spec.path)
    if not path.is_file():
        raise CvmError(f"data.customers.path is {spec.path!r}: no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        encoded = encode(raw, spec)
        customers = days.select("customer_id").distinct().execute()["customer_id"]
        counts = match(customers, encoded, spec.path)
    except (AttributesError, pd.errors.ParserError) as err:
        raise CvmError(f"features: customer attributes: {err}") from None
    io.write_parquet(encoded, staging / "attributes.parquet")
    table = engine.read_parquet(con, staging / "attributes.parquet")
    covariates = [c for c in encoded.columns if c != "customer_id"]
    return table, counts | {"covariates": covariates}


def _with_attributes(part, attributes):
    """``part`` with the covariate columns of its customers, in its own row order."""
    table = attributes.rename(attribute_id="customer_id")
    joined = part.left_join(table, part.customer_id == table.attribute_id)
    return joined.drop("attribute_id").order_by(["cutoff", "customer_id"])


def _write_tables(
    settings, con, days, out: dict[str, Path], staging: Path, attributes=None
) -> dict:
    """The tables, written by the engine into ``out``; the report of their dates and sizes.

    A table's progress counts the purchase days once per part: each reads them all. With
    ``attributes`` (:func:`_attributes`) every customer table gains the covariate columns.
    """
    spec = settings.features
    span = days.aggregate(first=days.day.min(), last=days.day.max()).execute().iloc[0]
    first_day, last_day = (pd.Timestamp(span[k]).date() for k in ("first", "last"))
    dates = resolve_dates(settings, first_day, last_day)
    tables = stage_tables(days, dates, first_day, spec)
    if not tables["train_calibration"]:
        raise CvmError(
            f"features.churn_horizon_days ({spec.churn_horizon_days}) leaves no training cutoff "
            f"between the first transaction ({first_day}) and data.calibration_end"
        )
    report: dict = {"dates": {k: v.isoformat() for k, v in dates.items()}}
    if attributes is not None:
        table, report["customer_attributes"] = attributes
        tables = {
            name: parts if name == "repeats" else [_with_attributes(p, table) for p in parts]
            for name, parts in tables.items()
        }
    report["first_day"] = first_day.isoformat()
    report["train_cutoffs"] = {
        fit: [c.isoformat() for c in training_cutoffs(dates[anchor], first_day, spec)]
        for fit, anchor in (("calibration", "calibration_end"), ("scoring", "scoring_date"))
    }
    report["customers_dropped_by_netting"] = _netting(con, days, dates, report["train_cutoffs"])
    day_rows = io.parquet_row_count(staging / "days.parquet")
    for name, parts in tables.items():
        # a single part is written in place; several are concatenated in order at the end
        files = [staging / f"{name}-{i}.parquet" for i in range(len(parts))]
        files = files if len(files) > 1 else [out[name]]
        label, rows = f"features: {name}", 0
        with engine.query_progress(con, label, day_rows * len(parts), queries=len(parts)) as done:
            for part, file in zip(parts, files, strict=True):
                rows += engine.write_parquet(con, part, file)
                done()
            if len(files) > 1:
                io.concat_parquet(files, out[name])
        report[f"{name}_rows"] = rows
    return report


def _netting(con, days, dates: dict[str, date], train_cutoffs: dict[str, list[str]]) -> dict:
    """Per table, the customers it leaves out because their lines up to its cutoff are returns
    only (``rules.returns: net``), summed over a stacked table's cutoffs."""
    cutoffs = {
        "calibration": [dates["calibration_end"]],
        "scoring": [dates["scoring_date"]],
        **{f"train_{k}": [date.fromisoformat(c) for c in v] for k, v in train_cutoffs.items()},
    }
    found = con.execute(customers_dropped_by_netting(days, cutoffs)).iloc[0]
    return {name: int(0 if pd.isna(n) else n) for name, n in found.items()}
