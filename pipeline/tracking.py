"""MLflow: one run per stage in the configured tracking store."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists become their text."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
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

        mlflow.set_tracking_uri(self.config["uri"])
        mlflow.set_registry_uri(self.config.get("registry_uri") or self.config["uri"])
        experiment = mlflow.set_experiment(self.config["experiment"])
        close_orphans(mlflow.MlflowClient(), experiment.experiment_id)
        tags = {"cvm.stage": stage, **owner_tags(), **self.tags}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        with mlflow.start_run(run_name=stage, tags=tags) as run:
            mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
            yield run


def owner_tags() -> dict[str, str]:
    """Tags naming the process that runs: a later run closes the run if that process died."""
    return {"cvm.pid": str(os.getpid()), "cvm.host": socket.gethostname()}


def close_orphans(client, experiment_id: str) -> list[str]:
    """Mark ``KILLED`` the runs left ``RUNNING`` by processes of this host that no longer run
    (killed with no chance to close them); returns their ids."""
    from mlflow.entities import ViewType

    from pipeline import outputs

    host = socket.gethostname()
    running = client.search_runs(
        [experiment_id],
        f"attributes.status = 'RUNNING' and tags.`cvm.host` = '{host}'",
        run_view_type=ViewType.ACTIVE_ONLY,
    )
    closed = []
    for found in running:
        pid = found.data.tags.get("cvm.pid", "")
        if pid.isdigit() and not outputs.process_alive(int(pid)):
            client.set_terminated(found.info.run_id, status="KILLED")
            closed.append(found.info.run_id)
    return closed


def log_metrics(metrics: dict[str, float]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


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
