"""The MLflow model registry: the fitted models that score customers."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

CLV_MODEL_NAME = "cvm-clv"


class ClvModel(mlflow.pyfunc.PythonModel):
    """A fitted CLV pair as an MLflow model: predicts every customer's CLV from its summary.

    ``predict`` takes a frame with ``frequency``, ``recency``, ``T``, ``monetary_value`` (model
    time units) and optional ``params`` overriding :class:`models.clv_predict.PredictionSettings`.
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

        model = self.meta["model"]
        tx = posterior_draws(self.transactions, TRANSACTION_MODELS[model].PARAM_NAMES)
        spend = posterior_draws(self.spend, gamma_gamma.PARAM_NAMES)
        settings = PredictionSettings(**(params or {}))
        return predict_customers(tx, spend, model_input, model=model, settings=settings)


def register_clv(fit, fit_dir: Path, example: pd.DataFrame, tracking: dict[str, Any]) -> str | None:
    """Log the posteriors in ``fit_dir`` as an MLflow model and register it; returns its version.

    ``fit`` is the :class:`models.clv.ClvFit` saved there; ``example`` a few customer summaries
    that document the model's input and output schema (and its prediction parameters).
    """
    from dataclasses import asdict

    from models.clv_predict import PredictionSettings, predict_customers

    if not tracking.get("enabled", True):
        return None
    example = example[["frequency", "recency", "T", "monetary_value"]]
    output = predict_customers(fit.transaction_draws(), fit.spend_draws(), example, fit.model)
    signature = mlflow.models.infer_signature(example, output, params=asdict(PredictionSettings()))
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "meta.json"
        meta.write_text(json.dumps({"model": fit.model}))
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


CHURN_MODEL_NAME = "cvm-churn"


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
