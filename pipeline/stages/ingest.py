"""ingest: raw log → clean log, quarantine and ingest report.

The engine reads the raw file and writes the outputs itself: the log never passes through
pandas, so its size is bounded by the engine (DuckDB spills to disk, Spark partitions), not by
the Python process.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

from features.cleaning import (
    classify,
    clean_rows,
    extreme_limit,
    mark_extreme,
    quarantined_rows,
    reason_counts,
    trimmed_ids,
)
from pipeline import config, engine, io, outputs, stages, tracking
from pipeline.catalog import Catalog
from pipeline.tracking import Tracker

log = logging.getLogger(__name__)


def run(cfg) -> dict:
    return ingest(*stages.inputs(cfg))


def ingest(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Classify every row of ``settings.source``; write the clean log, the quarantine and the
    report together. Returns the report."""
    source, mapping, _ = settings.source, settings.mapping, settings.rules  # checked first
    data = settings.section("data")
    with engine.session(settings.engine) as con:
        # checked before anything is written: a bad file or mapping leaves no output behind
        raw, rows_read = io.raw_table(
            con,
            source,
            data["format"],
            mapping.source_columns(),
            header=data["header"],
            names=data["names"],
            delimiter=data["delimiter"],
        )
        report = _classify(con, raw, rows_read, settings, catalog)
    with tracker.run("ingest", data):
        tracking.log_metrics({k: v for k, v in report.items() if isinstance(v, int | float)})
        tracking.log_dict(report, "ingest_report.json")
    return report


def _classify(con, raw, rows_read: int, settings: config.Settings, catalog: Catalog) -> dict:
    """Classify the raw rows and write the clean log, the quarantine and the report together."""
    mapping = settings.mapping
    targets = (catalog.clean, catalog.quarantine, catalog.ingest_report, catalog.ingest_metrics)
    with (
        outputs.atomic_outputs(*targets, state=catalog.state) as temps,
        outputs.scratch(catalog.clean.parent, "ingest") as staging,
    ):
        clean_tmp, quarantine_tmp, report_tmp, metrics_tmp = temps
        # the raw file is parsed and classified once, into a staging file the rest reads
        with engine.query_progress(con, "ingest: classify", rows_read):
            classified = engine.stage(
                con,
                classify(raw, mapping, settings.rules, engine.dialect(con), _as_of(settings)),
                Path(staging) / "classified.parquet",
            )
        limit = con.execute(extreme_limit(classified, settings.rules))
        extremes = _extremes(con, classified, _number(limit), settings.rules)
        classified = mark_extreme(classified, extremes["limit"], settings.rules)
        counts = {
            r: int(n) for r, n in con.execute(reason_counts(classified)).itertuples(index=False)
        }
        kept = _pop_null(counts)
        clean = clean_rows(classified)
        with engine.query_progress(con, "ingest: clean log", rows_read):
            rows_kept = engine.write_parquet(con, clean, clean_tmp)
        with engine.query_progress(con, "ingest: quarantine", rows_read):
            rows_quarantined = engine.write_parquet(
                con, quarantined_rows(classified, mapping), quarantine_tmp
            )
        totals = clean.aggregate(
            customers=clean.customer_id.nunique(),
            total=clean.amount.sum(),
            distinct=clean.amount.nunique(),
        ).execute()
        report = {
            "source": str(settings.source),
            "source_sha256": io.file_sha256(settings.source),
            "rows_read": rows_read,
            "rows_kept": rows_kept,
            "rows_quarantined": rows_quarantined,
            "quarantined_by_reason": dict(sorted(counts.items())),
            "customer_ids_trimmed": int(con.execute(trimmed_ids(classified)) or 0),
            "customers": int(totals.customers.iloc[0]),
            # null for a log without amounts, as the README says (0.0 would be a value)
            "total_amount": None
            if mapping.amount is None
            else round(float(totals.total.fillna(0.0).iloc[0]), 2),
            "distinct_amounts": int(totals.distinct.iloc[0]),
            "extreme_amounts": extremes,
            "as_of": _as_of(settings).isoformat(),
        }
        if report["extreme_amounts"]["rows"]:
            log.warning("ingest: extreme amounts (%s)", report["extreme_amounts"])
        if not rows_read == rows_kept + rows_quarantined == kept + sum(counts.values()):
            raise RuntimeError(f"ingest lost rows: {report}")
        io.restrict_like([clean_tmp, quarantine_tmp], settings.source)
        io.write_report(report, report_tmp, metrics_tmp)
    return report


def _as_of(settings: config.Settings) -> date:
    """The run's as-of date: the scoring date, else today. Later rows are quarantined."""
    return settings.dates["scoring_date"] or date.today()


def _extremes(con, classified, limit: float | None, rules) -> dict:
    """How many clean amounts lie above the extreme limit, the largest, and the rule applied."""
    found = {"rule": rules.extreme_amounts, "limit": limit, "rows": 0, "largest": None}
    if limit is not None:
        rows = classified.filter(classified.reason.isnull() & (classified.amount > limit))
        stats = con.execute(rows.aggregate(n=rows.count(), largest=rows.amount.max()))
        found |= {"rows": int(stats.n.iloc[0]), "largest": _number(stats.largest.iloc[0])}
    return found


def _number(value) -> float | None:
    return None if value is None or value != value else float(value)


def _pop_null(counts: dict) -> int:
    """Pop the count of kept rows, whose reason comes back as NULL/NaN."""
    for key in list(counts):
        if key is None or key != key:
            return counts.pop(key)
    return 0
