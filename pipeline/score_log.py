"""`cvm score`: score any transaction log with the registered champions, without retraining.

The log is ingested and summarised at the as-of date as the pipeline does, then every customer is
scored by the models under the alias ``champion`` in the MLflow registry (the pyfunc models of
:mod:`pipeline.registry`): the CLV model's predictions, the churn model's probability (fed with
what the CLV model's purchase model expects), tiers, lifecycle stages and RFM scores.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import config, io, lock, registry, staging, tracking
from pipeline.errors import CvmError

log = logging.getLogger(__name__)
SUMMARY_COLUMNS = ("frequency", "recency", "T", "monetary_value")


def champion_versions(client, names: dict[str, str]) -> dict[str, str]:
    """The versions under the alias ``champion``; a :class:`CvmError` when there are none."""
    found = {
        kind: registry.aliases(client, name).get(registry.CHAMPION) for kind, name in names.items()
    }
    missing = [names[kind] for kind, version in found.items() if version is None]
    if missing:
        raise CvmError(
            f"no version of {', '.join(missing)} has the alias '{registry.CHAMPION}' in the "
            "registry; `cvm retrain` promotes the first champions"
        )
    return found  # type: ignore[return-value]


def score_features(
    features: pd.DataFrame, models: registry.ScoringModels, cfg, as_of: date
) -> pd.DataFrame:
    """The scored customer table of ``features`` (one row per customer) with ``models``."""
    from models.btyd_features import add_btyd_features
    from models.scoring import scored_table

    spec = config.feature_spec(cfg)
    tiers, lifecycle = config.tier_settings(cfg)
    params = asdict(config.prediction_settings(cfg))
    accepted = models.clv_params()
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise CvmError(
            f"{models.labels()['clv_model']} does not accept the prediction setting(s) "
            f"{', '.join(unknown)}; register it again with this version of cvm"
        )
    if "max_draws" in accepted:
        params["max_draws"] = int(config.get(cfg, "clv.prediction.max_draws") or 0)
    predictions = models.clv.predict(features[list(SUMMARY_COLUMNS)], params=params)
    horizon = spec.churn_horizon_days / spec.unit_days
    inputs = add_btyd_features(features, models.clv_model.point(), models.model, horizon)
    try:
        churn = np.asarray(models.churn.predict(inputs), dtype=float)
    except ValueError as err:
        raise CvmError(
            f"{models.labels()['churn_model']} cannot score these features ({err}); "
            "the features config differs from the one it was trained with"
        ) from None
    return scored_table(features, predictions, churn, tiers, lifecycle, models.labels(), as_of)


def check_table(table: pd.DataFrame, customers: int, labels: dict[str, str]) -> None:
    """A scored table fit to publish: every customer once, every score defined, the models named."""
    problems = []
    if len(table) != customers:
        problems.append(f"{len(table)} rows for {customers} customers")
    if not table.customer_id.is_unique:
        problems.append("duplicate customer ids")
    scores = ["clv", "p_alive", "expected_purchases", "churn_probability"]
    undefined = {c: int(table[c].isna().sum()) for c in scores if table[c].isna().any()}
    if undefined:
        problems.append(f"undefined scores {undefined}")
    for column, label in labels.items():
        if not (table[column] == label).all():
            problems.append(f"{column} is not {label} everywhere")
    if problems:
        raise CvmError(f"the scored table is not fit to publish: {'; '.join(problems)}")


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
    from models.scoring import table_schema
    from pipeline.stages import ingest

    settings = staging.RetrainSettings.from_cfg(cfg)
    source = Path(log_path or config.get(cfg, "data.path"))
    base = _base(out or settings.scored)
    tracking_cfg = config.get(cfg, "tracking")
    with lock.exclusive(settings.lock_file, "cvm score", wait):
        client = registry.connect(tracking_cfg)
        names = registry.model_names(tracking_cfg)
        versions = champion_versions(client, names)
        root = settings.work_dir / "score-staging"
        shutil.rmtree(root, ignore_errors=True)
        copy, sha256 = staging.snapshot(source, root / "log")
        staged = staging.staged_config(cfg, root / "project", copy)
        report = ingest.run(staged)
        share = staging.check_quarantine(report, settings.max_quarantine_share, source)
        clean = Path(config.get(staged, "paths.clean"))
        span = staging.resolve_as_of(clean, as_of, settings.max_days_without_data, source)
        day = span["as_of"]
        later = staging.cut_at(clean, day)
        features = staging.scoring_features(staged, day)
        models = registry.ScoringModels(names, versions)
        table = score_features(features, models, cfg, day)
        check_table(table, len(features), models.labels())
        staged_table = root / "scored" / "customers"
        io.write_table(table, table_schema(table), staged_table)
        staging.publish_table(staged_table, base)
        summary = {
            "log": str(source),
            "log_sha256": sha256,
            "as_of": day.isoformat(),
            "rows_read": report["rows_read"],
            "quarantine_share": share,
            "rows_after_as_of": later,
            "customers": len(table),
            "total_clv": float(table.clv.sum()),
            "models": models.labels(),
            "scored": str(base.with_suffix(".parquet")),
        }
        params = {"as_of": summary["as_of"], "log": summary["log"], **models.labels()}
        with tracking.stage_run(tracking_cfg, "score_registry", params):
            tracking.log_metrics({"customers": len(table), "total_clv": summary["total_clv"]})
            tracking.log_dict(summary, "score_summary.json")
        shutil.rmtree(root, ignore_errors=True)
    return summary


def _base(path: Path) -> Path:
    """``data/scored/customers.parquet`` or ``data/scored/customers`` → the base path."""
    return path.with_suffix("") if path.suffix in (".parquet", ".csv") else path
