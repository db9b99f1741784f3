"""The registered models as MLflow pyfuncs: what `cvm score`, `cvm retrain` and downstream teams
load from the registry.

This module imports nothing of cvm but :mod:`models`, at load time too: each model is logged
with it and the ``models`` package as its code (see :mod:`pipeline.registry`), so it loads and
predicts where cvm is not installed. Inputs are cast to the dtypes the model was fit on (counts
sent as floats become integers, a column that is all missing in a batch becomes a float column).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

CLV_INPUT = {
    "frequency": "int64",
    "recency": "float64",
    "T": "float64",
    "monetary_value": "float64",
}


def coerce(frame: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    """``frame`` with the columns of ``dtypes`` cast to them: integers from whole floats, floats
    from integers or from a column of missing values (a batch of one-time buyers has no gaps
    between purchases); a ``ValueError`` naming the column otherwise."""
    out = frame.reset_index(drop=True).copy()
    for name, dtype in dtypes.items():
        if name not in out.columns or np.dtype(dtype).kind not in "iuf":
            continue
        try:
            values = pd.to_numeric(out[name].astype(object), errors="raise").astype("float64")
        except (TypeError, ValueError):
            raise ValueError(f"column {name!r} must be numeric ({dtype})") from None
        if np.dtype(dtype).kind in "iu":
            whole = values.notna() & (values == np.round(values))
            if not whole.all():
                raise ValueError(f"column {name!r} must hold whole numbers, without missing values")
            values = values.astype(dtype)
        out[name] = values
    return out


class ClvModel(mlflow.pyfunc.PythonModel):
    """A fitted CLV pair: every customer's predictions (p_alive, expected purchases and spend,
    CLV, with their intervals) from ``frequency``, ``recency``, ``T``, ``monetary_value`` in
    model time units (and ``cutoff``, ``tenure_days``, ``recency_days`` for a model on a
    seasonal clock: ``FittedClv.input_columns``). ``params`` override the prediction settings
    it was registered with (the pipeline's ``clv.prediction``), ``max_draws`` the posterior
    draws used (0 = all)."""

    def load_context(self, context) -> None:
        from models.btyd.clv import FittedClv
        from models.btyd.predict import PredictionSettings

        self.fitted = FittedClv.load(Path(context.artifacts["model"]))
        self.prediction, self.max_draws = PredictionSettings(), None
        if "settings" in context.artifacts:  # registered before the settings were saved: none
            saved = json.loads(Path(context.artifacts["settings"]).read_text())
            self.prediction = PredictionSettings(**saved["prediction"])
            self.max_draws = saved["max_draws"]

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        params = dict(params or {})
        max_draws = params.pop("max_draws", self.max_draws)
        settings = replace(self.prediction, **params)
        customers = coerce(model_input, CLV_INPUT)
        return self.fitted.predict(customers, settings, int(max_draws or 0) or None)


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """The calibrated churn classifier: ``churn_probability`` per row of its features, the
    CLV-derived ones (``btyd_*``, ``recency_share``) included. The scorer (``cvm-scorer``)
    computes those itself from the customer features. ``model`` is the
    :class:`models.churn.classifier.ChurnModel` behind it."""

    def load_context(self, context) -> None:
        from models.churn.classifier import ChurnModel

        self.model = ChurnModel.load(Path(context.artifacts["model"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        numeric = {c: "float64" for c in self.model.features if c not in self.model.categories}
        frame = coerce(model_input, numeric)
        return pd.Series(self.model.predict(frame), name="churn_probability")


class ScorerPyfunc(mlflow.pyfunc.PythonModel):
    """Customer features → rows of the scored customer table, every column, as
    :func:`models.scoring.score_customers` writes them (the churn model's CLV-derived features
    computed inside), with the settings, models and population it was registered with.

    Tiers and RFM scores place each customer in the population the models were fit for, so a
    batch of any size gets the labels of the full table. The as-of date is the optional column
    ``as_of_date`` (one per row), else the param ``as_of_date``, else the date the models were
    fit for.
    """

    def load_context(self, context) -> None:
        from models.btyd.clv import FittedClv
        from models.churn.classifier import ChurnModel
        from models.scoring import ScoringSettings

        spec = json.loads(Path(context.artifacts["scorer"]).read_text())
        self.settings = ScoringSettings.from_dict(spec["settings"])
        self.as_of = date.fromisoformat(spec["as_of"])
        self.provenance = dict(spec["provenance"])
        self.dtypes = dict(spec["dtypes"])
        self.inputs = list(spec.get("inputs", ["customer_id", *self.dtypes]))
        self.clv = FittedClv.load(Path(context.artifacts["clv"])).thinned(self.settings.max_draws)
        self.churn = ChurnModel.load(Path(context.artifacts["churn"]))
        self.reference = pd.read_parquet(context.artifacts["population"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        from models.scoring import score_customers

        missing = [c for c in self.inputs if c not in model_input.columns]
        if missing:  # named without quoting the request: its rows are customer data
            raise ValueError(
                f"the request lacks the column(s) {', '.join(missing)}; expected the scoring "
                f"feature table's {len(self.inputs)} columns ({', '.join(self.inputs)})"
            )
        features = coerce(model_input, self.dtypes)
        days = self._days(features, (params or {}).get("as_of_date"))
        parts = [
            score_customers(
                features[days == day].reset_index(drop=True),
                self.clv,
                self.churn,
                self.settings,
                self.provenance,
                day.date(),
                reference=self.reference,
            )
            for day in days.drop_duplicates()
        ]
        if len(parts) == 1:
            return parts[0]
        table = pd.concat(parts, ignore_index=True)
        order = "clv" if table["clv"].notna().any() else "expected_purchases"
        return table.sort_values(order, ascending=False, kind="stable").reset_index(drop=True)

    def _days(self, features: pd.DataFrame, param: str | None) -> pd.Series:
        """The as-of date of each row: its ``as_of_date``, else ``param``, else the fit date."""
        default = pd.Timestamp(param or self.as_of).normalize()
        # MLflow fills in the param's default, the fit date: said, as it may not be meant
        if "as_of_date" not in features.columns and param in (None, self.as_of.isoformat()):
            logging.getLogger("cvm.scorer").warning(
                "no as_of_date column or param: the rows are scored as of %s, the date the "
                "models were fit for",
                self.as_of,
            )
        if "as_of_date" not in features.columns:
            return pd.Series(default, index=features.index)
        return pd.to_datetime(features["as_of_date"]).dt.normalize().fillna(default)
