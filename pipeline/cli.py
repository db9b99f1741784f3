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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pipeline").setLevel(logging.INFO)
    try:
        if args.command == "params":
            config.write_params(config.compose(args.overrides), args.output)
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
