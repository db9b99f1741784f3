"""The ``cvm`` command."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

from models.btyd import family
from pipeline import config, lock, logs, plots, status, stops, tracking
from pipeline.credentials import redact
from pipeline.errors import CvmError, explain
from pipeline.stops import exit_code

STAGES = ("ingest", "features", "fit_clv", "train_churn", "evaluate", "score", "report")


def _stages(names: tuple[str, ...], params: Path, wait: float) -> None:
    """Run stages in order on ``params.yaml``, loaded (and validated) once, holding the
    project's lock (the one `cvm retrain` and `cvm score` take). The stages of `cvm run` share
    an MLflow parent run of their own, which no other process adopts."""
    cfg = config.load_params(params)
    command = "cvm run" if len(names) > 1 else f"cvm stage {names[0]}"
    with (
        lock.exclusive(Path(config.get(cfg, "retrain.lock_file")), command, wait),
        tracking.one_execution() if len(names) > 1 else nullcontext(),
    ):
        for name in names:
            if len(names) > 1:
                logging.getLogger("pipeline").info("stage %s", name)
            importlib.import_module(f"pipeline.stages.{name}").run(cfg)


def _simulate(args: argparse.Namespace) -> None:
    from pipeline import simulate

    settings = {
        "customers": args.customers,
        "model": args.model,
        "cohort_days": args.cohort_days,
        "horizon_days": args.horizon_days,
        "start": config.as_date(args.start, "--start"),
        "covariate_effects": tuple(simulate.parse_covariate(c) for c in args.covariate),
        "aging": args.aging,
        "seasonality": args.seasonality,
        "spend_sigma": args.spend_sigma,
        "seed": args.seed,
    }
    if args.params:
        try:
            pairs = [item.split("=") for item in args.params.split(",")]
            settings["params"] = tuple((k, float(v)) for k, v in pairs)
        except ValueError:
            raise CvmError(f"--params {args.params!r}: expected name=value,name=value") from None
    truth = simulate.run(args.out, with_amounts=not args.no_amounts, **settings)
    print(f"{truth['transactions']:,} transactions of {args.customers:,} customers in {args.out}")


def _backtest(args: argparse.Namespace) -> None:
    from models.evaluation.backtest import CLV_LEGEND, NOISE_LEGEND, clv_table, table
    from pipeline import backtest

    results = backtest.run(args.suite, args.log or None)
    print(table(results["cases"]))
    print(NOISE_LEGEND)
    print(clv_table(results["cases"]))
    print(CLV_LEGEND)
    s = results["summary"]
    improvement = s["mean_clv_mae_improvement_pct_not_from_baseline_model"]
    print(
        f"CLV: {s['clv_targets_met']} of {s['cases']} cases meet every target; mean MAE "
        "improvement on the stationary BG/NBD (logs not simulated from it): "
        + ("no such log" if improvement is None else f"{improvement:+.1f}%")
    )
    margin = s["mean_roc_auc_margin_not_from_baseline_model"]
    print(
        f"{s['all_targets_met']} of {s['cases']} cases meet every target "
        f"({s['all_targets_met_or_within_noise']} within sampling noise); mean ROC-AUC margin "
        f"over the strongest baseline (logs not simulated from its model): "
        + (
            "no such log"
            if margin is None
            else f"{margin['mean']:+.4f} ± {margin['half_width']:.4f}"
        )
    )
    simulated = (margin or {}).get("simulated")
    if simulated:
        print(
            f"on the {simulated['cases']} of those simulated: {simulated['model']:+.4f}, where "
            f"the true model's own churn probability is ahead by {simulated['ceiling']:+.4f}"
        )


def _retrain(args: argparse.Namespace) -> int:
    from pipeline import retrain

    cfg = config.load_params(args.params)
    as_of = config.as_date(args.as_of, "--as-of")
    if as_of:
        config.check_as_of(cfg, as_of)
    config.check_paths(cfg, args.log)
    code, summary = retrain.run(cfg, args.log, as_of, args.wait)
    if summary.get("status") == "failed":
        if summary["error"].get("traceback"):
            logs.error(summary["error"]["traceback"])
        logs.error(f"cvm: error: retrain {summary['message']}")
    else:
        print(f"cvm retrain: {summary['message']}")
    return code


def _score(args: argparse.Namespace) -> None:
    from pipeline import score_log

    cfg = config.load_params(args.params)
    as_of = config.as_date(args.as_of, "--as-of")
    if as_of:
        config.check_as_of(cfg, as_of)
    config.check_paths(cfg, args.log, args.out)
    summary = score_log.run(cfg, args.log, args.out, as_of, args.wait)
    print(
        f"cvm score: {summary['customers']:,} customers as of {summary['as_of']} scored with "
        f"{summary['models']['clv_model']} + {summary['models']['churn_model']} in "
        f"{summary['scored']}"
    )


def _status(args: argparse.Namespace) -> int:
    from pipeline.staging import RetrainSettings

    retrain = RetrainSettings.from_cfg(config.load_params(args.params))
    found = status.status(retrain.work_dir, retrain.scored, retrain.lock_file, args.max_age_days)
    if args.log_format == "json":
        print(json.dumps(found, default=str))
    else:
        print(f"cvm status: {found['status']}: {found['reason']}")
    return found["exit_code"]


EXIT_CODES = """exit codes of retrain and score:
  0  success: retrain promoted the challenger (or the first champion); score wrote the table
  1  unexpected error (a bug, the disk, the tracking store); nothing was changed
  2  rejected: bad config, a broken feed, drift with retrain.drift.action=fail; nothing changed
  3  retrain: nothing to do (this as-of date, log and config were already processed)
  4  retrain: promotion refused; the champions stay and the table was re-scored with them
  5  another cvm run, stage, retrain or score holds the lock; this run did nothing
  130, 143  stopped by Ctrl-C or SIGTERM: nothing half-written, its MLflow runs KILLED
"""


def _add_simulation_commands(sub) -> None:
    """The ``simulate`` and ``backtest`` commands' arguments."""
    p_sim = sub.add_parser("simulate", help="write a synthetic log with known truth")
    p_sim.add_argument("--out", type=Path, default=Path("data/simulated"))
    p_sim.add_argument("--customers", type=int, default=10_000)
    p_sim.add_argument("--model", choices=family.NAMES, default="bgnbd")
    p_sim.add_argument(
        "--params",
        help="purchase parameters, e.g. r=0.24,alpha=4.4,a=0.79,b=2.4 "
        "(default: the model's published CDNOW estimates)",
    )
    p_sim.add_argument("--cohort-days", type=int, default=84)
    p_sim.add_argument("--horizon-days", type=int, default=546)
    p_sim.add_argument("--start", default="2024-01-01")
    p_sim.add_argument("--covariate", action="append", default=[], metavar="NAME:RATE:DROPOUT")
    p_back = sub.add_parser("backtest", help="the stages on several logs and cutoffs, measured")
    p_back.add_argument("--suite", default="standard", help="conf/backtest/<suite>.yaml")
    p_back.add_argument("--log", action="append", help="only this log of the suite (repeatable)")
    p_sim.add_argument("--aging", type=float, default=0.0, help="churn hazard rising with age")
    p_sim.add_argument("--seasonality", type=float, default=0.0, help="yearly rate amplitude")
    p_sim.add_argument("--spend-sigma", type=float, default=0.0, help="log-normal spend tail")
    p_sim.add_argument("--no-amounts", action="store_true", help="a log without spend")
    p_sim.add_argument("--seed", type=int, default=0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvm", description="Customer Value Models")
    sub = parser.add_subparsers(dest="command", required=True)
    p_params = sub.add_parser(
        "params", help="make Hydra overrides the project's choices; compose conf/ into params.yaml"
    )
    p_params.add_argument("overrides", nargs="*", help="Hydra overrides, key=value")
    p_params.add_argument(
        "--output",
        type=Path,
        default=config.PARAMS_FILE,
        help="write the composition here instead, leaving the project's choices as they are",
    )
    p_stage = sub.add_parser("stage", help="run one pipeline stage")
    p_stage.add_argument("name", choices=STAGES)
    p_run = sub.add_parser("run", help="run every stage in order")
    _add_simulation_commands(sub)
    fmt = argparse.RawDescriptionHelpFormatter
    p_retrain = sub.add_parser(
        "retrain",
        help="scheduled retraining: fit a challenger, promote it unless worse, re-score",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p_retrain.add_argument("--as-of", help="YYYY-MM-DD; default: the log's last transaction day")
    p_retrain.add_argument("--log", type=Path, help="the transaction log; default: data.path")
    p_score = sub.add_parser(
        "score",
        help="score a log with the champion models in the registry (no retraining)",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p_score.add_argument("--log", type=Path, help="the transaction log; default: data.path")
    p_score.add_argument(
        "--out",
        type=Path,
        help="base path of the table (.parquet, .csv, .schema.json); "
        "default: retrain.scored (paths.scored)",
    )
    p_score.add_argument("--as-of", help="YYYY-MM-DD; default: the log's last transaction day")
    p_status = sub.add_parser(
        "status",
        help="is the scheduled work healthy? one line; exit 0 ok, 1 the last retraining "
        "failed, 6 the published table is stale, 5 a run holds the lock",
    )
    p_status.add_argument("--params", type=Path, default=config.PARAMS_FILE)
    p_status.add_argument(
        "--max-age-days",
        type=float,
        default=status.DEFAULT_MAX_AGE_DAYS,
        help="the published table's age beyond which it is stale (default: %(default)s)",
    )
    p_plots = sub.add_parser(
        "plots",
        help="the DVC plots of revisions (none: the workspace) as one page that opens offline",
    )
    p_plots.add_argument("revisions", nargs="*", help="git revisions or experiments to compare")
    p_plots.add_argument("--out", type=Path, default=plots.DEFAULT_OUT)
    for p in sub.choices.values():
        p.add_argument("--quiet", action="store_true", help="warnings and errors only")
        p.add_argument("--log-file", type=Path, help="also write every record here")
        p.add_argument("--log-format", choices=logs.FORMATS, default="text")
    for p in (p_stage, p_run, p_retrain, p_score):  # one of them at a time in a project
        p.add_argument("--params", type=Path, default=config.PARAMS_FILE)
        p.add_argument(
            "--wait",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="wait this long for a running cvm run, stage, retrain or score to finish "
            "(default: exit 5)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    # before any stage loads an OpenMP runtime (LightGBM, numba): see models/churn/classifier.py
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = _parser().parse_args(argv)
    logs.configure(args.quiet, args.log_file, args.log_format)
    handle = threading.current_thread() is threading.main_thread()
    if handle:  # Ctrl-C, a stopped unit, a timeout: an exception the command ends cleanly with
        previous = {s: signal.signal(s, stops.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _command(args)
    finally:
        if handle:
            for number, action in previous.items():
                signal.signal(number, action if action is not None else signal.SIG_DFL)


def _command(args: argparse.Namespace) -> int:
    try:
        if args.command == "retrain":
            return _retrain(args)
        if args.command == "score":
            _score(args)
        elif args.command == "status":
            return _status(args)
        elif args.command == "plots":
            print(f"cvm plots: {plots.run(args.revisions, args.out)}")
        elif args.command == "params":
            config.make_params(args.overrides, args.output)
        elif args.command == "simulate":
            _simulate(args)
        elif args.command == "backtest":
            _backtest(args)
        elif args.command == "stage":
            _stages((args.name,), args.params, args.wait)
        else:
            _stages(STAGES, args.params, args.wait)
    except lock.LockHeld as err:
        logs.error(f"cvm: {err}")
        return 5  # pipeline.retrain.EXIT_LOCKED
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: outputs are whole, runs marked KILLED
        tracking.close_own_runs()
        logs.error("cvm: interrupted; the outputs are as the last complete write left them")
        return exit_code(err)
    except Exception as err:
        message = str(err) if isinstance(err, CvmError) else explain(err)
        if message is None:
            raise  # a bug: its traceback
        logs.error(f"cvm: error: {redact(message)}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
