"""The challenger: an evaluation pair fit up to the calibration cutoff and a production pair fit
on everything up to the as-of date (the ``fit_clv`` and ``train_churn`` stages in the staging
catalog), registered and tagged with the run that fit them."""

from __future__ import annotations

from pipeline import registry
from pipeline.retrain.feed import Feed
from pipeline.retrain.record import RetrainRun

PAIRED = {"clv": "churn", "churn": "clv"}


def fit_challenger(run: RetrainRun, feed: Feed) -> None:
    """Fit and register both models; their versions go to ``run.challenger``."""
    from pipeline.stages.fit_clv import fit_clv
    from pipeline.stages.train_churn import train_churn

    run.begin("fit_clv")
    clv = fit_clv(feed.settings, feed.catalog, run.tracker("fit_clv"))
    run.challenger["clv"] = clv["scoring"]["registry_version"]
    run.begin("train_churn")
    churn = train_churn(feed.settings, feed.catalog, run.tracker("train_churn"))
    run.challenger["churn"] = churn["scoring"]["registry_version"]
    if not all(run.challenger.values()):
        raise RuntimeError(f"the challenger was not registered: {run.challenger}")
    run.summary["challenger"] = dict(run.challenger)
    for kind in registry.KINDS:
        other = PAIRED[kind]
        registry.tag_version(
            run.client,
            run.names[kind],
            run.challenger[kind],
            {
                "cvm.release_run_id": run.run_id,
                "cvm.as_of": feed.as_of.isoformat(),
                "cvm.calibration_end": feed.calibration_end.isoformat(),
                "cvm.log_sha256": run.summary["log"]["sha256"],
                "cvm.paired_with": f"{run.names[other]}/{run.challenger[other]}",
            },
        )
