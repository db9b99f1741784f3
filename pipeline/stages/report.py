"""report: the report for the people who decide, with the model evaluation in its appendix
(one self-contained HTML page)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import churn_store, config, io, outputs, publication, stages, tracking
from pipeline.catalog import Catalog
from pipeline.stages.evaluate import read_plots
from pipeline.tracking import Tracker


def run(cfg) -> Path:
    return report(*stages.inputs(cfg))


def report(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> Path:
    """Write the HTML report; returns its path."""
    from models.evaluation.report import evaluation_appendix

    scored = io.read_parquet(catalog.scored_files()[".parquet"])
    matrix = settings.scoring.views.matrix
    fits = io.read_json(catalog.fit_report)
    appendix = evaluation_appendix(
        scored,
        io.read_json(catalog.evaluation),
        churn_store.importance(catalog.churn_scoring),
        read_plots(catalog.plots),
        io.read_json(catalog.train_report)["scoring"].get("selection", {}),
        with_levels(io.read_parquet(catalog.segment_files()[".parquet"]), matrix),
        list(matrix.levels),
        fits,
    )
    page = publication.report_page(
        settings,
        scored,
        "the pipeline (dvc repro)",
        appendix=appendix,
        warnings=_warnings(fits),
        no_history="the pipeline's table stands alone; the tables cvm score and cvm retrain "
        "publish keep a history, and their reports show the change",
    )
    with outputs.atomic_outputs(catalog.report, state=catalog.state) as (tmp,):
        tmp.write_text(page)
    as_of = pd.Timestamp(scored.as_of_date.iloc[0]).date()
    with tracker.run("report", {"as_of": as_of}):
        tracking.log_file(catalog.report)
    tracking.finish_pipeline(tracker, headline(catalog))
    return catalog.report


def with_levels(segments: pd.DataFrame, matrix) -> pd.DataFrame:
    """The segment summary with the ``historical_level`` and ``clv_level`` of each value-matrix
    cell (from ``tiers.value_matrix``; null for a name the matrix does not hold)."""
    cells = {matrix.names[h][c]: (h, c) for h in matrix.levels for c in matrix.levels}
    where = segments.value_segment.map(cells)
    return segments.assign(
        historical_level=where.map(lambda x: x[0] if isinstance(x, tuple) else None),
        clv_level=where.map(lambda x: x[1] if isinstance(x, tuple) else None),
    )


def headline(catalog: Catalog) -> dict[str, float]:
    """The figures two pipeline executions are compared by, for the execution's MLflow run."""
    evaluation = io.read_json(catalog.evaluation)
    churn = evaluation["churn"]["churn_model"]
    figures = {f"churn_{k}": churn[k] for k in ("roc_auc", "pr_auc", "brier", "ece")}
    for part, values in evaluation["clv"].items():
        if values:  # no spend figures for a purchase-only log
            figures |= {f"clv_{part}_{k}": values[k] for k in ("mae", "normalised_gini")}
    summary = io.read_json(catalog.score_summary)
    return figures | {"customers": summary["customers"], "total_clv": summary["total_clv"]}


def _warnings(fit_report: dict) -> list[str]:
    """A line per CLV fit kept despite convergence problems (clv.convergence.on_failure=warn)."""
    return [
        f"the {fit} CLV posterior did not converge ({'; '.join(problems)}); it was kept because "
        "clv.convergence.on_failure is warn"
        for fit in ("calibration", "scoring")
        if (problems := fit_report.get(fit, {}).get("convergence_problems"))
    ]
