"""Replay the scheduled work on CDNOW: a weekly delivery of the log up to each Saturday, `cvm
retrain` every four weeks and `cvm score` the weeks between, as a scheduler would run them. The
published tables' KPI history (customers, CLV, value at risk, expected churn, the realised
retention since the week before, the migration between tiers) is the series the teams follow.

    python benchmarks/kpi_replay.py [--weeks 8] [--retrain-every 4] [--method map|nuts]
        [--out benchmarks/results/kpi_replay.json] [--keep DIR]

Writes the series (for all customers and per value tier), each week's command, exit code and
seconds, and the migration between tiers to ``--out``; ``--keep`` keeps the project (its last
report: ``DIR/data/published/customers_report.html``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LOG = REPO / "data/raw/cdnow/CDNOW_master.txt"
LAST = date(1998, 6, 27)  # the last Saturday of the log


def delivery(day: date, target: Path) -> Path:
    """The log as delivered on ``day``: its header and every line dated up to that day."""
    lines = LOG.read_text().splitlines()
    stamp = day.strftime("%Y%m%d")
    kept = [lines[0], *(line for line in lines[1:] if line.split()[1] <= stamp)]
    target.write_text("\n".join(kept) + "\n")
    return target


def replay(project: Path, weeks: int, every: int, method: str) -> list[dict]:
    from pipeline import config

    overrides = [
        "data=cdnow",
        f"data.path={project / 'log.txt'}",
        f"clv.method={method}",
        "tracking.register=true",
    ]
    config.write_params(config.compose(overrides, REPO / "conf"), project / "params.yaml")
    days = [LAST - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    runs = []
    for week, day in enumerate(days):
        log = delivery(day, project / "log.txt")
        command = "retrain" if week % every == 0 else "score"
        started = time.perf_counter()
        done = subprocess.run(
            ["cvm", command, "--log", str(log), "--as-of", day.isoformat(), "--quiet"],
            cwd=project,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        print(f"{day} cvm {command}: exit {done.returncode} in {seconds:.0f} s", flush=True)
        if done.returncode not in (0, 4):  # 4: a retrain that kept the champion
            raise SystemExit(done.stderr[-3000:])
        runs.append(
            {
                "as_of": day.isoformat(),
                "command": command,
                "exit": done.returncode,
                "seconds": round(seconds, 1),
            }
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--retrain-every", type=int, default=4)
    parser.add_argument("--method", choices=("map", "nuts"), default="map")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/kpi_replay.json")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    project = args.keep or Path(tempfile.mkdtemp(prefix="cvm-kpi-replay-"))
    project.mkdir(parents=True, exist_ok=True)
    try:
        runs = replay(project, args.weeks, args.retrain_every, args.method)
        published = project / "data/published"
        kpis = pd.read_parquet(published / "customers_kpis.parquet")
        moves = pd.read_parquet(published / "customers_migration.parquet")
    finally:
        if args.keep is None:
            shutil.rmtree(project, ignore_errors=True)
    shown = kpis[kpis.dimension.isin(["all", "value_tier"])]
    columns = [
        "as_of_date",
        "dimension",
        "group",
        "customers",
        "clv",
        "value_at_risk",
        "expected_churn_rate",
        "retention_rate",
    ]
    tiers = moves[moves.dimension == "value_tier"]
    result = {
        "log": "CDNOW master",
        "method": args.method,
        "runs": runs,
        "kpis": json.loads(shown[columns].to_json(orient="records", date_format="iso")),
        "migration": json.loads(tiers.to_json(orient="records", date_format="iso")),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    everyone = shown[shown.dimension == "all"].set_index("as_of_date")
    with pd.option_context("display.width", 200, "display.float_format", "{:,.3f}".format):
        print(everyone[columns[3:]])


if __name__ == "__main__":
    main()
