"""The record of a retraining run: its state as it goes, the summary JSON, the history line and
its MLflow run (which it owns: the stage runs are created as its children)."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pipeline import config, io, registry, staging, tracking
from pipeline.credentials import redact
from pipeline.tracking import Tracker

log = logging.getLogger(__name__)

EXIT_SUCCESS = 0  # the challenger was promoted (or became the first champion); table refreshed
EXIT_ERROR = 1  # an unexpected error (a bug, the disk, the tracking server); nothing changed
EXIT_REJECTED = 2  # the log or the config was rejected (broken feed, drift with action fail)
EXIT_NOTHING_TO_DO = 3  # this as-of date, log and config were already processed; nothing changed
EXIT_REFUSED = 4  # promotion refused (worse than the champion, or drift with action block);
#                   the champion stays and the table was refreshed with it
EXIT_LOCKED = 5  # another run holds the lock; this one did nothing


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RetrainRun:
    """One retraining run: what it was asked, where it works, what it has done so far."""

    settings: config.Settings
    retrain: staging.RetrainSettings
    config_sha: str
    source: Path
    as_of_requested: date | None
    names: dict[str, str]
    root: Path  # the staging directory
    summary: dict[str, Any]
    client: Any = None
    run_id: str | None = None
    step: str = "start"
    step_started: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    challenger: dict[str, str] = field(default_factory=dict)
    published: bool = False

    def begin(self, step: str) -> None:
        """Start a step: failures name it, and the summary says how long each one took."""
        moment = time.monotonic()
        spent = self.timings.get(self.step, 0.0) + moment - self.step_started
        self.timings[self.step] = round(spent, 2)
        self.step, self.step_started = step, moment
        self.summary["seconds_by_step"] = self.timings

    def tracker(self, role: str) -> Tracker:
        """Where a stage run of this run records itself: a child of this run's MLflow run."""
        return Tracker(self.settings.tracking).child(
            self.run_id, register=True, **{"cvm.retrain.role": role}
        )

    def start_tracking(self, log_sha: str) -> None:
        """This run's MLflow run, created (not activated) so stage runs nest under it."""

        self.begin("tracking")
        self.client = registry.connect(self.settings.tracking)
        experiment = tracking.experiment_id(self.settings.tracking["experiment"])
        tracking.close_orphans(self.client, experiment)
        run = self.client.create_run(
            experiment,
            run_name=f"retrain {self.summary['as_of_requested'] or ''}".strip(),
            tags={"cvm.stage": "retrain", "cvm.log_sha256": log_sha, **tracking.owner_tags()},
        )
        self.run_id = run.info.run_id
        self.summary["mlflow_run_id"] = self.run_id

    def log_metrics(self, values: dict[str, Any]) -> None:
        self.client.log_batch(self.run_id, metrics=metrics(values))

    def finish(self, code: int) -> None:
        """Write the summary, the record of the completed run and the history; close the run."""
        summary = self.summary
        self.begin("done")
        summary["finished"] = now()
        summary["seconds"] = round(time.monotonic() - self.started, 1)
        summary["message"] = message(summary)
        record = self.retrain.work_dir / "runs" / summary["as_of"] / "summary.json"
        io.write_json(summary, record)
        io.write_json(summary, self.retrain.summary)
        self.append_history()
        try:
            for kind, version in self.challenger.items():  # the pair and its scorer
                registry.tag_version(
                    self.client, self.names[kind], version, {"cvm.decision": summary["status"]}
                )
            self.close_run("FINISHED", summary["status"], code)
        except Exception:  # the outputs are published and the summary written: keep the result
            log.exception("retrain: the run is complete, but MLflow could not record its end")
        log.info("retrain: %s", summary["message"])

    def failed(self, err: BaseException, code: int, trace: str | None = None) -> int:
        """Record a failure at the current step; returns ``code``."""
        summary = self.summary
        failed_step = self.step
        self.begin("done")
        self.step = failed_step
        text = redact(
            "interrupted" if isinstance(err, KeyboardInterrupt) else str(err) or type(err).__name__
        )
        kept = (
            "The scored table and the champions had been updated; only the record of the run "
            "is incomplete"
            if self.published
            else "The scored table and the champions were left as they were"
        )
        summary.setdefault("as_of", summary["as_of_requested"])
        summary |= {
            "status": "failed",
            "exit_code": code,
            "finished": now(),
            "seconds": round(time.monotonic() - self.started, 1),
            "error": {"step": self.step, "message": text, "type": type(err).__name__},
            "message": f"failed at step {self.step}: {text}. {kept}",
        }
        if trace:
            summary["error"]["traceback"] = redact(trace)
        try:
            for kind, version in self.challenger.items():
                if version:
                    registry.tag_version(
                        self.client, self.names[kind], version, {"cvm.decision": "failed"}
                    )
            io.write_json(summary, self.retrain.summary)
            self.append_history()
            self.close_run(
                "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED", "failed", code
            )
        except Exception:  # the record is best effort: the failure itself is what matters
            log.exception("retrain: could not record the failure")
        return code

    def close_run(self, status: str, decision: str, code: int) -> None:
        if self.client is None or self.run_id is None:
            return
        from mlflow.entities import Param

        s = self.summary
        self.client.update_run(self.run_id, name=f"retrain {s.get('as_of')}")  # as resolved
        self.client.set_tag(self.run_id, "cvm.decision", decision)
        self.client.set_tag(self.run_id, "cvm.exit_code", str(code))
        if "error" in s:
            self.client.set_tag(self.run_id, "cvm.error", s["error"]["message"][:4000])
        params = {
            "as_of": s.get("as_of"),
            "calibration_end": s.get("calibration_end"),
            "log_sha256": s["log"].get("sha256"),
            "config_sha256": s.get("config_sha256"),
        }
        for key in ("champion_before", "challenger", "champion_after"):
            for kind, version in (s.get(key) or {}).items():  # the pair and its scorer
                if version:
                    params[f"{key}.{kind}"] = version
        values = {
            "customers": s.get("customers"),
            "quarantine_share": s["log"].get("quarantine_share"),
            "rows_read": s["log"].get("rows_read"),
            "exit_code": code,
        }
        self.client.log_batch(
            self.run_id,
            metrics=metrics(values),
            params=[Param(k, str(v)) for k, v in params.items() if v is not None],
        )
        self.client.log_dict(self.run_id, s, "retrain_summary.json")
        if "evaluation" in s:  # the promotion table of a run that compared, refused or not
            table = s["evaluation"] | {"decision": s.get("decision")}
            self.client.log_dict(self.run_id, table, "promotion_table.json")
        self.client.set_terminated(self.run_id, status)

    def append_history(self) -> None:
        """One line per run in ``work_dir/history.jsonl``."""
        s = self.summary
        line = {
            "finished": s.get("finished", now()),
            "as_of": s.get("as_of"),
            "status": s.get("status"),
            "exit_code": s.get("exit_code"),
            "champion_before": s.get("champion_before"),
            "challenger": s.get("challenger"),
            "champion_after": s.get("champion_after"),
            "drift": (s.get("drift") or {}).get("status"),
            "reason": s.get("message")
            if s.get("status") == "failed"
            else (s.get("decision") or {}).get("reason") or s.get("message"),
        }
        history = self.retrain.work_dir / "history.jsonl"
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


def metrics(values: dict[str, Any]) -> list:
    """MLflow metrics of the finite values."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    return [
        Metric(key, float(value), stamp, 0)
        for key, value in values.items()
        if value is not None and math.isfinite(float(value))
    ]
