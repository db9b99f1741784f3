"""The ``cvm`` command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from pipeline import config
from pipeline.errors import CvmError

STAGES = ("ingest", "features", "fit_clv", "train_churn", "evaluate", "score", "report")


def _stage(name: str, params: Path) -> None:
    module = importlib.import_module(f"pipeline.stages.{name}")
    module.run(config.load_params(params))


def _simulate(args: argparse.Namespace) -> None:
    from pipeline import simulate

    settings = {
        "customers": args.customers,
        "model": args.model,
        "cohort_days": args.cohort_days,
        "horizon_days": args.horizon_days,
        "start": config.as_date(args.start, "--start"),
        "covariate_effects": tuple(simulate.parse_covariate(c) for c in args.covariate),
        "seed": args.seed,
    }
    if args.params:
        try:
            pairs = [item.split("=") for item in args.params.split(",")]
            settings["params"] = tuple((k, float(v)) for k, v in pairs)
        except ValueError:
            raise CvmError(f"--params {args.params!r}: expected name=value,name=value") from None
    elif args.model == "pareto_nbd":
        settings["params"] = (("r", 0.553), ("alpha", 10.578), ("s", 0.606), ("beta", 11.669))
    truth = simulate.run(args.out, **settings)
    print(f"{truth['transactions']:,} transactions of {args.customers:,} customers in {args.out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cvm", description="Customer Value Models")
    sub = parser.add_subparsers(dest="command", required=True)
    p_params = sub.add_parser("params", help="compose conf/ into params.yaml")
    p_params.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    p_params.add_argument("--output", type=Path, default=config.PARAMS_FILE)
    p_stage = sub.add_parser("stage", help="run one pipeline stage")
    p_stage.add_argument("name", choices=STAGES)
    p_stage.add_argument("--params", type=Path, default=config.PARAMS_FILE)
    p_run = sub.add_parser("run", help="run every stage in order")
    p_run.add_argument("--params", type=Path, default=config.PARAMS_FILE)
    p_sim = sub.add_parser("simulate", help="write a synthetic log with known truth")
    p_sim.add_argument("--out", type=Path, default=Path("data/simulated"))
    p_sim.add_argument("--customers", type=int, default=10_000)
    p_sim.add_argument("--model", choices=("bgnbd", "pareto_nbd"), default="bgnbd")
    p_sim.add_argument("--params", help="purchase parameters, e.g. r=0.24,alpha=4.4,a=0.79,b=2.4")
    p_sim.add_argument("--cohort-days", type=int, default=84)
    p_sim.add_argument("--horizon-days", type=int, default=546)
    p_sim.add_argument("--start", default="2024-01-01")
    p_sim.add_argument("--covariate", action="append", default=[], metavar="NAME:RATE:DROPOUT")
    p_sim.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        if args.command == "params":
            config.write_params(config.compose(args.overrides), args.output)
        elif args.command == "simulate":
            _simulate(args)
        elif args.command == "stage":
            _stage(args.name, args.params)
        else:
            for name in STAGES:
                logging.getLogger("pipeline").info("stage %s", name)
                _stage(name, args.params)
    except CvmError as err:
        print(f"cvm: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
