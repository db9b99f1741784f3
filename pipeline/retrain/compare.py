"""Challenger against champion: the champion's release, drift against its training data, both
evaluation pairs on the same window and features, and the promotion decision."""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import pandas as pd

from pipeline import registry
from pipeline.errors import CvmError
from pipeline.retrain.feed import Feed
from pipeline.retrain.record import RetrainRun

log = logging.getLogger(__name__)
RELEASE = "release"  # the folder of a run's MLflow artifacts that later runs compare against


class DriftFailure(CvmError):
    """Drift beyond the breach threshold with ``retrain.drift.action: fail``."""


def find_champion(run: RetrainRun, as_of: date) -> dict | None:
    """The current champions, their release (downloaded) and training as-of date."""
    run.begin("champion")
    versions = {
        kind: registry.aliases(run.client, name).get(registry.CHAMPION)
        for kind, name in run.names.items()
    }
    if not any(versions[kind] for kind in registry.KINDS):
        run.summary["champion_before"] = None
        return None
    run.summary["champion_before"] = versions
    tags = registry.check_champion_pair(run.client, run.names, versions)
    champion_as_of = date.fromisoformat(tags["clv"]["cvm.as_of"])
    if as_of < champion_as_of:
        raise CvmError(
            f"as-of {as_of} is before the champion's ({champion_as_of}): retraining only "
            "moves forward (to roll back, move the champion aliases in the registry)"
        )
    release = _download_release(run, tags["clv"]["cvm.release_run_id"])
    run.summary["champion_before"] = dict(versions) | {"as_of": champion_as_of.isoformat()}
    return {
        "versions": versions,
        "as_of": champion_as_of,
        "release": release,
        "manifest": json.loads((release / "manifest.json").read_text()),
        "profile": json.loads((release / "profile.json").read_text()),
    }


def _download_release(run: RetrainRun, run_id: str):
    import mlflow

    directory = run.root / "champion"
    for name in ("clv", "churn", "profile.json", "manifest.json"):
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{RELEASE}/{name}", dst_path=str(directory)
        )
    return directory  # download_artifacts keeps the last part of each path


def drift(run: RetrainRun, champion, current: pd.DataFrame, champion_table, as_of: date) -> dict:
    """Population stability of the key features and of the champion's scores, today (``as_of``)
    against the champion's training data, into the summary; raises :class:`DriftFailure` on a
    breach with action fail."""
    from models import drift as psi

    settings = run.retrain
    missing = [c for c in settings.drift.features or () if c not in current.columns]
    if missing:
        raise CvmError(
            f"retrain.drift.features: no column(s) {', '.join(missing)} in the feature "
            f"table (it has {', '.join(current.columns)})"
        )
    result: dict[str, Any] = {
        "action": settings.drift.action,
        "warn": settings.drift.warn,
        "breach": settings.drift.breach,
    }
    if champion is None:
        result |= {"status": "skipped", "reason": "no champion yet", "breaches": []}
        run.summary["drift"] = result
        return result
    reference = champion["profile"]
    limits = (settings.drift.warn, settings.drift.breach)
    result["reference_as_of"] = champion["as_of"].isoformat()
    result["features"] = psi.drift_table(
        reference.get("features", {}),
        current,
        list(settings.drift.features or ()),
        *limits,
        as_of=as_of,
    )
    result["scores"] = psi.drift_table(
        reference.get("scores", {}), champion_table, list(settings.drift.scores or ()), *limits
    )
    rows = {f"feature {k}": v for k, v in result["features"].items()}
    rows |= {f"score {k}": v for k, v in result["scores"].items()}
    result["status"] = psi.worst(rows)
    result["breaches"] = [k for k, v in rows.items() if v["status"] == "breach"]
    result["warnings"] = [k for k, v in rows.items() if v["status"] == "warn"]
    run.log_metrics(
        {
            f"psi.{kind}.{name}": row["psi"]
            for kind in ("features", "scores")
            for name, row in result[kind].items()
        }
    )
    for name in result["breaches"] + result["warnings"]:
        row = rows[name]
        log.warning(
            "retrain: drift (%s) in %s (PSI %.3g, %s form)",
            row["status"],
            name,
            row["psi"],
            row["form"],
        )
    run.summary["drift"] = result
    if result["status"] == "breach" and settings.drift.action == "fail":
        raise DriftFailure(
            f"drift: population stability index above {settings.drift.breach} for "
            f"{', '.join(result['breaches'])} (retrain.drift.action is fail). Nothing was changed"
        )
    return result


def evaluate_both(run: RetrainRun, feed: Feed, champion) -> tuple[dict, dict | None]:
    """The challenger's and the champion's evaluation pairs on the window (cal_end, as_of]: the
    champion's pair was fit up to its own, earlier, cutoff; both see the same features."""
    from pipeline.stages.evaluate import evaluate

    run.begin("evaluate")
    challenger = evaluate(feed.settings, feed.catalog, run.tracker("evaluate challenger"))
    if champion is None:
        return challenger, None
    release, reports = champion["release"], run.root / "champion" / "reports"
    catalog = feed.catalog.replace(
        clv_calibration=release / "clv" / "calibration",
        churn_calibration=release / "churn" / "calibration",
        evaluation=reports / "evaluation.json",
        evaluation_metrics=reports / "evaluation_metrics.json",
        plots=reports / "plots",
    )
    try:
        return challenger, evaluate(feed.settings, catalog, run.tracker("evaluate champion"))
    except (KeyError, ValueError) as err:
        raise CvmError(
            f"the champion cannot be evaluated on today's features ({err}); was the "
            "features config changed? Move the champion aliases or restore the config"
        ) from None


def decide(run: RetrainRun, champion, challenger_eval: dict, champion_eval, drift: dict) -> dict:
    """Promote unless the challenger is worse beyond a tolerance or drift blocks it."""
    from models.promotion import compare, missing_paths

    run.begin("decide")
    rules = run.retrain.promotion.metrics
    unknown = missing_paths(challenger_eval, rules)
    if unknown:
        raise CvmError(
            f"retrain.promotion.metrics: {', '.join(unknown)} not in the evaluation results "
            "(reports/evaluation.json of the evaluate stage), e.g. churn.churn_model.roc_auc"
        )
    window = {"start": run.summary["calibration_end"], "end": run.summary["as_of"]}
    rows = compare(challenger_eval, champion_eval or {}, rules)
    if champion is None:
        decision = {"promoted": True, "reason": "no champion yet: the challenger is the first"}
    else:
        decision = _verdict(rows, drift, run.retrain.drift.action)
    run.summary["evaluation"] = {"window": window, "metrics": rows}
    run.summary["decision"] = decision
    values = {}
    for row in rows:
        values[f"challenger.{row['metric']}"] = row["challenger"]
        values[f"champion.{row['metric']}"] = row["champion"]
    run.log_metrics(values)
    log.info("retrain: %s", decision["reason"])
    return decision


def _verdict(rows: list[dict], drift: dict, drift_action: str) -> dict:
    from models.promotion import worse_metrics

    worse = worse_metrics(rows)
    blocked = drift["status"] == "breach" and drift_action == "block"
    if worse:
        reason = "the challenger is worse beyond the tolerance on " + ", ".join(
            f"{r['metric']} ({r['challenger']:.4g} vs {r['champion']:.4g}, limit {r['limit']:.4g})"
            if r["challenger"] is not None
            else r["metric"]
            for r in rows
            if r["worse"]
        )
    elif blocked:
        reason = f"drift breach in {', '.join(drift['breaches'])} (action block)"
    else:
        reason = "the challenger is not worse than the champion beyond the tolerances"
    decision = {"promoted": not worse and not blocked, "reason": reason, "worse": worse}
    if blocked:
        decision["blocked_by_drift"] = True
    return decision
