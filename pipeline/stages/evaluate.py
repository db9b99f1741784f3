"""evaluate: models fit before the calibration cutoff, measured on the holdout after it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, config, io, tracking
from pipeline.progress import Progress


def run(cfg) -> dict:
    """Holdout metrics of the CLV and churn models next to their baselines; plot data."""
    from features.summary import purchase_days
    from features.tracking import repeat_purchases_by_period
    from models.btyd_features import add_btyd_features
    from models.clv import TRANSACTION_MODELS
    from models.clv_predict import predict_customers
    from models.evaluation import (
        beats_strongest_baseline,
        calibration_vs_holdout,
        churn_table,
        expected_cumulative_repeats,
    )
    from models.metrics import calibration_curve_points, roc_curve_points, value_metrics
    from pipeline.engine import connect

    paths = config.get(cfg, "paths")
    spec = config.feature_spec(cfg)
    model = config.clv_settings(cfg).model
    clv_dir, reports = Path(paths["clv_dir"]), Path(paths["reports_dir"])
    features_dir = Path(paths["features_dir"])
    dates = artifacts.read_json(Path(paths["features_report"]))["dates"]
    cal_end, holdout_end = (
        date.fromisoformat(dates[k]) for k in ("calibration_end", "holdout_end")
    )
    table = io.read_parquet(features_dir / "calibration.parquet")
    train = io.read_parquet(features_dir / "train_calibration.parquet")

    # CLV: holdout purchases and spend
    tx, spend = artifacts.clv_draws(
        clv_dir, "calibration", model, config.get(cfg, "clv.prediction.max_draws")
    )
    holdout = (holdout_end - cal_end).days / spec.unit_days
    horizon = spec.churn_horizon_days / spec.unit_days
    pred = predict_customers(
        tx,
        spend,
        table,
        model,
        config.prediction_settings(cfg, horizon=holdout),
        progress=Progress("evaluate: CLV over the holdout", "customers"),
    )
    predicted_spend = pred.expected_purchases * pred.expected_spend
    results: dict = {
        "dates": dates,
        "holdout_length": holdout,
        "clv": {
            "purchases": value_metrics(table.holdout_purchases, pred.expected_purchases),
            "spend": value_metrics(table.holdout_spend, predicted_spend),
        },
    }

    # churn: the model and its baselines on the churn horizon after the cutoff
    point = artifacts.clv_map(clv_dir, "calibration", model)
    churn = artifacts.churn_model(Path(paths["churn_dir"]), "calibration")
    scored = add_btyd_features(table, point, model, horizon)
    in_h = predict_customers(
        tx,
        None,
        table,
        model,
        config.prediction_settings(cfg, horizon=horizon),
        progress=Progress("evaluate: churn horizon", "customers"),
    )
    y = table.churned.to_numpy(dtype=int)
    scores = {
        "churn_model": churn.predict(scored),
        "clv_p_no_purchase": in_h.p_no_purchase.to_numpy(),
        "clv_expected_purchases": np.exp(-in_h.expected_purchases.to_numpy()),
        "recency_days": (table.recency_days / table.recency_days.max()).to_numpy(),
        "clv_p_alive": 1.0 - in_h.p_alive.to_numpy(),
        "base_rate": np.full(len(y), train.churned.mean()),
    }
    results["churn"] = churn_table(y, scores)
    results["churn_model_beats"] = beats_strongest_baseline(results["churn"])

    # plot data: tracking curve, calibration vs holdout, churn ROC and reliability curves
    con = connect(config.get(cfg, "engine"))
    days = purchase_days(con.read_parquet(paths["clean"]))
    start = date.fromisoformat(str(days.day.min().execute())[:10])
    actual = repeat_purchases_by_period(days, start, spec.unit_days).execute()
    periods = np.arange(int(actual.period.max()) + 1)
    first_offsets = ((cal_end - start).days / spec.unit_days) - table["T"].to_numpy()
    tracking_curve = pd.DataFrame(
        {
            "period": periods,
            "actual": actual.set_index("period").repeats.reindex(periods, fill_value=0).cumsum(),
            "predicted": expected_cumulative_repeats(
                TRANSACTION_MODELS[model], point, first_offsets, periods + 1.0
            ),
        }
    )
    plots = {
        "tracking": tracking_curve,
        "calibration_holdout": calibration_vs_holdout(
            table.frequency, table.holdout_purchases, pred.expected_purchases
        ),
        "churn_roc": pd.concat(
            roc_curve_points(y, p).assign(model=name)
            for name, p in scores.items()
            if name in ("churn_model", "clv_p_no_purchase", "recency_days")
        ),
        "churn_calibration": calibration_curve_points(y, scores["churn_model"]),
    }
    for name, frame in plots.items():
        io.write_atomic(
            reports / "plots" / f"{name}.csv", lambda tmp, f=frame: f.to_csv(tmp, index=False)
        )
    io.write_json(results, reports / "evaluation.json")
    with tracking.stage_run(config.get(cfg, "tracking"), "evaluate", {"dates": dates}):
        tracking.log_metrics(
            {
                f"{part}.{name}.{metric}": value
                for part in ("clv", "churn")
                for name, values in results[part].items()
                for metric, value in values.items()
                if value is not None and np.isfinite(value)
            }
        )
        tracking.log_artifacts(reports, "evaluation")
    return results
