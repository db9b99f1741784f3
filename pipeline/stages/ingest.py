"""ingest: raw log → clean log, quarantine and ingest report.

The engine reads the raw file and writes the outputs itself: the log never passes through
pandas, so its size is bounded by the engine (DuckDB spills to disk, Spark partitions), not by
the Python process.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from features.cleaning import classify, clean_rows, quarantined_rows, reason_counts
from pipeline import config, engine, io, tracking


def run(cfg) -> dict:
    """Run the stage with ``cfg`` (params.yaml); returns the ingest report."""
    source = Path(config.get(cfg, "data.path"))
    mapping = config.column_mapping(cfg)
    rules = config.ingest_rules(cfg)
    paths = config.get(cfg, "paths")
    clean_path, quarantine_path = Path(paths["clean"]), Path(paths["quarantine"])
    report_path = Path(paths["ingest_report"])
    with engine.session(config.get(cfg, "engine")) as con:
        raw, rows_read = io.raw_table(
            con,
            source,
            config.get(cfg, "data.format"),
            mapping.source_columns(),
            header=config.get(cfg, "data.header"),
            names=config.get(cfg, "data.names"),
            delimiter=config.get(cfg, "data.delimiter"),
        )
        # all three outputs are replaced together, only once each is complete
        with (
            io.atomic_paths(clean_path, quarantine_path, report_path) as temps,
            tempfile.TemporaryDirectory(prefix=".ingest-", dir=clean_path.parent) as staging,
        ):
            # the raw file is parsed and classified once, into a staging file the rest reads
            with engine.query_progress(con, "ingest: classify", rows_read):
                classified = engine.stage(
                    con,
                    classify(raw, mapping, rules, engine.dialect(con)),
                    Path(staging) / "classified.parquet",
                )
            counts = {
                r: int(n) for r, n in con.execute(reason_counts(classified)).itertuples(index=False)
            }
            kept = _pop_null(counts)
            clean = clean_rows(classified)
            with engine.query_progress(con, "ingest: clean log", rows_read):
                rows_kept = engine.write_parquet(con, clean, temps[0])
            with engine.query_progress(con, "ingest: quarantine", rows_read):
                rows_quarantined = engine.write_parquet(
                    con, quarantined_rows(classified, mapping), temps[1]
                )
            totals = clean.aggregate(
                customers=clean.customer_id.nunique(), total=clean.amount.sum()
            ).execute()
            report = {
                "source": str(source),
                "source_sha256": io.file_sha256(source),
                "rows_read": rows_read,
                "rows_kept": rows_kept,
                "rows_quarantined": rows_quarantined,
                "quarantined_by_reason": dict(sorted(counts.items())),
                "customers": int(totals.customers.iloc[0]),
                "total_amount": round(float(totals.total.fillna(0.0).iloc[0]), 2),
            }
            if not rows_read == rows_kept + rows_quarantined == kept + sum(counts.values()):
                raise RuntimeError(f"ingest lost rows: {report}")
            io.write_json(report, temps[2], atomic=False)
    with tracking.stage_run(config.get(cfg, "tracking"), "ingest", config.get(cfg, "data")):
        tracking.log_metrics({k: v for k, v in report.items() if isinstance(v, int | float)})
        tracking.log_dict(report, "ingest_report.json")
    return report


def _pop_null(counts: dict) -> int:
    """Pop the count of kept rows, whose reason comes back as NULL/NaN."""
    for key in list(counts):
        if key is None or key != key:
            return counts.pop(key)
    return 0
