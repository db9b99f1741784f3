"""`cvm score`: score any transaction log with the registered champions, without retraining.

The log is ingested and summarised at the as-of date as the pipeline does, then every customer is
scored by the models under the alias ``champion`` in the MLflow registry (the pyfunc models of
:mod:`pipeline.registry`): the CLV model's predictions, the churn model's probability (fed with
what the CLV model's purchase model expects), tiers, lifecycle stages and RFM scores.
"""

from __future__ import annotations

import logging
import shutil
from datetime import date
from pathlib import Path

from models.report.appendix import facts
from models.scoring import value_totals
from pipeline import config, lock, outputs, publication, registry, staging, tracking
from pipeline.errors import CvmError
from pipeline.history import kpi_metrics, latest_kpis, next_history
from pipeline.tracking import Tracker

log = logging.getLogger(__name__)


def champion_versions(client, names: dict[str, str]) -> dict[str, str]:
    """The versions of the pair under the alias ``champion`` (checked against the scorer's,
    when it has one); a :class:`CvmError` when there are none."""
    found = {
        kind: registry.aliases(client, name).get(registry.CHAMPION) for kind, name in names.items()
    }
    missing = [names[kind] for kind in registry.KINDS if found[kind] is None]
    if missing:
        raise CvmError(
            f"no version of {', '.join(missing)} has the alias '{registry.CHAMPION}' in the "
            "registry; `cvm retrain` promotes the first champions"
        )
    registry.check_champion_pair(client, names, found, need_release=False)
    return {kind: found[kind] for kind in registry.KINDS}  # type: ignore[misc]


def run(
    cfg,
    log_path: Path | None = None,
    out: Path | None = None,
    as_of: date | None = None,
    wait: float = 0.0,
) -> dict:
    """Score ``log_path`` (default ``data.path``) with the champions; write the table to ``out``
    (a base path: ``.parquet``, ``.csv`` and ``.schema.json`` are written beside it, all at
    once; default ``retrain.scored``, i.e. ``paths.scored``). Returns a summary."""
    from pipeline.stages.ingest import ingest

    settings = config.Settings(cfg)
    retrain = staging.RetrainSettings.from_cfg(cfg)
    source = Path(log_path or settings.source)
    base = _base(out or retrain.scored)
    with lock.exclusive(retrain.lock_file, "cvm score", wait):
        outputs.recover(settings.catalog.state, settings.catalog.directories() | {base.parent})
        client = registry.connect(settings.tracking)
        publication.recover(settings.catalog.state, client)
        names = registry.model_names(settings.tracking)
        versions = champion_versions(client, names)
        root = retrain.work_dir / "score-staging"
        shutil.rmtree(root, ignore_errors=True)
        copy, sha256 = staging.snapshot(source, root / "log")
        catalog = settings.catalog.under(root / "project")
        report = ingest(settings.with_data(path=copy), catalog, Tracker(settings.tracking))
        share = staging.check_quarantine(report, retrain.feed.max_quarantine_share, source)
        span = staging.resolve_as_of(
            catalog.clean, as_of, retrain.feed.max_days_without_data, source
        )
        day = span["as_of"]
        config.check_as_of(cfg, day)
        later = staging.cut_at(catalog.clean, day)
        features = staging.scoring_features(settings, catalog.clean, day)
        models = registry.ScoringModels(names, versions)
        table = publication.score_features(features, models, settings, day)
        publication.check_table(table, len(features), models.labels())
        # a table written elsewhere (--out) leaves the production tables and history alone
        production = settings.database if out is None else None
        history = next_history(table, base) if out is None else None
        scoring = [
            ("log", source),
            ("its SHA-256", sha256),
            ("as of", day),
            ("rows read", f"{report['rows_read']:,}"),
            ("share quarantined", f"{share:.2%}"),
            ("rows after the as-of date (not used)", f"{later:,}"),
            *models.labels().items(),
        ]
        page = publication.report_page(
            settings,
            table,
            "cvm score",
            history,
            appendix=facts("The scoring", scoring),
            no_history=None if out is None else "a table written with --out has no history",
        )
        published = publication.write_table(
            table,
            base,
            settings.catalog.state,
            settings.guard_formulas,
            extra={publication.report_file(base): page},
            database=production,
            history=history,
        )
        summary = {
            "log": str(source),
            "log_sha256": sha256,
            "as_of": day.isoformat(),
            "rows_read": report["rows_read"],
            "quarantine_share": share,
            "rows_after_as_of": later,
            "customers": len(table),
            **value_totals(table),
            "models": models.labels(),
            "scored": str(base.with_suffix(".parquet")),
            "report": str(publication.report_file(base)),
            "database": published,
            "kpis": latest_kpis(history),
        }
        params = {"as_of": summary["as_of"], "log": summary["log"], **models.labels()}
        with Tracker(settings.tracking).run("score_registry", params):
            tracking.log_metrics({"customers": len(table), **value_totals(table)})
            tracking.log_metrics(kpi_metrics(summary["kpis"]))
            tracking.log_dict(summary, "score_summary.json")
            tracking.log_file(publication.report_file(base))
        shutil.rmtree(root, ignore_errors=True)
    return summary


def _base(path: Path) -> Path:
    """``data/scored/customers.parquet`` or ``data/scored/customers`` → the base path."""
    return path.with_suffix("") if path.suffix in (".parquet", ".csv") else path
