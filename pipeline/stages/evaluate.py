"""evaluate: models fit before the calibration cutoff, measured on the holdout after it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import churn_store, clv_store, config, io, outputs, stages, tracking
from pipeline.catalog import Catalog
from pipeline.progress import Progress
from pipeline.tracking import Tracker


def run(cfg) -> dict:
    return evaluate(*stages.inputs(cfg))


def evaluate(settings: config.Settings, catalog: Catalog, tracker: Tracker) -> dict:
    """Holdout metrics of the calibration models in ``catalog`` next to the baselines; writes
    the results and the plot data together and returns the results."""
    from models.evaluation.holdout import HoldoutSettings, evaluate_holdout

    spec = settings.features
    features_report = io.read_json(catalog.features_report)
    dates = features_report["dates"]
    cal_end, holdout_end = (
        date.fromisoformat(dates[k]) for k in ("calibration_end", "holdout_end")
    )
    start = date.fromisoformat(features_report["first_day"])
    table = io.read_parquet(catalog.features_calibration)
    train = io.read_parquet(catalog.features_train_calibration)
    holdout = HoldoutSettings(
        prediction=settings.prediction,
        max_draws=settings.max_draws,
        holdout=(holdout_end - cal_end).days / spec.unit_days,
        churn_horizon=settings.churn_horizon,
    )
    results, plots = evaluate_holdout(
        table,
        float(train.churned.mean()),
        clv_store.load(catalog.clv_calibration),
        churn_store.load(catalog.churn_calibration),
        holdout,
        io.read_parquet(catalog.features_repeats),
        (cal_end - start).days / spec.unit_days,
        progress=lambda label: Progress(label, "customers"),
    )
    results = {"dates": dates} | results
    targets = (catalog.evaluation, catalog.evaluation_metrics, catalog.plots)
    with outputs.atomic_outputs(*targets, state=catalog.state) as (*files, plots_tmp):
        write_plots(plots, plots_tmp)
        io.write_report(results, *files)
    with tracker.run("evaluate", {"dates": dates}):
        tracking.log_metrics(
            {
                f"{part}.{name}.{metric}": value
                for part in ("clv", "churn")
                for name, values in results[part].items()
                for metric, value in values.items()
                if value is not None and np.isfinite(value)
            }
        )
        tracking.log_file(catalog.evaluation, "evaluation")
        tracking.log_artifacts(catalog.plots, "evaluation/plots")
    return results


def write_plots(plots: dict[str, pd.DataFrame], directory: Path) -> None:
    """Write each plot's data as ``<name>.csv``, or, when it has a ``model`` column, as
    ``<name>/<model>.csv`` per model: DVC draws one line per file, so each score gets its own
    curve in ``dvc plots show`` (dvc.yaml names the files)."""
    directory.mkdir()
    for name, frame in plots.items():
        if "model" not in frame.columns:
            frame.to_csv(directory / f"{name}.csv", index=False)
            continue
        (directory / name).mkdir()
        for model, part in frame.groupby("model", sort=False):
            part.drop(columns="model").to_csv(directory / name / f"{model}.csv", index=False)


def read_plots(directory: Path) -> dict[str, pd.DataFrame]:
    """The plot data :func:`write_plots` wrote, the per-model files of a plot concatenated
    again with their ``model`` column (in file name order)."""
    plots = {path.stem: pd.read_csv(path) for path in sorted(directory.glob("*.csv"))}
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        plots[folder.name] = pd.concat(
            pd.read_csv(path).assign(model=path.stem) for path in sorted(folder.glob("*.csv"))
        ).reset_index(drop=True)
    return plots
