"""Loading the fitted models that earlier stages wrote under ``artifacts/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline import io
from pipeline.errors import CvmError


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise CvmError(f"{path}: not found; run the stage that produces it first")
    return json.loads(path.read_text())


def clv_draws(
    clv_dir: Path, fit: str, model: str, max_draws: int | None = None
) -> tuple[dict[str, np.ndarray], ...]:
    """Posterior draws (purchase model, Gamma-Gamma) of the ``calibration`` or ``scoring`` fit.

    Paired draw by draw; with ``max_draws`` thinned evenly to at most that many.
    """
    from models import gamma_gamma
    from models.clv import TRANSACTION_MODELS, posterior_draws

    tx = posterior_draws(
        io.read_netcdf(clv_dir / fit / "transactions.nc"),
        TRANSACTION_MODELS[model].PARAM_NAMES,
        max_draws,
    )
    spend = posterior_draws(
        io.read_netcdf(clv_dir / fit / "spend.nc"), gamma_gamma.PARAM_NAMES, max_draws
    )
    return tx, spend


def clv_map(clv_dir: Path, fit: str, model: str) -> dict[str, float]:
    """The MAP point of the purchase model of a fit."""
    from models.clv import TRANSACTION_MODELS

    report = read_json(clv_dir / "fit_report.json")
    if report.get("model") != model:
        raise CvmError(
            f"{clv_dir}: the fitted CLV model is {report.get('model')!r} but clv.model is "
            f"{model!r}; run fit_clv again"
        )
    point = report[fit]["map"]
    return {k: point[f"transactions.{k}"] for k in TRANSACTION_MODELS[model].PARAM_NAMES}


def churn_model(churn_dir: Path, fit: str):
    """The churn classifier of a fit."""
    from models.churn import from_artifacts

    meta = read_json(churn_dir / fit / "meta.json")
    return from_artifacts((churn_dir / fit / "model.txt").read_text(), meta)
