"""MLflow: one run per stage in the configured tracking store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def stage_run(tracking: dict[str, Any], stage: str, params: dict[str, Any]) -> Iterator[Any]:
    """Open an MLflow run for ``stage`` and log ``params``; yields the run, ``None`` if disabled."""
    if not tracking.get("enabled", True):
        yield None
        return
    import mlflow

    mlflow.set_tracking_uri(tracking["uri"])
    mlflow.set_registry_uri(tracking.get("registry_uri") or tracking["uri"])
    mlflow.set_experiment(tracking["experiment"])
    with mlflow.start_run(run_name=stage, tags={"cvm.stage": stage}) as run:
        mlflow.log_params({k: str(v)[:6000] for k, v in flatten(params).items()})
        yield run


def log_metrics(metrics: dict[str, float]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


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
