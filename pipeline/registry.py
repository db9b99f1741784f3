"""The MLflow model registry: the fitted models that score customers."""

from __future__ import annotations

import json
import os
import tempfile
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
    time units) and optional ``params`` overriding :class:`models.clv_predict.PredictionSettings`,
    plus ``max_draws`` (use at most that many posterior draws, evenly thinned; 0 = all).
    """

    def load_context(self, context) -> None:
        import xarray as xr

        self.transactions = xr.load_datatree(context.artifacts["transactions"])
        self.spend = xr.load_datatree(context.artifacts["spend"])
        self.meta = json.loads(Path(context.artifacts["meta"]).read_text())

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        from models import gamma_gamma
        from models.clv import TRANSACTION_MODELS, posterior_draws
        from models.clv_predict import PredictionSettings, predict_customers

        params = dict(params or {})
        max_draws = int(params.pop("max_draws", 0) or 0) or None
        model = self.meta["model"]
        tx = posterior_draws(self.transactions, TRANSACTION_MODELS[model].PARAM_NAMES, max_draws)
        spend = posterior_draws(self.spend, gamma_gamma.PARAM_NAMES, max_draws)
        settings = PredictionSettings(**params)
        return predict_customers(tx, spend, model_input, model=model, settings=settings)

    def point(self) -> dict[str, float]:
        """The purchase model's MAP point (the posterior mean for models registered without it).

        The churn model's inputs include what the purchase model expects at this point.
        """
        from models.clv import TRANSACTION_MODELS, posterior_draws

        names = TRANSACTION_MODELS[self.meta["model"]].PARAM_NAMES
        if "map_point" in self.meta:
            return {k: float(self.meta["map_point"][k]) for k in names}
        draws = posterior_draws(self.transactions, names)
        return {k: float(v.mean()) for k, v in draws.items()}


def register_clv(fit, fit_dir: Path, example: pd.DataFrame, tracking: dict[str, Any]) -> str | None:
    """Log the posteriors in ``fit_dir`` as an MLflow model and register it; returns its version.

    ``fit`` is the :class:`models.clv.ClvFit` saved there; ``example`` a few customer summaries
    that document the model's input and output schema (and its prediction parameters).
    """
    from dataclasses import asdict

    from models.clv_predict import PredictionSettings, predict_customers

    if not tracking.get("enabled", True):
        return None
    from models.clv import TRANSACTION_MODELS

    example = example[["frequency", "recency", "T", "monetary_value"]]
    output = predict_customers(fit.transaction_draws(), fit.spend_draws(), example, fit.model)
    params = asdict(PredictionSettings()) | {"max_draws": 0}
    signature = mlflow.models.infer_signature(example, output, params=params)
    names = TRANSACTION_MODELS[fit.model].PARAM_NAMES
    point = {k: fit.map_point[f"transactions.{k}"] for k in names}
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "meta.json"
        meta.write_text(json.dumps({"model": fit.model, "map_point": point}))
        info = mlflow.pyfunc.log_model(
            name="clv_model",
            python_model=ClvModel(),
            artifacts={
                "transactions": str(fit_dir / "transactions.nc"),
                "spend": str(fit_dir / "spend.nc"),
                "meta": str(meta),
            },
            registered_model_name=tracking.get("clv_model_name", CLV_MODEL_NAME),
            signature=signature,
            pip_requirements=["cvm"],
        )
    return str(info.registered_model_version)


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """The calibrated churn classifier as an MLflow model: churn probability per customer row."""

    def load_context(self, context) -> None:
        from models.churn import from_artifacts

        meta = json.loads(Path(context.artifacts["meta"]).read_text())
        self.model = from_artifacts(Path(context.artifacts["model"]).read_text(), meta)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return pd.Series(self.model.predict(model_input), name="churn_probability")


def register_churn(model_dir: Path, tracking: dict[str, Any]) -> str | None:
    """Log the churn model in ``model_dir`` as an MLflow model, register it; returns its version."""
    if not tracking.get("enabled", True):
        return None
    info = mlflow.pyfunc.log_model(
        name="churn_model",
        python_model=ChurnPyfunc(),
        artifacts={"model": str(model_dir / "model.txt"), "meta": str(model_dir / "meta.json")},
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


def version_tags(client: mlflow.MlflowClient, name: str, version: str) -> dict[str, str]:
    return dict(client.get_model_version(name, str(version)).tags)


def tag_version(client: mlflow.MlflowClient, name: str, version: str, tags: dict) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


class ScoringModels:
    """A CLV model and a churn model loaded from the registry, with their versions.

    ``clv`` and ``churn`` are the MLflow pyfunc models; ``clv_model`` is the :class:`ClvModel`
    behind ``clv`` (its purchase model's point feeds the churn model's inputs).
    """

    def __init__(self, names: dict[str, str], versions: dict[str, str]) -> None:
        self.names = dict(names)
        self.versions = {kind: str(versions[kind]) for kind in KINDS}
        self.clv = mlflow.pyfunc.load_model(f"models:/{names['clv']}/{self.versions['clv']}")
        self.churn = mlflow.pyfunc.load_model(f"models:/{names['churn']}/{self.versions['churn']}")
        self.clv_model: ClvModel = self.clv.unwrap_python_model()

    @property
    def model(self) -> str:
        """The purchase model: ``bgnbd`` or ``pareto_nbd``."""
        return self.clv_model.meta["model"]

    def labels(self) -> dict[str, str]:
        """Provenance columns of the scored table: ``cvm-clv/3`` and ``cvm-churn/3``."""
        return {f"{kind}_model": f"{self.names[kind]}/{self.versions[kind]}" for kind in KINDS}

    def clv_params(self) -> set[str]:
        """The prediction parameters the CLV model's signature accepts."""
        schema = self.clv.metadata.get_params_schema()
        return {p.name for p in schema.params} if schema is not None else set()
