"""MLflow: one run per stage in the configured tracking store."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import lock, processes
from pipeline.credentials import redact

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists become their text, passwords in URLs masked
    (these are what MLflow records as parameters)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = redact(value) if isinstance(value, str) else value
    return flat


@dataclass(frozen=True)
class Tracker:
    """Where a stage records its run: the tracking config, and the parent run and tags of the
    caller (``cvm retrain`` makes each stage run a child of its own run)."""

    config: dict[str, Any]
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.config.get("enabled", True))

    @property
    def register(self) -> bool:
        """Whether the stages register the models they fit (``tracking.register``)."""
        return self.enabled and bool(self.config.get("register", False))

    def child(self, parent_run_id: str, register: bool = False, **tags: str) -> Tracker:
        """A tracker whose runs are children of ``parent_run_id``, carrying ``tags``;
        ``register`` makes its stages register their models whatever the config says."""
        config = self.config | {"register": True} if register else self.config
        return Tracker(config, parent_run_id, dict(tags))

    @contextmanager
    def run(self, stage: str, params: dict[str, Any]) -> Iterator[Any]:
        """Open an MLflow run for ``stage`` and log ``params``; yields it (``None`` if disabled)."""
        if not self.enabled:
            yield None
            return
        import mlflow

        connect(self.config)
        experiment = experiment_id(self.config["experiment"])
        close_orphans(mlflow.MlflowClient(), experiment)
        tags = {"cvm.stage": stage, **owner_tags(), **self.tags}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        with mlflow.start_run(run_name=stage, tags=tags) as run:
            mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
            try:
                yield run
            except KeyboardInterrupt:  # stopped (Ctrl-C, SIGTERM): not a failure of the stage
                mlflow.end_run("KILLED")
                raise


KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI opens on its runs


def experiment_id(name: str) -> str:
    """The id of the experiment ``name`` (created if need be), made the active one and marked as
    one of model development, so that MLflow's UI opens it on its runs, not on GenAI traces."""
    import mlflow

    experiment = mlflow.set_experiment(name)
    for key, value in KIND.items():
        if key not in experiment.tags:
            mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def execution_tags() -> dict[str, str]:
    """The git revision a run comes from and, under ``dvc exp run``, the DVC experiment."""
    tags = {"mlflow.source.git.commit": git_revision()}
    if name := os.environ.get("DVC_EXP_NAME"):
        tags["cvm.dvc_experiment"] = name
    return tags


def git_revision() -> str:
    """The commit checked out (an experiment's baseline under ``dvc exp run``), or ``unknown``."""
    import subprocess

    if baseline := os.environ.get("DVC_EXP_BASELINE_REV"):
        return baseline
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


_EXECUTION: ContextVar[str | None] = ContextVar("cvm_execution", default=None)


@contextmanager
def one_execution() -> Iterator[None]:
    """The stages run inside are one execution of their own (`cvm run`): its parent run is
    keyed by a fresh id, so no other process adopts it. Outside, the stages of an execution are
    separate processes (``dvc repro``) and find their parent by the config."""
    token = _EXECUTION.set(uuid.uuid4().hex[:16])
    try:
        yield
    finally:
        _EXECUTION.reset(token)


def pipeline_tracker(config: dict[str, Any], params: dict[str, Any]) -> Tracker:
    """The tracker of a pipeline stage: its runs are children of the run of this pipeline
    execution, which holds the whole config (``params``) as parameters, logged once.

    The stages of one execution run as separate processes (``dvc repro`` starts each), so they
    find their parent by a key: the config, the git revision and the DVC experiment; under
    :func:`one_execution` (`cvm run`), the execution's own id. The parent stays open until the
    last stage (``report``) closes it with the headline metrics.
    """
    tracker = Tracker(config)
    if not tracker.enabled:
        return tracker
    import hashlib
    import json

    import mlflow

    tags = execution_tags()
    own = _EXECUTION.get()
    key = hashlib.sha256(json.dumps([params, tags], sort_keys=True, default=str).encode())
    tags["cvm.execution"] = own or key.hexdigest()[:16]
    connect(config)
    client = mlflow.MlflowClient()
    experiment = experiment_id(config["experiment"])
    found = client.search_runs(
        [experiment],
        f"tags.`cvm.execution` = '{tags['cvm.execution']}' and attributes.status = 'RUNNING'",
        max_results=1,
    )
    if found:
        return tracker.child(found[0].info.run_id, **tags)
    # distinct names: the DVC experiment (or pipeline), the log and the calibration cutoff
    log = Path(str(params.get("data", {}).get("path", ""))).stem
    cutoff = params.get("data", {}).get("calibration_end")
    name = " ".join(str(p) for p in (tags.get("cvm.dvc_experiment", "pipeline"), log, cutoff) if p)
    # a parent of this process alone names it, so that a later run closes it if it dies
    owner = owner_tags() if own else {}
    parent = client.create_run(
        experiment, run_name=name, tags={"cvm.stage": "pipeline", **tags, **owner}
    )
    flat = [mlflow.entities.Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
    for start in range(0, len(flat), 100):  # MLflow takes at most 100 parameters a call
        client.log_batch(parent.info.run_id, params=flat[start : start + 100])
    return tracker.child(parent.info.run_id, **tags)


def finish_pipeline(tracker: Tracker, metrics: dict[str, float]) -> None:
    """Log the headline ``metrics`` on the execution's parent run and close it."""
    if not tracker.enabled or not tracker.parent_run_id:
        return
    import mlflow

    connect(tracker.config)
    client = mlflow.MlflowClient()
    for key, value in metrics.items():
        if value is not None:
            client.log_metric(tracker.parent_run_id, key, float(value))
    client.set_terminated(tracker.parent_run_id, "FINISHED")


_CONNECTED: set[str] = set()  # the tracking stores this process connected to


def connect(config: dict[str, Any]) -> None:
    import mlflow

    from pipeline.relocate import relocate

    registry = config.get("registry_uri") or config["uri"]
    for uri in {config["uri"], registry}:
        relocate(uri)  # a moved or copied project: its own runs, not the original's
    mlflow.set_tracking_uri(config["uri"])
    mlflow.set_registry_uri(registry)
    _CONNECTED.add(config["uri"])


def close_own_runs() -> list[str]:
    """Mark ``KILLED`` the runs this process opened and left ``RUNNING`` (a command stopped by
    Ctrl-C or SIGTERM: its execution's parent run, say), in the stores it connected to; returns
    their ids."""
    import mlflow

    me, closed = processes.identity(), []
    for uri in sorted(_CONNECTED):
        client = mlflow.MlflowClient(uri)
        ids = [e.experiment_id for e in client.search_experiments()]
        closed += _kill_running(client, ids, lambda tags: tags.get("cvm.process") == me)
    return closed


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs and the project lock it holds: a later command closes
    the run once that process ended (see :func:`close_orphans`)."""
    tags = {
        "cvm.pid": str(os.getpid()),
        "cvm.process": processes.identity(),
        "cvm.host": socket.gethostname(),
    }
    return tags | ({"cvm.lock": lock.held()} if lock.held() else {})


def close_orphans(client, experiment_id: str) -> list[str]:
    """Mark ``KILLED`` the runs left ``RUNNING`` by processes that ended without closing them
    (killed); returns their ids. A run made under the project lock ended when this process
    holds the lock under another token, whatever host made it; any other run ended when its
    process, on this host, no longer runs."""
    return _kill_running(client, [experiment_id], _ended)


def _kill_running(client, experiment_ids: list[str], which) -> list[str]:
    """Mark ``KILLED`` the ``RUNNING`` runs of the experiments whose tags ``which`` accepts;
    their ids."""
    from mlflow.entities import ViewType

    if not experiment_ids:
        return []
    running = client.search_runs(
        experiment_ids, "attributes.status = 'RUNNING'", run_view_type=ViewType.ACTIVE_ONLY
    )
    closed = [found.info.run_id for found in running if which(found.data.tags)]
    for run_id in closed:
        client.set_terminated(run_id, status="KILLED")
    return closed


def _ended(tags: dict[str, str]) -> bool:
    if tags.get("cvm.lock") and lock.held():
        return tags["cvm.lock"] != lock.held()
    if tags.get("cvm.host") != socket.gethostname() or "cvm.pid" not in tags:
        return False  # no owner, or another host's: cannot tell
    return not processes.running(tags.get("cvm.process", tags["cvm.pid"]))


def log_metrics(metrics: dict[str, float]) -> None:
    import mlflow

    if mlflow.active_run() is not None:  # a figure without a value (None) is not logged
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})


def set_tags(tags: dict[str, str]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tags(tags)


def log_dict(obj: dict[str, Any], name: str) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_dict(obj, name)


def log_artifacts(directory, artifact_path: str) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_artifacts(str(directory), artifact_path)


def log_file(path, artifact_path: str | None = None) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_artifact(str(path), artifact_path)
