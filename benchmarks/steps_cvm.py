"""cvm's benchmark steps, run by ``benchmarks/scale.py`` in the project environment.

Each step calls the package the way the pipeline does: the features through ``features/`` on a
DuckDB connection, the fits through ``models.btyd.clv.fit_clv``, the CLV through
``models.btyd.predict.predict_customers`` (``predict_with_covariates`` on a log with covariates,
whose reference summary carries them as ``cov_*`` columns). ``generate`` writes a simulated log
(not timed).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import ibis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from steps_common import CLV_DRAWS, NUTS, UNIT_DAYS, Context, Timer, clv_stats, main, summary_stats

from features.summary import btyd_summary, purchase_days
from models.btyd import gamma_gamma
from models.btyd.clv import ClvSettings, fit_clv
from models.btyd.covariates import covariate_columns
from models.btyd.family import purchase_model
from models.btyd.predict import PredictionSettings, predict_customers, predict_with_covariates
from models.btyd.settings import ConvergenceSettings, SamplerSettings
from models.columns import COVARIATE_PREFIX
from models.simulate import SimulationSettings, simulate_log
from pipeline import config
from pipeline.engine import connect
from pipeline.stages import features as features_stage

ROOT = Path(__file__).resolve().parents[1]
MODEL = "bgnbd"
SPEND_NAMES = gamma_gamma.PARAM_NAMES


def _params(ctx: Context):
    """The pipeline's params for this log, composed from ``conf/`` as ``cvm params`` does, with
    tracking off and the features written into the step's directory."""
    cutoff = ctx.cutoff.isoformat()
    # the log's folder, and the step's when it is another (making the log, it is not)
    roots = ",".join(repr(str(p)) for p in dict.fromkeys((ctx.log_dir, ctx.work)))
    overrides = [
        "data=simulated",
        f"data.calibration_end={ctx.meta['calibration_end']}",
        f"data.holdout_end={cutoff}",
        f"data.scoring_date={cutoff}",
        "tracking.enabled=false",
        f"paths.clean={ctx.clean_log}",
        f"paths.features_dir={ctx.output('tables')}",
        f"paths.features_report={ctx.output('report.json')}",
        f"paths.output_roots=[{roots}]",
        f"paths.input_roots=['{ctx.log_dir}']",
    ]
    path = ctx.output("params.yaml")
    config.write_params(config.compose(overrides, ROOT / "conf"), path)
    return config.load_params(path)


def _connect(ctx: Context):
    """A connection to the pipeline's engine (DuckDB, as configured), spilling into the work dir."""
    engine = config.get(_params(ctx), "engine")
    return connect(engine | {"temp_directory": str(ctx.output("engine-spill"))})


def _read_summary(ctx: Context) -> pd.DataFrame:
    return pd.read_parquet(ctx.reference_summary)


# --- the log ---------------------------------------------------------------------------------

# the columns a clean log has beyond the simulated ones (as ingest writes them: null when unmapped)
_CLEAN_EXTRA = {
    "quantity": ibis.null("float64"),
    "order_id": ibis.null("string"),
    "margin": ibis.null("float64"),
}


def _write_chunks(spec: dict, path: Path, customers_path: Path) -> int:
    """Simulate ``spec``'s customers chunk by chunk into one Parquet file; returns its rows.

    With ``covariates`` (name, purchase coefficient, dropout coefficient), each customer gets
    those 0/1 covariates (half of the customers have each), written to ``customers_path`` as
    ``cov_<name>`` columns beside ``customer_id``."""
    settings = {k: spec[k] for k in ("horizon_days", "cohort_days")}
    if spec.get("params"):
        settings["params"] = tuple(spec["params"].items())
    effects = tuple(tuple(c) for c in spec.get("covariates", ()))
    if effects:
        settings |= {"covariate_effects": effects, "binary_covariates": True}
    names = [name for name, _, _ in effects]
    total, chunk = spec["customers"], spec["chunk"]
    rows, writer, attributes = 0, None, []
    for k, first in enumerate(range(0, total, chunk)):
        n = min(chunk, total - first)
        transactions, customers = simulate_log(
            SimulationSettings(customers=n, seed=spec["seed"] + k, **settings)
        )
        if total > chunk:  # ids restart in every chunk: prefix the chunk number
            transactions["customer_id"] = f"{k:03d}" + transactions["customer_id"]
            customers["customer_id"] = f"{k:03d}" + customers["customer_id"]
        columns = {name: f"{COVARIATE_PREFIX}{name}" for name in names}
        attributes.append(customers[["customer_id", *names]].rename(columns=columns))
        table = pa.Table.from_pandas(transactions, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        rows += table.num_rows
    writer.close()
    if effects:
        pd.concat(attributes, ignore_index=True).to_parquet(customers_path, index=False)
    return rows


def generate(ctx: Context) -> dict:
    """Write ``transactions.parquet``, the reference ``summary.parquet`` and ``log.json``."""
    spec = json.loads((ctx.log_dir / "spec.json").read_text())
    start = SimulationSettings().start
    customers = ctx.log_dir / "customers.parquet"
    meta = {
        "spec": spec,
        "transactions": _write_chunks(spec, ctx.log, customers),
        "start": start.isoformat(),
        "cutoff": (start + timedelta(days=spec["horizon_days"])).isoformat(),
        "calibration_end": (start + timedelta(days=spec["horizon_days"] // 2)).isoformat(),
    }
    ctx = Context(ctx.log_dir, ctx.work, meta, ctx.step)
    con = _connect(ctx)
    raw = con.read_parquet(str(ctx.log))
    con.to_parquet(raw.mutate(**_CLEAN_EXTRA, source_row=ibis.row_number() + 1), ctx.clean_log)
    if spec["summary"]:
        days = purchase_days(con.read_parquet(str(ctx.clean_log)))
        expr = btyd_summary(days, ctx.cutoff, UNIT_DAYS).order_by("customer_id")
        table = con.to_pyarrow(expr)
        if spec.get("covariates"):  # every fit and CLV step reads the covariates from here
            attributes = pd.read_parquet(customers)
            merged = table.to_pandas().merge(attributes, on="customer_id", how="left")
            table = pa.Table.from_pandas(merged, preserve_index=False)
        pq.write_table(table, ctx.reference_summary)
    (ctx.log_dir / "log.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {"transactions": meta["transactions"]}


# --- features ------------------------------------------------------------------------------


def summary(ctx: Context) -> dict:
    """The BTYD summary (frequency, recency, T, monetary value) at the cutoff."""
    con = _connect(ctx)
    with Timer() as timer:
        days = purchase_days(con.read_parquet(str(ctx.clean_log)))
        table = con.to_pyarrow(btyd_summary(days, ctx.cutoff, UNIT_DAYS))
    pq.write_table(table, ctx.output("summary.parquet"))
    return timer.record() | summary_stats(table.to_pandas())


def features(ctx: Context) -> dict:
    """The features stage itself on the clean log: calibration table (holdout outcomes, churn
    label), scoring table and the two stacked churn-training tables, written to Parquet."""
    cfg = _params(ctx)
    with Timer() as timer:
        report = features_stage.run(cfg)
    return timer.record() | {k: v for k, v in report.items() if k.endswith("_rows")}


# --- fits and CLV ----------------------------------------------------------------------------


def _save_draws(path: Path, tx: dict, spend: dict) -> None:
    arrays = {f"tx_{k}": v for k, v in tx.items()} | {f"spend_{k}": v for k, v in spend.items()}
    np.savez(path, **arrays)


def _load_draws(path: Path) -> tuple[dict, dict]:
    """The purchase draws (covariate coefficients included) and the spend draws."""
    with np.load(path) as data:
        tx = {k.removeprefix("tx_"): data[k] for k in data.files if k.startswith("tx_")}
        spend = {k: data[f"spend_{k}"] for k in SPEND_NAMES}
    return tx, spend


def _means(tx: dict, spend: dict) -> dict:
    return {"params": {k: float(np.mean(v)) for k, v in (tx | spend).items()}}


def fit_map(ctx: Context) -> dict:
    """MAP fit of BG/NBD (with the summary's covariates, if any) and Gamma-Gamma."""
    data = _read_summary(ctx)
    settings = ClvSettings(model=MODEL, method="map", covariates=covariate_columns(data))
    with Timer() as timer:
        fit = fit_clv(data, settings)
    tx, spend = fit.purchase_draws(), fit.spend_draws()
    _save_draws(ctx.output("map_draws.npz"), tx, spend)
    info = fit.fit_info
    return timer.record() | _means(tx, spend) | {"counts": info["counts"], "parts": info["seconds"]}


def fit_nuts(ctx: Context) -> dict:
    """NUTS fit of BG/NBD and Gamma-Gamma (convergence problems are recorded, not fatal)."""
    data = _read_summary(ctx)
    settings = ClvSettings(
        model=MODEL,
        method="nuts",
        # cvm's own tuning defaults (500 steps, target acceptance 0.8); the peers keep theirs
        sampler=SamplerSettings(draws=NUTS["draws"], chains=NUTS["chains"]),
        convergence=ConvergenceSettings(on_failure="warn"),
        covariates=covariate_columns(data),
    )
    with Timer() as timer:
        fit = fit_clv(data, settings)
    tx, spend = fit.purchase_draws(CLV_DRAWS), fit.spend_draws(CLV_DRAWS)
    _save_draws(ctx.output("nuts_draws.npz"), tx, spend)
    info = fit.fit_info
    fit_info = {
        "problems": info["convergence_problems"],
        "diagnostics": info["diagnostics"],
        "parts": info["seconds"],
        "counts": info["counts"],
    }
    return timer.record() | _means(tx, spend) | fit_info


def _clv(ctx: Context, draws_file: str, producer: str) -> dict:
    tx, spend = _load_draws(ctx.input(draws_file, producer))
    data = _read_summary(ctx)
    covariates = covariate_columns(data)
    args = (tx, spend, data, purchase_model(MODEL))
    with Timer() as timer:
        if covariates:  # every customer's CLV from their own parameters
            scored = predict_with_covariates(*args, covariates, PredictionSettings())
        else:
            scored = predict_customers(*args, PredictionSettings())
    stats = clv_stats(scored["clv"], scored["clv_lower"], scored["clv_upper"])
    return timer.record() | stats | {"draws": len(tx["r"])}


def clv(ctx: Context) -> dict:
    """Every customer's CLV, mean and 90 % interval, from 1,000 posterior draws."""
    return _clv(ctx, "nuts_draws.npz", "nuts")


def clv_point(ctx: Context) -> dict:
    """Every customer's CLV at the MAP point."""
    return _clv(ctx, "map_draws.npz", "map")


STEPS = {
    "cvm": {
        "generate": generate,
        "summary": summary,
        "features": features,
        "map": fit_map,
        "nuts": fit_nuts,
        "clv": clv,
        "clv_point": clv_point,
    }
}

if __name__ == "__main__":
    sys.exit(main(STEPS))
