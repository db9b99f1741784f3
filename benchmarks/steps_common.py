"""The side of a benchmark step that runs in the child process, shared by cvm's and the peers'.

A child is ``python benchmarks/steps_<x>.py STEP --log-dir DIR --work DIR [--tool NAME]``. It loads
its inputs, times only the step itself (imports and inputs excluded), writes what later steps need
into ``--work`` and prints one line ``BENCHMARK_RESULT {json}``. This module needs only the standard
library, pandas and psutil, which both environments have.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

RESULT_PREFIX = "BENCHMARK_RESULT "
INTERVAL = (0.05, 0.95)  # the 90 % credible interval of the CLV
CLV_DRAWS = 1000  # posterior draws the CLV step uses
NUTS = {"chains": 2, "draws": 1000, "tune": 1000, "cores": 2}
CLV_MONTHS = 12
MONTHLY_DISCOUNT = 0.01
UNIT_DAYS = 7  # every tool works in weeks


@dataclass(frozen=True)
class Context:
    """Where a step finds the log (and its metadata) and keeps its outputs.

    ``work`` is the tool's directory for the log; a step writes into ``work/<step>/``, which the
    orchestrator empties before the step runs, so no output of an earlier run is ever read.
    """

    log_dir: Path
    work: Path
    meta: dict
    step: str
    inputs: Path | None = None  # where ``input`` reads (default: ``work``)

    @property
    def log(self) -> Path:
        return self.log_dir / "transactions.parquet"

    @property
    def clean_log(self) -> Path:
        """The same log in the schema of cvm's clean log (what the features stage reads)."""
        return self.log_dir / "clean.parquet"

    @property
    def reference_summary(self) -> Path:
        """The summary every fit step uses, computed once with cvm when the log was made."""
        return self.log_dir / "summary.parquet"

    @property
    def cutoff(self) -> date:
        """End of the observation period (T is measured up to it)."""
        return date.fromisoformat(self.meta["cutoff"])

    def output(self, name: str) -> Path:
        """Where the step writes its output ``name``."""
        out = self.work / self.step
        out.mkdir(parents=True, exist_ok=True)
        return out / name

    def input(self, name: str, producer: str) -> Path:
        """An input written by the ``producer`` step of the same tool (and size, unless the
        orchestrator points ``inputs`` at the work directory of another size)."""
        path = (self.inputs or self.work) / producer / name
        if not path.is_file():
            raise FileNotFoundError(f"{name} not found: run the {producer} step first")
        return path


class Timer:
    """Wall time of a ``with`` block, and the process's memory when it started."""

    def __enter__(self) -> Timer:
        import psutil

        self.rss_before_mb = psutil.Process().memory_info().rss / 2**20
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start

    def record(self) -> dict:
        return {"seconds": self.seconds, "rss_before_mb": self.rss_before_mb}


def summary_stats(summary) -> dict:
    """A few totals of a BTYD summary, to check that the tools summarised alike."""
    repeat = summary["frequency"] > 0
    return {
        "customers": int(len(summary)),
        "repeat_buyers": int(repeat.sum()),
        "total_frequency": float(summary["frequency"].sum()),
        "mean_recency": float(summary["recency"].mean()),
        "mean_T": float(summary["T"].mean()),
        "mean_monetary_value": float(summary.loc[repeat, "monetary_value"].mean()),
    }


def clv_stats(mean, lower, upper) -> dict:
    """Totals of a per-customer CLV with its interval."""
    return {
        "customers": int(len(mean)),
        "total_clv": float(mean.sum()),
        "mean_interval_width": float((upper - lower).mean()),
    }


def main(steps: dict[str, dict[str, Callable[[Context], dict]]]) -> int:
    """Run one step of one tool (``steps[tool][step]``) and print its result line."""
    parser = argparse.ArgumentParser(description="Run one benchmark step")
    parser.add_argument("step")
    parser.add_argument("--tool", default=next(iter(steps)))
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, help="read inputs here (default: --work)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    meta_file = args.log_dir / "log.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    ctx = Context(args.log_dir, args.work, meta, args.step, args.inputs)
    try:
        result = steps[args.tool][args.step](ctx)
    except Exception as err:  # the orchestrator records the failure
        traceback.print_exc()
        result = {"error": f"{type(err).__name__}: {err}"}
    result["self_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(RESULT_PREFIX + json.dumps(result, default=float), flush=True)
    return 1 if "error" in result else 0
