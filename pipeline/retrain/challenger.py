"""The challenger: an evaluation pair fit up to the calibration cutoff and a production pair fit
on everything up to the as-of date (the ``fit_clv`` and ``train_churn`` stages in the staging
catalog), registered with the scorer of the production pair and tagged with the run that fit
them."""

from __future__ import annotations

from pipeline import registry
from pipeline.retrain.feed import Feed
from pipeline.retrain.record import RetrainRun

PAIRED = {"clv": "churn", "churn": "clv"}


def fit_challenger(run: RetrainRun, feed: Feed) -> None:
    """Fit and register both models and the scorer; their versions go to ``run.challenger``."""
    from pipeline.stages.fit_clv import fit_clv
    from pipeline.stages.train_churn import train_churn

    run.begin("fit_clv")
    clv = fit_clv(feed.settings, feed.catalog, run.tracker("fit_clv"))
    run.challenger["clv"] = clv["scoring"]["registry_version"]
    run.begin("train_churn")
    churn = train_churn(feed.settings, feed.catalog, run.tracker("train_churn"))
    run.challenger["churn"] = churn["scoring"]["registry_version"]
    run.challenger[registry.SCORER] = churn["scoring"]["scorer_version"]
    if not all(run.challenger.values()):
        raise RuntimeError(f"the challenger was not registered: {run.challenger}")
    run.summary["challenger"] = dict(run.challenger)
    release = {
        "cvm.release_run_id": run.run_id,
        "cvm.as_of": feed.as_of.isoformat(),
        "cvm.calibration_end": feed.calibration_end.isoformat(),
        "cvm.log_sha256": run.summary["log"]["sha256"],
    }
    paired = {kind: f"{run.names[PAIRED[kind]]}/{run.challenger[PAIRED[kind]]}" for kind in PAIRED}
    paired[registry.SCORER] = registry.scorer_pair(run.names, run.challenger)
    for kind, version in run.challenger.items():
        tags = release | {"cvm.paired_with": paired[kind]}
        registry.tag_version(run.client, run.names[kind], version, tags)
