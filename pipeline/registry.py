"""The MLflow model registry: the fitted models that score customers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

# no progress bars in the logs of scheduled runs (model downloads, artifact copies)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CLV_MODEL_NAME = "cvm-clv"
CHURN_MODEL_NAME = "cvm-churn"
CHAMPION = "champion"
CHALLENGER = "challenger"


class ClvModel(mlflow.pyfunc.PythonModel):
    """A fitted CLV pair as an MLflow model: predicts every customer's CLV from its summary.

    ``predict`` takes a frame with ``frequency``, ``recency``, ``T``, ``monetary_value`` (model
    time units) and optional ``params`` overriding :class:`models.btyd.predict.PredictionSettings`,
    plus ``max_draws`` (use at most that many posterior draws, evenly thinned; 0 = all).
    ``fitted`` is the :class:`models.btyd.clv.FittedClv` behind it.
    """

    def load_context(self, context) -> None:
        from pipeline import clv_store

        self.fitted = clv_store.load(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        from models.btyd.predict import PredictionSettings

        params = dict(params or {})
        max_draws = int(params.pop("max_draws", 0) or 0) or None
        return self.fitted.predict(model_input, PredictionSettings(**params), max_draws)


def register_clv(
    model_dir: Path, example: pd.DataFrame, tracking: dict[str, Any], tags: dict | None = None
) -> str | None:
    """Log the CLV model saved in ``model_dir`` as an MLflow model and register it with
    ``tags``; returns its version. ``example`` holds a few customer summaries that document the
    model's input and output schema (and its prediction parameters)."""
    from dataclasses import asdict

    from models.btyd.predict import PredictionSettings
    from pipeline import clv_store

    if not tracking.get("enabled", True):
        return None
    example = example[["frequency", "recency", "T", "monetary_value"]]
    output = clv_store.load(model_dir).predict(example, PredictionSettings())
    params = asdict(PredictionSettings()) | {"max_draws": 0}
    signature = mlflow.models.infer_signature(example, output, params=params)
    info = mlflow.pyfunc.log_model(
        name="clv_model",
        python_model=ClvModel(),
        artifacts={"model": str(model_dir)},
        registered_model_name=tracking.get("clv_model_name", CLV_MODEL_NAME),
        signature=signature,
        pip_requirements=["cvm"],
    )
    version = str(info.registered_model_version)
    if tags:
        client = mlflow.MlflowClient()
        tag_version(client, tracking.get("clv_model_name", CLV_MODEL_NAME), version, tags)
    return version


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """The calibrated churn classifier as an MLflow model: churn probability per customer row.
    ``model`` is the :class:`models.churn.classifier.ChurnModel` behind it."""

    def load_context(self, context) -> None:
        from pipeline import churn_store

        self.model = churn_store.load(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return pd.Series(self.model.predict(model_input), name="churn_probability")


def register_churn(model_dir: Path, tracking: dict[str, Any]) -> str | None:
    """Log the churn model in ``model_dir`` as an MLflow model, register it; returns its version."""
    if not tracking.get("enabled", True):
        return None
    info = mlflow.pyfunc.log_model(
        name="churn_model",
        python_model=ChurnPyfunc(),
        artifacts={"model": str(model_dir)},
        registered_model_name=tracking.get("churn_model_name", CHURN_MODEL_NAME),
        pip_requirements=["cvm"],
    )
    return str(info.registered_model_version)


# --------------------------------------------------------------------------------------------
# Champion and challenger: registry aliases
# --------------------------------------------------------------------------------------------

KINDS = ("clv", "churn")


def model_names(tracking: dict[str, Any]) -> dict[str, str]:
    """The registered model name of each kind: ``{"clv": "cvm-clv", "churn": "cvm-churn"}``."""
    return {
        "clv": tracking.get("clv_model_name", CLV_MODEL_NAME),
        "churn": tracking.get("churn_model_name", CHURN_MODEL_NAME),
    }


def connect(tracking: dict[str, Any]) -> mlflow.MlflowClient:
    """A client of the configured tracking store and registry (also set for ``models:/`` URIs)."""
    from pipeline.errors import CvmError

    if not tracking.get("enabled", True):
        raise CvmError(
            "tracking.enabled is false, but the champion models live in the MLflow registry; "
            "enable tracking"
        )
    registry_uri = tracking.get("registry_uri") or tracking["uri"]
    mlflow.set_tracking_uri(tracking["uri"])
    mlflow.set_registry_uri(registry_uri)
    return mlflow.MlflowClient(tracking["uri"], registry_uri=registry_uri)


def aliases(client: mlflow.MlflowClient, name: str) -> dict[str, str]:
    """``{alias: version}`` of a registered model; empty when the model is not registered."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def move_alias(client: mlflow.MlflowClient, name: str, alias: str, version: str | None) -> None:
    """Point ``alias`` of model ``name`` at ``version``; ``None`` removes the alias."""
    if version is None:
        client.delete_registered_model_alias(name, alias)
    else:
        client.set_registered_model_alias(name, alias, str(version))


def check_champion_pair(
    client: mlflow.MlflowClient,
    names: dict[str, str],
    versions: dict[str, str | None],
    need_release: bool = True,
) -> dict[str, dict[str, str]]:
    """The tags of the champion versions, once they are checked to be a pair that
    ``cvm retrain`` registered together (``need_release``: with the release a retrain compares
    against); a :class:`CvmError` saying how to repair it otherwise."""
    from pipeline.errors import CvmError

    if not all(versions.values()):
        raise CvmError(
            f"only some models have a '{CHAMPION}' alias ({versions}); the CLV and churn models "
            "are promoted together: set both aliases or neither"
        )
    tags = {kind: version_tags(client, names[kind], versions[kind]) for kind in KINDS}
    for kind in KINDS if need_release else ():
        if "cvm.release_run_id" not in tags[kind]:
            raise CvmError(
                f"{names[kind]} version {versions[kind]} (alias '{CHAMPION}') was not registered "
                "by `cvm retrain`, so it has no evaluation pair to compare against; point the "
                "alias at a version from `cvm retrain`, or remove both champion aliases to start "
                "afresh"
            )
    expected = f"{names['churn']}/{versions['churn']}"
    paired = tags["clv"].get("cvm.paired_with")
    if (need_release or paired is not None) and paired != expected:
        raise CvmError(
            f"split champion pair: {names['clv']}/{versions['clv']} was registered with "
            f"{tags['clv'].get('cvm.paired_with')}, but the churn champion is {expected}; point "
            f"both '{CHAMPION}' aliases at versions of one retraining run"
        )
    return tags


def version_tags(client: mlflow.MlflowClient, name: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(name, str(version)).tags)


def tag_version(client: mlflow.MlflowClient, name: str, version: str, tags: dict) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


class ScoringModels:
    """A CLV model and a churn model loaded from the registry, with their versions:
    ``clv`` (a :class:`models.btyd.clv.FittedClv`) and ``churn`` (a churn model)."""

    def __init__(self, names: dict[str, str], versions: dict[str, str]) -> None:
        self.names = dict(names)
        self.versions = {kind: str(versions[kind]) for kind in KINDS}
        loaded = {
            kind: mlflow.pyfunc.load_model(f"models:/{names[kind]}/{self.versions[kind]}")
            for kind in KINDS
        }
        self.clv = loaded["clv"].unwrap_python_model().fitted
        self.churn = loaded["churn"].unwrap_python_model().model

    def labels(self) -> dict[str, str]:
        """Provenance columns of the scored table: ``cvm-clv/3`` and ``cvm-churn/3``."""
        return {f"{kind}_model": f"{self.names[kind]}/{self.versions[kind]}" for kind in KINDS}
