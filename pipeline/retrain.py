"""`cvm retrain`: the scheduled run. Fit a challenger on the log as of a date, compare it with the
champion on the most recent labelled window, promote it if it is not worse, re-score everyone.

One run, in order (every step works in a staging directory; nothing the project or a downstream
team reads changes before the last step):

1. take the lock; snapshot the log; stop with "nothing to do" if this as-of date, log (content
   hash) and config were already processed;
2. ingest (the ``ingest`` stage); a broken feed stops the run: too many quarantined rows, a log
   that ends long before the as-of date, or one that lost rows the champion was trained on;
3. cut the clean log at the as-of date and build the feature tables (the ``features`` stage)
   with the calibration cutoff at as-of minus the churn horizon: the window after it is the most
   recent one whose churn labels are complete;
4. drift: population stability of the key features and of the champion's scores, today against
   the champion's training data;
5. fit the challenger (the ``fit_clv`` and ``train_churn`` stages: an evaluation pair fit up to
   the calibration cutoff, a production pair fit on everything up to the as-of date, registered);
6. evaluate the challenger's and the champion's evaluation pairs on that window (the ``evaluate``
   stage, run twice on the same features) and decide;
7. score every customer with the models that are champions after the decision; then move the
   registry aliases and publish the scored table, together (undone if either fails).

Every run is one MLflow run ``retrain`` (the stage runs are its children) and a summary JSON.
Each registered version carries its *release*: the artifacts of the run that fit it (both pairs)
and the profile of its training data, which later runs compare against.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import config, io, lock, registry, staging
from pipeline.errors import CvmError

log = logging.getLogger(__name__)

EXIT_SUCCESS = 0  # the challenger was promoted (or became the first champion); table refreshed
EXIT_ERROR = 1  # an unexpected error (a bug, the disk, the tracking server); nothing changed
EXIT_REJECTED = 2  # the log or the config was rejected (broken feed, drift with action fail)
EXIT_NOTHING_TO_DO = 3  # this as-of date, log and config were already processed; nothing changed
EXIT_REFUSED = 4  # promotion refused (worse than the champion, or drift with action block);
#                   the champion stays and the table was refreshed with it
EXIT_LOCKED = 5  # another run holds the lock; this one did nothing


class DriftFailure(CvmError):
    """Drift beyond the breach threshold with ``retrain.drift.action: fail``."""


def run(
    cfg, log_path: Path | None = None, as_of: date | None = None, wait: float = 0.0
) -> tuple[int, dict]:
    """One retraining run; returns the exit code and the run summary.

    Raises :class:`pipeline.lock.LockHeld` when another run holds the lock and
    :class:`CvmError` for an unusable ``retrain`` config; every other failure is recorded in the
    summary and MLflow and returned as its exit code.
    """
    settings = staging.RetrainSettings.from_cfg(cfg)
    with lock.exclusive(settings.lock_file, "cvm retrain", wait):
        return Retrain(cfg, settings, log_path, as_of).execute()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Retrain:
    def __init__(self, cfg, settings: staging.RetrainSettings, log_path, as_of) -> None:
        self.cfg = cfg
        self.settings = settings
        self.source = Path(log_path or config.get(cfg, "data.path"))
        self.as_of_requested = as_of
        self.tracking = config.get(cfg, "tracking")
        self.names = registry.model_names(self.tracking)
        self.root = settings.work_dir / "staging"
        self.step = "start"
        self.step_started = time.monotonic()
        self.timings: dict[str, float] = {}
        self.client = None
        self.run_id: str | None = None
        self.adopted: set[str] = set()
        self.challenger: dict[str, str] = {}
        self.published = False
        self.started = time.monotonic()
        self.summary: dict[str, Any] = {
            "command": "cvm retrain",
            "started": _now(),
            "as_of_requested": as_of.isoformat() if as_of else None,
            "log": {"path": str(self.source)},
        }

    # --- the run ---------------------------------------------------------------------------------

    def execute(self) -> tuple[int, dict]:
        try:
            if self.already_done():
                return EXIT_NOTHING_TO_DO, self.summary
            self.start_tracking()
            code = self.retrain()
        except CvmError as err:
            return self.failed(err, EXIT_REJECTED), self.summary
        except (Exception, KeyboardInterrupt) as err:
            return self.failed(err, EXIT_ERROR, traceback.format_exc()), self.summary
        return code, self.summary

    def already_done(self) -> bool:
        """Nothing to do: a completed run had this as-of date, log content and config, and
        (when it was the latest run) the champions and the scored table are still its own."""
        self.begin("idempotence")
        self.log_sha = staging.log_sha256(self.source)
        self.config_sha = staging.config_sha256(self.cfg)
        self.summary["log"]["sha256"] = self.log_sha
        self.summary["config_sha256"] = self.config_sha
        records = self.completed_records()
        for record in records:
            same_day = (
                record["as_of"] == self.as_of_requested.isoformat()
                if self.as_of_requested
                else record["as_of"] == record["log"].get("last_transaction")
            )
            if not (
                same_day
                and record["log"].get("sha256") == self.log_sha
                and record.get("config_sha256") == self.config_sha
            ):
                continue
            if record is records[-1] and not self.outputs_match(record):
                log.warning(
                    "retrain: as-of %s was processed, but the champions or the scored table "
                    "changed since; running again",
                    record["as_of"],
                )
                return False
            self.summary |= {
                "status": "nothing_to_do",
                "exit_code": EXIT_NOTHING_TO_DO,
                "as_of": record["as_of"],
                "previous_run": record.get("mlflow_run_id"),
                "message": (
                    f"as-of {record['as_of']} was already processed with this log and config "
                    f"(run of {record['finished']}); nothing to do"
                ),
            }
            self.append_history()
            return True
        return False

    def completed_records(self) -> list[dict]:
        """Summaries of the completed runs, oldest first."""
        runs = self.settings.work_dir / "runs"
        records = []
        for path in sorted(runs.glob("*/summary.json")) if runs.is_dir() else []:
            try:
                records.append(json.loads(path.read_text()))
            except ValueError:
                continue
        return sorted(records, key=lambda r: r.get("finished", ""))

    def outputs_match(self, record: dict) -> bool:
        client = registry.connect(self.tracking)
        for kind, name in self.names.items():
            if registry.aliases(client, name).get(registry.CHAMPION) != record[
                "champion_after"
            ].get(kind):
                return False
        scored = self.settings.scored.with_suffix(".parquet")
        return scored.is_file() and io.file_sha256(scored) == record["scored"]["sha256"]

    def start_tracking(self) -> None:
        import mlflow

        self.begin("tracking")
        self.client = registry.connect(self.tracking)
        experiment = mlflow.set_experiment(self.tracking["experiment"])
        run = self.client.create_run(
            experiment.experiment_id,
            run_name="retrain",
            tags={"cvm.stage": "retrain", "cvm.log_sha256": self.log_sha},
        )
        self.run_id = run.info.run_id
        self.summary["mlflow_run_id"] = self.run_id

    def retrain(self) -> int:
        from pipeline.stages import evaluate, features, fit_clv, ingest, train_churn

        settings, summary = self.settings, self.summary
        shutil.rmtree(self.root, ignore_errors=True)
        self.begin("snapshot")
        copy, self.log_sha = staging.snapshot(self.source, self.root / "log")
        summary["log"]["sha256"] = self.log_sha
        staged = staging.staged_config(self.cfg, self.root / "project", copy)

        # 2. ingest and the feed checks
        self.begin("ingest")
        report = self.stage(ingest.run, staged, "ingest")
        summary["log"] |= {
            "rows_read": report["rows_read"],
            "rows_quarantined": report["rows_quarantined"],
            "quarantined_by_reason": report["quarantined_by_reason"],
        }
        self.begin("feed_checks")
        summary["log"]["quarantine_share"] = staging.check_quarantine(
            report, settings.max_quarantine_share, self.source
        )
        clean = Path(config.get(staged, "paths.clean"))
        span = staging.resolve_as_of(
            clean, self.as_of_requested, settings.max_days_without_data, self.source
        )
        as_of = span["as_of"]
        horizon = config.feature_spec(self.cfg).churn_horizon_days
        cal_end = as_of - timedelta(days=horizon)
        summary |= {"as_of": as_of.isoformat(), "calibration_end": cal_end.isoformat()}
        summary["log"] |= {
            "first_transaction": span["first_transaction"].isoformat(),
            "last_transaction": span["last_transaction"].isoformat(),
            "clean_rows": span["rows"],
        }
        self.client.set_tag(self.run_id, "cvm.as_of", as_of.isoformat())
        self.client.set_tag(self.run_id, "mlflow.runName", f"retrain {as_of}")
        champion = self.find_champion(as_of)
        if champion:
            self.begin("feed_checks")
            self.check_history(clean, champion)
        summary["log"]["rows_after_as_of"] = staging.cut_at(clean, as_of)
        summary["log"]["clean_rows_to_as_of"] = span["rows"] - summary["log"]["rows_after_as_of"]

        # 3. features at the calibration cutoff and at the as-of date
        self.begin("features")
        staged = staging.staged_config(
            self.cfg,
            self.root / "project",
            copy,
            calibration_end=cal_end.isoformat(),
            holdout_end=as_of.isoformat(),
            scoring_date=as_of.isoformat(),
        )
        try:
            self.stage(features.run, staged, "features")
        except CvmError as err:
            raise CvmError(
                f"features as of {as_of} (calibration cutoff {cal_end} = as-of minus "
                f"features.churn_horizon_days): {err}"
            ) from None
        current = io.read_parquet(
            Path(config.get(staged, "paths.features_dir")) / "scoring.parquet"
        )
        summary["customers"] = len(current)

        # 4. drift against the champion's training data
        self.begin("drift")
        champion_table = None
        if champion:
            champion_table = self.score(current, champion["versions"], as_of)
        drift = summary["drift"] = self.drift(champion, current, champion_table)
        if drift["status"] == "breach" and settings.drift_action == "fail":
            raise DriftFailure(
                f"drift: population stability index above {settings.drift_breach} for "
                f"{', '.join(drift['breaches'])} (retrain.drift.action is fail). Nothing was "
                "changed"
            )

        # 5. the challenger
        self.begin("fit_clv")
        clv_report = self.stage(fit_clv.run, staged, "fit_clv")
        self.challenger["clv"] = clv_report["scoring"]["registry_version"]
        self.begin("train_churn")
        churn_report = self.stage(train_churn.run, staged, "train_churn")
        self.challenger["churn"] = churn_report["scoring"]["registry_version"]
        if not all(self.challenger.values()):
            raise RuntimeError(f"the challenger was not registered: {self.challenger}")
        summary["challenger"] = dict(self.challenger)
        self.tag_challenger(as_of, cal_end)

        # 6. evaluation on the window (cal_end, as_of] and the decision
        self.begin("evaluate")
        challenger_eval = self.stage(evaluate.run, staged, "evaluate challenger")
        champion_eval = None
        if champion:
            champion_eval = self.evaluate_champion(staged, champion)
        self.begin("decide")
        decision = self.decide(champion, challenger_eval, champion_eval, drift)
        promoted = decision["promoted"]

        # 7. the scored table, the release, then aliases and table together
        self.begin("score")
        winners = self.challenger if promoted else champion["versions"]
        table = self.score(current, winners, as_of) if promoted else champion_table
        from models.scoring import table_schema

        labels = {f"{kind}_model": f"{self.names[kind]}/{winners[kind]}" for kind in registry.KINDS}
        from pipeline.score_log import check_table

        check_table(table, len(current), labels)
        staged_table = self.root / "scored" / "customers"
        schema = table_schema(table)
        io.write_table(table, schema, staged_table)
        self.begin("release")
        self.log_release(staged, as_of, cal_end, current, table if promoted else None)
        self.begin("publish")
        self.publish(staged_table, promoted)
        self.published = True
        scored = self.settings.scored.with_suffix(".parquet")
        summary["champion_after"] = dict(winners)
        summary["scored"] = {
            "path": str(scored),
            "rows": len(table),
            "sha256": io.file_sha256(scored),
            **labels,
            "total_clv": float(table.clv.sum()),
        }
        code = EXIT_SUCCESS if promoted else EXIT_REFUSED
        summary |= {"status": "promoted" if promoted else "kept", "exit_code": code}
        self.finish(code)
        shutil.rmtree(self.root / "log", ignore_errors=True)  # the snapshot; the rest stays
        return code

    # --- steps ---------------------------------------------------------------------------------

    def begin(self, step: str) -> None:
        """Start a step: failures name it, and the summary says how long each one took."""
        now = time.monotonic()
        self.timings[self.step] = round(
            self.timings.get(self.step, 0.0) + now - self.step_started, 2
        )
        self.step, self.step_started = step, now
        self.summary["seconds_by_step"] = self.timings

    def stage(self, function, cfg, role: str):
        """Run a stage and make its MLflow run a child of this one."""
        self.adopted.add(_last_run_id() or "")
        try:
            return function(cfg)
        finally:
            last = _last_run_id()
            if last is not None and last not in self.adopted:
                self.adopted.add(last)
                self.client.set_tag(last, "mlflow.parentRunId", self.run_id)
                self.client.set_tag(last, "cvm.retrain.role", role)

    def find_champion(self, as_of: date) -> dict | None:
        """The current champions, their release (downloaded) and training as-of date."""
        import mlflow

        self.begin("champion")
        versions = {
            kind: registry.aliases(self.client, name).get(registry.CHAMPION)
            for kind, name in self.names.items()
        }
        self.summary["champion_before"] = versions if any(versions.values()) else None
        if not any(versions.values()):
            return None
        if not all(versions.values()):
            raise CvmError(
                f"only some models have a '{registry.CHAMPION}' alias ({versions}); the CLV and "
                "churn models are promoted together: set both aliases or neither"
            )
        tags = {
            kind: registry.version_tags(self.client, self.names[kind], versions[kind])
            for kind in registry.KINDS
        }
        for kind in registry.KINDS:
            if "cvm.release_run_id" not in tags[kind]:
                raise CvmError(
                    f"{self.names[kind]} version {versions[kind]} (alias "
                    f"'{registry.CHAMPION}') was not registered by `cvm retrain`, so it has no "
                    "evaluation pair to compare against; point the alias at a version from "
                    "`cvm retrain`, or remove both champion aliases to start afresh"
                )
        champion_as_of = date.fromisoformat(tags["clv"]["cvm.as_of"])
        if as_of < champion_as_of:
            raise CvmError(
                f"as-of {as_of} is before the champion's ({champion_as_of}): retraining only "
                "moves forward (to roll back, move the champion aliases in the registry)"
            )
        directory = self.root / "champion"
        for kind in registry.KINDS:
            mlflow.artifacts.download_artifacts(
                run_id=tags[kind]["cvm.release_run_id"],
                artifact_path=f"release/{kind}",
                dst_path=str(directory),
            )
        for name in ("profile.json", "manifest.json"):
            mlflow.artifacts.download_artifacts(
                run_id=tags["clv"]["cvm.release_run_id"],
                artifact_path=f"release/{name}",
                dst_path=str(directory),
            )
        release = directory  # download_artifacts keeps the last part of each path
        manifest = json.loads((release / "manifest.json").read_text())
        self.summary["champion_before"] = {
            "clv": versions["clv"],
            "churn": versions["churn"],
            "as_of": champion_as_of.isoformat(),
        }
        return {
            "versions": versions,
            "as_of": champion_as_of,
            "release": release,
            "manifest": manifest,
            "profile": json.loads((release / "profile.json").read_text()),
        }

    def check_history(self, clean: Path, champion: dict) -> None:
        """The log must still hold the rows the champion was trained on (a log only grows)."""
        before = champion["manifest"].get("clean_rows_to_as_of")
        if not before:
            return
        now = staging.rows_until(clean, champion["as_of"])
        self.summary["log"]["champion_rows_now"] = now
        self.summary["log"]["champion_rows_then"] = before
        lost = (before - now) / before
        if lost > self.settings.max_history_loss:
            raise CvmError(
                f"{self.source}: broken feed: it holds {now:,} clean rows up to "
                f"{champion['as_of']}, the champion's as-of date, where it held {before:,} "
                f"({lost:.1%} lost, more than retrain.feed.max_history_loss "
                f"{self.settings.max_history_loss:.1%}); a truncated file? Nothing was changed"
            )

    def score(self, features: pd.DataFrame, versions: dict[str, str], as_of: date):
        from pipeline.score_log import score_features

        models = registry.ScoringModels(self.names, versions)
        return score_features(features, models, self.cfg, as_of)

    def drift(self, champion, current: pd.DataFrame, champion_table) -> dict:
        from models import drift

        settings = self.settings
        missing = [c for c in settings.drift_features if c not in current.columns]
        if missing:
            raise CvmError(
                f"retrain.drift.features: no column(s) {', '.join(missing)} in the feature "
                f"table (it has {', '.join(current.columns)})"
            )
        result: dict[str, Any] = {
            "action": settings.drift_action,
            "warn": settings.drift_warn,
            "breach": settings.drift_breach,
        }
        if champion is None:
            return result | {"status": "skipped", "reason": "no champion yet", "breaches": []}
        reference = champion["profile"]
        args = (settings.drift_warn, settings.drift_breach)
        result["reference_as_of"] = champion["as_of"].isoformat()
        result["features"] = drift.drift_table(
            reference.get("features", {}), current, list(settings.drift_features), *args
        )
        result["scores"] = drift.drift_table(
            reference.get("scores", {}), champion_table, list(settings.drift_scores), *args
        )
        rows = {f"feature {k}": v for k, v in result["features"].items()} | {
            f"score {k}": v for k, v in result["scores"].items()
        }
        result["status"] = drift.worst(rows)
        result["breaches"] = [k for k, v in rows.items() if v["status"] == "breach"]
        result["warnings"] = [k for k, v in rows.items() if v["status"] == "warn"]
        self.client.log_batch(
            self.run_id,
            metrics=_metrics(
                {
                    f"psi.{kind}.{name}": row["psi"]
                    for kind in ("features", "scores")
                    for name, row in result[kind].items()
                }
            ),
        )
        for name in result["breaches"] + result["warnings"]:
            log.warning("retrain: drift (%s) in %s", rows[name]["status"], name)
        return result

    def tag_challenger(self, as_of: date, cal_end: date) -> None:
        other = {"clv": "churn", "churn": "clv"}
        for kind in registry.KINDS:
            registry.tag_version(
                self.client,
                self.names[kind],
                self.challenger[kind],
                {
                    "cvm.release_run_id": self.run_id,
                    "cvm.as_of": as_of.isoformat(),
                    "cvm.calibration_end": cal_end.isoformat(),
                    "cvm.log_sha256": self.log_sha,
                    "cvm.paired_with": f"{self.names[other[kind]]}/{self.challenger[other[kind]]}",
                },
            )

    def evaluate_champion(self, staged, champion: dict) -> dict:
        """The champion's evaluation pair (fit up to its own, earlier, calibration cutoff) on the
        same window and features as the challenger's."""
        from pipeline.stages import evaluate

        release = champion["release"]
        cfg = staging.with_paths(
            staged,
            clv_dir=release / "clv",
            churn_dir=release / "churn",
            reports_dir=self.root / "champion" / "reports",
        )
        report = json.loads((release / "clv" / "fit_report.json").read_text())
        cfg.clv.model = report["model"]
        try:
            return self.stage(evaluate.run, cfg, "evaluate champion")
        except (KeyError, ValueError) as err:
            raise CvmError(
                f"the champion cannot be evaluated on today's features ({err}); was the "
                "features config changed? Move the champion aliases or restore the config"
            ) from None

    def decide(self, champion, challenger_eval: dict, champion_eval, drift: dict) -> dict:
        from models.promotion import compare, missing_paths, worse_metrics

        unknown = missing_paths(challenger_eval, list(self.settings.metrics))
        if unknown:
            raise CvmError(
                f"retrain.promotion.metrics: {', '.join(unknown)} not in the evaluation results "
                "(reports/evaluation.json of the evaluate stage), e.g. churn.churn_model.roc_auc"
            )
        window = {"start": self.summary["calibration_end"], "end": self.summary["as_of"]}
        evaluation: dict[str, Any] = {"window": window}
        if champion is None:
            evaluation["metrics"] = compare(challenger_eval, {}, list(self.settings.metrics))
            decision = {"promoted": True, "reason": "no champion yet: the challenger is the first"}
        else:
            rows = compare(challenger_eval, champion_eval, list(self.settings.metrics))
            evaluation["metrics"] = rows
            worse = worse_metrics(rows)
            blocked = drift["status"] == "breach" and self.settings.drift_action == "block"
            if worse:
                reason = "the challenger is worse beyond the tolerance on " + ", ".join(
                    f"{r['metric']} ({r['challenger']:.4g} vs {r['champion']:.4g}, limit "
                    f"{r['limit']:.4g})"
                    if r["challenger"] is not None
                    else r["metric"]
                    for r in rows
                    if r["worse"]
                )
            elif blocked:
                reason = f"drift breach in {', '.join(drift['breaches'])} (action block)"
            else:
                reason = "the challenger is not worse than the champion beyond the tolerances"
            decision = {"promoted": not worse and not blocked, "reason": reason, "worse": worse}
            if blocked:
                decision["blocked_by_drift"] = True
        self.summary["evaluation"] = evaluation
        self.summary["decision"] = decision
        metrics = {}
        for row in evaluation["metrics"]:
            metrics[f"challenger.{row['metric']}"] = row["challenger"]
            metrics[f"champion.{row['metric']}"] = row["champion"]
        self.client.log_batch(self.run_id, metrics=_metrics(metrics))
        log.info("retrain: %s", decision["reason"])
        return decision

    def log_release(self, staged, as_of, cal_end, current, table) -> None:
        """The challenger's release in this MLflow run: both model pairs, the profile of its
        training data (and of its scores when they were computed) and a manifest."""
        from models import drift

        settings = self.settings
        profile = {
            "as_of": as_of.isoformat(),
            "features": drift.profiles(current, list(settings.drift_features), settings.drift_bins),
        }
        if table is not None:
            profile["scores"] = drift.profiles(
                table, list(settings.drift_scores), settings.drift_bins
            )
        manifest = {
            "as_of": as_of.isoformat(),
            "calibration_end": cal_end.isoformat(),
            "log_sha256": self.log_sha,
            "clean_rows_to_as_of": self.summary["log"]["clean_rows_to_as_of"],
            "versions": dict(self.challenger),
            "model": config.clv_settings(self.cfg).model,
        }
        self.client.log_artifacts(self.run_id, config.get(staged, "paths.clv_dir"), "release/clv")
        self.client.log_artifacts(
            self.run_id, config.get(staged, "paths.churn_dir"), "release/churn"
        )
        self.client.log_dict(self.run_id, profile, "release/profile.json")
        self.client.log_dict(self.run_id, manifest, "release/manifest.json")

    def publish(self, staged_table: Path, promoted: bool) -> None:
        """Move the aliases, then replace the scored table with the staged one: if either fails,
        the aliases go back to where they were and the previous table stays."""
        before = {kind: registry.aliases(self.client, name) for kind, name in self.names.items()}
        moves = [(registry.CHALLENGER, self.challenger)]
        if promoted:
            moves.append((registry.CHAMPION, self.challenger))
        try:
            for alias, versions in moves:
                for kind, name in self.names.items():
                    registry.move_alias(self.client, name, alias, versions[kind])
            staging.publish_table(staged_table, self.settings.scored)
        except BaseException:
            for alias, _ in moves:
                for kind, name in self.names.items():
                    registry.move_alias(self.client, name, alias, before[kind].get(alias))
            raise

    # --- the record ------------------------------------------------------------------------------

    def finish(self, code: int) -> None:
        summary = self.summary
        self.begin("done")
        summary["finished"] = _now()
        summary["seconds"] = round(time.monotonic() - self.started, 1)
        summary["message"] = message(summary)
        decision = summary["status"]
        record = self.settings.work_dir / "runs" / summary["as_of"] / "summary.json"
        io.write_json(summary, record)
        io.write_json(summary, self.settings.summary)
        self.append_history()
        try:
            for kind in registry.KINDS:
                registry.tag_version(
                    self.client, self.names[kind], self.challenger[kind], {"cvm.decision": decision}
                )
            self.close_run("FINISHED", decision, code)
        except Exception:  # the outputs are published and the summary written: keep the result
            log.exception("retrain: the run is complete, but MLflow could not record its end")
        log.info("retrain: %s", summary["message"])

    def failed(self, err: BaseException, code: int, trace: str | None = None) -> int:
        summary = self.summary
        failed_step = self.step
        self.begin("done")
        self.step = failed_step
        message = str(err) or type(err).__name__
        if isinstance(err, KeyboardInterrupt):
            message = "interrupted"
        summary.setdefault("as_of", summary["as_of_requested"])
        summary |= {
            "status": "failed",
            "exit_code": code,
            "finished": _now(),
            "seconds": round(time.monotonic() - self.started, 1),
            "error": {"step": self.step, "message": message, "type": type(err).__name__},
            "message": f"failed at step {self.step}: {message}. "
            + (
                "The scored table and the champions had been updated; only the record of the "
                "run is incomplete"
                if self.published
                else "The scored table and the champions were left as they were"
            ),
        }
        if trace:
            summary["error"]["traceback"] = trace
        try:
            for kind, version in self.challenger.items():
                if version:
                    registry.tag_version(
                        self.client, self.names[kind], version, {"cvm.decision": "failed"}
                    )
            io.write_json(summary, self.settings.summary)
            self.append_history()
            self.close_run("FAILED", "failed", code)
        except Exception:  # the record is best effort: the failure itself is what matters
            log.exception("retrain: could not record the failure")
        return code

    def close_run(self, status: str, decision: str, code: int) -> None:
        if self.client is None or self.run_id is None:
            return
        self.client.set_tag(self.run_id, "cvm.decision", decision)
        self.client.set_tag(self.run_id, "cvm.exit_code", str(code))
        if "error" in self.summary:
            self.client.set_tag(self.run_id, "cvm.error", self.summary["error"]["message"][:4000])
        params = {
            "as_of": self.summary.get("as_of"),
            "calibration_end": self.summary.get("calibration_end"),
            "log_sha256": self.summary["log"].get("sha256"),
            "config_sha256": self.summary.get("config_sha256"),
        }
        for key in ("champion_before", "challenger", "champion_after"):
            for kind in registry.KINDS:
                version = (self.summary.get(key) or {}).get(kind)
                if version:
                    params[f"{key}.{kind}"] = version
        from mlflow.entities import Param

        self.client.log_batch(
            self.run_id,
            metrics=_metrics(
                {
                    "customers": self.summary.get("customers"),
                    "quarantine_share": self.summary["log"].get("quarantine_share"),
                    "rows_read": self.summary["log"].get("rows_read"),
                    "exit_code": code,
                }
            ),
            params=[Param(k, str(v)) for k, v in params.items() if v is not None],
        )
        self.client.log_dict(self.run_id, self.summary, "retrain_summary.json")
        self.client.set_terminated(self.run_id, status)

    def append_history(self) -> None:
        """One line per run in ``work_dir/history.jsonl``."""
        s = self.summary
        line = {
            "finished": s.get("finished", _now()),
            "as_of": s.get("as_of"),
            "status": s.get("status"),
            "exit_code": s.get("exit_code"),
            "champion_before": s.get("champion_before"),
            "challenger": s.get("challenger"),
            "champion_after": s.get("champion_after"),
            "drift": (s.get("drift") or {}).get("status"),
            "reason": (s.get("decision") or {}).get("reason") or s.get("message"),
        }
        history = self.settings.work_dir / "history.jsonl"
        history.parent.mkdir(parents=True, exist_ok=True)
        with history.open("a") as handle:
            handle.write(json.dumps(line, default=str) + "\n")


def message(s: dict) -> str:
    """One line on a completed run: the decision, drift, and what was scored with what."""
    champions = " + ".join(s["scored"][f"{k}_model"] for k in registry.KINDS)
    verb = "promoted" if s["status"] == "promoted" else "refused; the champions stay"
    return (
        f"as of {s['as_of']}: challenger {verb} ({s['decision']['reason']}); drift "
        f"{s['drift']['status']}; {s['scored']['rows']:,} customers scored with {champions} in "
        f"{s['scored']['path']}"
    )


def _last_run_id() -> str | None:
    """The id of the last MLflow run this process started in the current tracking store."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.last_active_run()
    except MlflowException:  # the last run was in another store (an earlier job, a test)
        return None
    return run.info.run_id if run is not None else None


def _metrics(values: dict[str, Any]) -> list:
    import math

    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    return [
        Metric(key, float(value), stamp, 0)
        for key, value in values.items()
        if value is not None and math.isfinite(float(value))
    ]
