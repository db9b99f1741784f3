"""Every purchase model of the family at scale: MAP, NUTS and the posterior CLV of each on the
benchmark's simulated logs (``python benchmarks/scale.py --logs-only --sizes 100k 1M`` makes
them, BG/NBD purchases and Gamma-Gamma spend), each step in a process of its own.

    python benchmarks/family_scale.py [--models bgnbd mbgnbd pareto_nbd weibull_nbd]
        [--sizes 100k 1M] [--steps map nuts clv] [--out benchmarks/results/family_scale.json]

The rows measured replace those of the same model, size and step in ``--out``; the others stay.

A step's time excludes imports, reading the summary and one warm-up fit on 2,000 customers (the
kernels' compilation, paid once per process); its memory is the process's peak. The targets are
the purchase-model issue's: MAP ≤ 5 s, NUTS ≤ 120 s and the posterior CLV ≤ 2 GB at 1M.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]
STEPS = ("map", "nuts", "clv")
TARGETS = {"map": ("seconds", 5.0), "nuts": ("seconds", 120.0), "clv": ("peak_mb", 2048.0)}


def child(model: str, size: str, step: str) -> dict:
    """One step, timed in this process (see the module's docstring)."""
    import numpy as np
    import pandas as pd
    from steps_common import CLV_DRAWS, NUTS

    from models.btyd.clv import ClvSettings, fit_clv
    from models.btyd.predict import PredictionSettings, predict_customers
    from models.btyd.settings import ConvergenceSettings, SamplerSettings

    data = pd.read_parquet(BENCH / "data" / "logs" / size / "summary.parquet")
    method = "map" if step == "map" else "nuts"
    sampler = SamplerSettings(draws=NUTS["draws"], chains=NUTS["chains"])
    settings = ClvSettings(
        model=model,
        method=method,
        sampler=sampler,
        convergence=ConvergenceSettings(on_failure="warn"),
    )
    fit_clv(data.sample(2000, random_state=0), settings)  # warm-up: the kernels compile
    started = time.perf_counter()
    fit = fit_clv(data, settings)
    seconds = time.perf_counter() - started
    record = {"fit_seconds": seconds}
    if step == "clv":
        tx, spend = fit.purchase_draws(CLV_DRAWS), fit.spend_draws(CLV_DRAWS)
        started = time.perf_counter()
        scored = predict_customers(tx, spend, data, fit.purchase, PredictionSettings())
        seconds = time.perf_counter() - started
        record["total_clv"] = float(np.sum(scored["clv"]))
    if method == "nuts":
        record["problems"] = fit.fit_info["convergence_problems"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return record | {"seconds": seconds, "peak_mb": peak, "customers": len(data)}


def measure(model: str, size: str, step: str, timeout: float) -> dict:
    """One step in a process of its own: its record, or why there is none."""
    command = [sys.executable, __file__, "--child", model, size, step]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"over {timeout:g} s"}
    if done.returncode:
        return {"status": "failed", "error": done.stderr.strip()[-500:]}
    return {"status": "ok"} | json.loads(done.stdout.strip().splitlines()[-1])


def run(
    models: list[str], sizes: list[str], steps: list[str], out: Path, timeout: float
) -> list[dict]:
    results = json.loads(out.read_text()) if out.exists() else []
    for size in sizes:
        for model in models:
            for step in steps:
                row = {"model": model, "size": size, "step": step}
                row |= measure(model, size, step, timeout)
                keys = [(r["model"], r["size"], r["step"]) for r in results]
                if (model, size, step) in keys:  # in its place
                    results[keys.index((model, size, step))] = row
                else:
                    results.append(row)
                out.write_text(json.dumps(results, indent=1) + "\n")
                print(table_row(row), flush=True)
    return results


def table_row(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['size']:>5} {row['model']:<12} {row['step']:<5} {row['status']}"
    text = f"{row['size']:>5} {row['model']:<12} {row['step']:<5} {row['seconds']:8.2f} s"
    text += f" {row['peak_mb']:8.0f} MB"
    if row["size"] == "1M":
        key, limit = TARGETS[row["step"]]
        text += f"  target {key} ≤ {limit:g}: {'met' if row[key] <= limit else 'MISSED'}"
    return text


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:5])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--sizes", nargs="+", default=["100k", "1M"])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--out", type=Path, default=BENCH / "results/family_scale.json")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds per step")
    args = parser.parse_args()
    from models.btyd.family import NAMES

    run(args.models or list(NAMES), args.sizes, args.steps, args.out, args.timeout)


if __name__ == "__main__":
    main()
