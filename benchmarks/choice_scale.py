"""The purchase model chosen out of time at scale: the choice ``clv=auto`` makes
(:func:`models.btyd.choice.choose`, MAP fits) among its default candidates (BG/NBD, MBG/CNBD-k,
Weibull/NBD and BG/NBD with Weibull lifetimes; MBG/CNBD-k's fit includes its search for k), on the
calendar's clock, on the benchmark's simulated logs (``python benchmarks/scale.py --logs-only
--sizes 100k 1M`` makes them), against one MAP fit of each candidate on the same customers.

    python benchmarks/choice_scale.py [--sizes 100k 1M] [--out benchmarks/results/choice_scale.json]

The customers are the features stage's table at a cutoff 90 days before the log's last day,
with their purchases in those 90 days (what the choice scores). Each size runs in a process of
its own; the times exclude imports, building the table and a warm-up choice on 2,000 customers
(the kernels' compilation). The target is the purchase-model issue's: at 1M customers, the choice
within 3 x one MAP fit per candidate (the sum of the candidates' fits).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent)]

from models.btyd.settings import ClvConfig  # noqa: E402 (the project's root is on the path)

CANDIDATES = ClvConfig().candidates
WINDOW_DAYS = 90
TARGET = 3.0  # the choice's time over the sum of one MAP fit per candidate, at 1M


def validation(size: str):
    """The customers at the cutoff ``WINDOW_DAYS`` before the log's last day, with their
    purchases after it (``next_purchases``), as the features stage computes them."""
    import ibis

    from features.labels import attach_outcomes
    from features.spec import FeatureSpec
    from features.summary import purchase_days
    from features.tables import customer_features

    con = ibis.duckdb.connect()
    txn = con.read_parquet(BENCH / "data" / "logs" / size / "transactions.parquet")
    days = purchase_days(txn.mutate(quantity=ibis.literal(1)))
    end = txn.timestamp.max().execute().date()
    cutoff = end - timedelta(days=WINDOW_DAYS)
    table = customer_features(days, cutoff, FeatureSpec())
    return attach_outcomes(table, days, cutoff, end, "next").execute()


def child(size: str) -> dict:
    """One size, timed in this process (see the module's docstring)."""
    from models.btyd.choice import candidates, choose
    from models.btyd.clv import ClvSettings, fit_clv

    table = validation(size)
    settings = ClvSettings(method="map", spend=False)
    args = ("next_purchases", WINDOW_DAYS / 7, candidates(CANDIDATES, False), settings, None)
    choose(table.sample(2000, random_state=0), *args, 7.0)  # warm-up: the kernels compile
    started = time.perf_counter()
    choice = choose(table, *args, 7.0)
    seconds = time.perf_counter() - started
    fits = {}
    for model in CANDIDATES:
        started = time.perf_counter()
        fit_clv(table, replace(settings, model=model))
        fits[model] = time.perf_counter() - started
    return {
        "customers": len(table),
        "choice_seconds": seconds,
        "map_seconds": fits,
        "ratio": seconds / sum(fits.values()),
        "choice": choice["choice"],
        "scores": choice["scores"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["100k", "1M"])
    parser.add_argument("--out", type=Path, default=BENCH / "results/choice_scale.json")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--child", size], capture_output=True, text=True
        )
        if done.returncode:
            sys.exit(f"{size}: {done.stderr.strip()[-2000:]}")
        row = {"size": size} | json.loads(done.stdout.strip().splitlines()[-1])
        results.append(row)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        fits = " + ".join(f"{m} {s:.2f}" for m, s in row["map_seconds"].items())
        verdict = f"  target ≤ {TARGET:g}x: {'met' if row['ratio'] <= TARGET else 'MISSED'}"
        print(
            f"{size:>5} choice {row['choice_seconds']:6.2f} s  MAP fits {fits} s  "
            f"ratio {row['ratio']:.2f}  chose {row['choice']}" + (verdict if size == "1M" else ""),
            flush=True,
        )


if __name__ == "__main__":
    main()
