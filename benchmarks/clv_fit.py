"""Benchmark: CLV fit times (MAP, NUTS) and the memory of scoring every customer with every draw.

Runs on the CDNOW master log's calibration summary and on simulated cohorts of growing size
(BG/NBD + Gamma-Gamma with the CDNOW parameters, first purchases spread over 12 weeks, observed
for 39 weeks at day resolution). Prints a table and writes JSON.

    python benchmarks/clv_fit.py [--sizes 100000 1000000] [--draws 1000] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import tracemalloc
from datetime import date
from pathlib import Path

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")

import ibis  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.cleaning import classify, clean_rows  # noqa: E402
from features.spec import ColumnMapping, IngestRules  # noqa: E402
from features.summary import btyd_summary, purchase_days  # noqa: E402
from models.clv import ClvSettings, SamplerSettings, fit_clv  # noqa: E402
from models.clv_predict import PredictionSettings, predict_customers  # noqa: E402
from models.simulate import simulate_histories, simulate_spend  # noqa: E402
from pipeline.io import read_raw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRUTH = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
SPEND = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def cdnow_summary() -> pd.DataFrame:
    mapping = ColumnMapping(
        customer_id="customer_id",
        timestamp="date",
        timestamp_format="%Y%m%d",
        amount="dollar_value",
    )
    raw = read_raw(ROOT / "data/raw/cdnow/CDNOW_master.txt", "whitespace", mapping.source_columns())
    clean = clean_rows(classify(ibis.memtable(raw), mapping, IngestRules(duplicates="keep")))
    days = purchase_days(clean)
    return btyd_summary(days, date(1997, 9, 30), 7).execute()


def simulated_summary(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    first_day = rng.integers(0, 84, n)
    T = (273 - first_day) / 7.0
    sim = simulate_histories("bgnbd", TRUTH, T, rng)
    sim["recency"] = np.floor(sim.recency * 7) / 7  # purchases happen on days
    sim["monetary_value"] = np.round(simulate_spend(SPEND, sim.frequency.to_numpy(), rng), 2)
    return sim


def measure(name: str, summary: pd.DataFrame, draws: int) -> dict:
    row: dict = {"data": name, "customers": len(summary)}
    row["distinct_summaries"] = len(summary[["frequency", "recency", "T"]].drop_duplicates())
    start = time.perf_counter()
    fit = fit_clv(summary, ClvSettings(method="map"))
    row["map_seconds"] = time.perf_counter() - start
    row["map_r"] = fit.map_point["transactions.r"]
    sampler = SamplerSettings(draws=draws, tune=draws)
    start = time.perf_counter()
    fit = fit_clv(summary, ClvSettings(method="nuts", sampler=sampler))
    row["nuts_seconds"] = time.perf_counter() - start
    row["nuts_problems"] = fit.problems
    tx, spend = fit.transaction_draws(), fit.spend_draws()
    row["draws"] = len(tx["r"])
    tracemalloc.start()
    start = time.perf_counter()
    scored = predict_customers(tx, spend, summary, "bgnbd", PredictionSettings())
    row["score_seconds"] = time.perf_counter() - start
    row["score_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    row["naive_customers_x_draws_mb"] = len(summary) * row["draws"] * 8 / 2**20
    row["total_clv"] = float(scored.clv.sum())
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
    datasets = [("cdnow_master", cdnow_summary)] + [
        (f"simulated_{n}", lambda n=n: simulated_summary(n, seed=n)) for n in args.sizes
    ]
    rows = []
    for name, load in datasets:
        rows.append(measure(name, load(), args.draws))
        print(json.dumps(rows[-1], default=str), flush=True)
        result = {"machine": machine, "draws_per_chain": args.draws, "rows": rows}
        (args.out / "clv_fit.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = pd.DataFrame(rows).drop(columns=["nuts_problems", "total_clv", "map_r"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
