"""What `cvm retrain` and `cvm score` share: their settings, the log snapshot, the feed checks
and the cut at the as-of date.

Both run the ordinary stage functions on a catalog inside a staging directory
(:meth:`pipeline.catalog.Catalog.under`): nothing they write reaches the project's outputs until
the caller publishes it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from pipeline import config, io
from pipeline.config_model import Drift, FeedChecks, Promotion
from pipeline.errors import CvmError


@dataclass(frozen=True)
class RetrainSettings:
    """The ``retrain`` group (see ``conf/retrain/default.yaml``) with its paths as paths, the
    scored table's defaulting to ``paths.scored``; ``feed``, ``promotion`` and ``drift`` are
    the group's own (:class:`pipeline.config_model.RetrainConfig`)."""

    work_dir: Path
    lock_file: Path
    summary: Path
    scored: Path
    feed: FeedChecks
    promotion: Promotion
    drift: Drift

    @classmethod
    def from_cfg(cls, cfg: DictConfig) -> RetrainSettings:
        typed = config.Settings(cfg).config
        retrain = typed.retrain
        return cls(
            work_dir=Path(retrain.work_dir),
            lock_file=Path(retrain.lock_file),
            summary=Path(retrain.summary),
            scored=Path(retrain.scored or typed.paths.scored),
            feed=retrain.feed,
            promotion=retrain.promotion,
            drift=retrain.drift,
        )


# --- the log -------------------------------------------------------------------------------------


def log_sha256(path: Path) -> str:
    """SHA-256 of a log file, or of every file (names and contents) of a log directory."""
    if path.is_file():
        return io.file_sha256(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode())
            digest.update(io.file_sha256(file).encode())
        return digest.hexdigest()
    raise CvmError(f"{path}: file not found (the transaction log; data.path or --log)")


def snapshot(log: Path, directory: Path) -> tuple[Path, str]:
    """Copy the log into ``directory``; returns the copy and its :func:`log_sha256`.

    The run reads this copy, so a log that grows while the run is under way does not change
    under it, and the hash is the hash of what was read.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / log.name
    if log.is_dir():
        shutil.copytree(log, target)
        return target, log_sha256(target)
    if not log.is_file():
        raise CvmError(f"{log}: file not found (the transaction log; data.path or --log)")
    digest = hashlib.sha256()
    with log.open("rb") as source, target.open("wb") as copy:
        while block := source.read(1 << 22):
            digest.update(block)
            copy.write(block)
    return target, digest.hexdigest()


# --- the config's hash --------------------------------------------------------------------------


def config_sha256(cfg: DictConfig) -> str:
    """A hash of the config that decides a run's results (the log's location left out: the log
    is identified by its content)."""
    import json

    values = OmegaConf.to_container(cfg, resolve=True)
    values["data"] = {k: v for k, v in values["data"].items() if k != "path"}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


# --- feed checks and the as-of cut ---------------------------------------------------------------


def check_quarantine(report: dict, max_share: float, log: Path) -> float:
    """The share of quarantined rows; a :class:`CvmError` above ``max_share`` (a broken feed)."""
    read = report["rows_read"]
    share = report["rows_quarantined"] / read if read else 1.0
    if share > max_share:
        reasons = ", ".join(
            f"{reason} {count:,}"
            for reason, count in sorted(
                report["quarantined_by_reason"].items(), key=lambda item: -item[1]
            )
        )
        raise CvmError(
            f"{log}: broken feed: {report['rows_quarantined']:,} of {read:,} rows "
            f"({share:.1%}) were quarantined, more than retrain.feed.max_quarantine_share "
            f"({max_share:.1%}); by reason: {reasons}. Nothing was changed"
        )
    return share


def _day_end(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time())


def _scalar(moment: datetime, kind: pa.DataType) -> pa.Scalar:
    return pa.scalar(moment, type=pa.timestamp("us")).cast(kind)


def clean_span(clean: Path) -> tuple[date, date, int]:
    """First and last transaction day and row count of the clean log."""
    dataset = ds.dataset(clean, format="parquet")
    first = last = None
    for batch in dataset.to_batches(columns=["timestamp"]):
        column = batch.column(0)
        if len(column) == 0:
            continue
        low, high = pc.min_max(column).values()
        first = low.as_py() if first is None else min(first, low.as_py())
        last = high.as_py() if last is None else max(last, high.as_py())
    if first is None:
        raise CvmError(f"{clean}: the clean log is empty: every row was quarantined")
    return first.date(), last.date(), dataset.count_rows()


def rows_until(clean: Path, day: date) -> int:
    """Clean rows dated on or before ``day``."""
    dataset = ds.dataset(clean, format="parquet")
    kind = dataset.schema.field("timestamp").type
    return dataset.count_rows(filter=ds.field("timestamp") < _scalar(_day_end(day), kind))


def cut_at(clean: Path, as_of: date) -> int:
    """Drop the clean rows after ``as_of`` (rewriting the file in batches); returns how many."""
    dataset = ds.dataset(clean, format="parquet")
    kind = dataset.schema.field("timestamp").type
    keep = ds.field("timestamp") < _scalar(_day_end(as_of), kind)
    later = dataset.count_rows() - dataset.count_rows(filter=keep)
    if later == 0:
        return 0

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, dataset.schema) as writer:
            for batch in dataset.to_batches(filter=keep):
                writer.write_batch(batch)

    if clean.is_file():
        io.write_atomic(clean, write)
    else:
        _replace_dir(clean, write)
    return later


def _replace_dir(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.cut")
    write(tmp)
    shutil.rmtree(path)
    os.replace(tmp, path)


def resolve_as_of(
    clean: Path, as_of: date | None, max_days_without_data: int, log: Path
) -> dict[str, Any]:
    """The as-of date (default: the last transaction day), checked against the log's span.

    An as-of date more than ``max_days_without_data`` after the log's last transaction means
    the feed stopped (or was cut short): a :class:`CvmError`.
    """
    first, last, rows = clean_span(clean)
    resolved = as_of or last
    if resolved < first:
        raise CvmError(f"--as-of {resolved} is before the log's first transaction ({first})")
    if as_of is not None and (as_of - last).days > max_days_without_data:
        raise CvmError(
            f"{log}: broken feed: its last transaction is on {last}, {(as_of - last).days} days "
            f"before the as-of date {as_of} (retrain.feed.max_days_without_data is "
            f"{max_days_without_data}); a truncated or stale file? Nothing was changed"
        )
    return {"as_of": resolved, "first_transaction": first, "last_transaction": last, "rows": rows}


def scoring_features(settings: config.Settings, clean: Path, as_of: date):
    """Every customer's features at ``as_of`` from the clean log ``clean`` (pandas)."""
    from features.summary import purchase_days
    from features.tables import customer_features
    from pipeline import engine

    with engine.session(settings.engine) as con:
        days = purchase_days(engine.read_parquet(con, clean), settings.has_margin)
        expr = customer_features(days, as_of, settings.features).order_by(["cutoff", "customer_id"])
        return con.to_pyarrow(expr).to_pandas()
