"""ingest: raw log → clean log, quarantine and ingest report."""

from __future__ import annotations

from pathlib import Path

import ibis
import pyarrow.compute as pc

from features.cleaning import classify, clean_rows, quarantined_rows, reason_counts
from pipeline import config, io, tracking
from pipeline.engine import connect, dialect


def run(cfg) -> dict:
    """Run the stage with ``cfg`` (params.yaml); returns the ingest report."""
    source = Path(config.get(cfg, "data.path"))
    mapping = config.column_mapping(cfg)
    rules = config.ingest_rules(cfg)
    paths = config.get(cfg, "paths")
    raw = io.read_raw(
        source,
        config.get(cfg, "data.format"),
        mapping.source_columns(),
        header=config.get(cfg, "data.header"),
        names=config.get(cfg, "data.names"),
        delimiter=config.get(cfg, "data.delimiter"),
    )
    con = connect(config.get(cfg, "engine"))
    classified = con.create_table(
        "classified", classify(ibis.memtable(raw), mapping, rules, dialect(con)), temp=True
    )
    counts = {r: int(n) for r, n in con.execute(reason_counts(classified)).itertuples(index=False)}
    kept = _pop_null(counts)
    clean = con.to_pyarrow(clean_rows(classified))
    quarantine = con.to_pyarrow(quarantined_rows(classified, mapping))
    report = {
        "source": str(source),
        "source_sha256": io.file_sha256(source),
        "rows_read": len(raw),
        "rows_kept": kept,
        "rows_quarantined": sum(counts.values()),
        "quarantined_by_reason": dict(sorted(counts.items())),
        "customers": pc.count_distinct(clean.column("customer_id")).as_py(),
        "total_amount": round(pc.sum(clean.column("amount")).as_py() or 0.0, 2),
    }
    if report["rows_read"] != report["rows_kept"] + report["rows_quarantined"]:
        raise RuntimeError(f"ingest lost rows: {report}")
    io.write_parquet(clean, Path(paths["clean"]))
    io.write_parquet(quarantine, Path(paths["quarantine"]))
    io.write_json(report, Path(paths["ingest_report"]))
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
