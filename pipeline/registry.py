"""The MLflow model registry: the fitted models that score customers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from pipeline import churn_store, clv_store, logs, serving
from pipeline.errors import CvmError, first_line
from pipeline.serving import ChurnPyfunc, ClvModel, ScorerPyfunc

# versions registered before the pyfuncs moved to pipeline.serving unpickle these names from here
__all__ = ["ChurnPyfunc", "ClvModel", "ScorerPyfunc"]

# no progress bars in the logs of scheduled runs (model downloads, artifact copies)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

CLV_MODEL_NAME = "cvm-clv"
CHURN_MODEL_NAME = "cvm-churn"
SCORER_MODEL_NAME = "cvm-scorer"
CHAMPION = "champion"
CHALLENGER = "challenger"
# what the registered models import when they load and predict (their code travels with them)
REQUIREMENTS = (
    "mlflow",
    "numpy",
    "pandas",
    "scipy",
    "pyarrow",
    "xarray",
    "netcdf4",
    "arviz",
    "pymc",
    "pytensor",
    "nutpie",
    "numba",
    "lightgbm",
    "scikit-learn",
)


def _code(directory: Path) -> list[str]:
    """The code logged with each model, staged in ``directory``: the ``models`` package and a
    ``pipeline`` package holding :mod:`pipeline.serving` only."""
    import models

    package = directory / "pipeline"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""cvm: the pyfuncs of its registered models."""\n')
    shutil.copy2(serving.__file__, package / "serving.py")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(Path(models.__file__).parent, directory / "models", ignore=ignore)
    return [str(directory / "models"), str(package)]


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def signature(
    example: pd.DataFrame, output, params: dict | None = None, optional=(), checked=False
):
    """The signature inferred from ``example`` and its ``output``, every numeric input column
    typed ``Any`` (integers and floats both pass MLflow's checks; the pyfunc casts them to the
    dtypes of ``example``); ``optional`` names optional datetime columns. With ``checked`` the
    pyfunc checks the columns itself and MLflow requires none: MLflow's own message on a
    missing column quotes the request's rows, customer data included."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

    inferred = mlflow.models.infer_signature(example, output, params=params)
    columns = [
        ColSpec(
            AnyType() if example[spec.name].dtype.kind in "iuf" else spec.type,
            spec.name,
            required=not checked,
        )
        for spec in inferred.inputs.inputs
    ]
    columns += [ColSpec(DataType.datetime, name, required=False) for name in optional]
    return ModelSignature(Schema(columns), inferred.outputs, inferred.params)


def numeric_dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items() if dtype.kind in "iuf"}


def _log(name: str, python_model, artifacts: dict[str, str], signature, registered: str):
    """Log a pyfunc with its code and register it; returns its version."""
    with tempfile.TemporaryDirectory() as tmp, logs.printed_as_records("mlflow.registry"):
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts=artifacts,
            code_paths=_code(Path(tmp) / "code"),
            registered_model_name=registered,
            signature=signature,
            pip_requirements=_requirements(),
        )
    return str(info.registered_model_version)


def register_clv(
    model_dir: Path,
    example: pd.DataFrame,
    tracking: dict[str, Any],
    tags: dict | None = None,
    prediction=None,
    max_draws: int | None = None,
) -> str | None:
    """Log the CLV model saved in ``model_dir`` as an MLflow model predicting with
    ``prediction`` (:class:`models.btyd.predict.PredictionSettings`, the pipeline's) from at
    most ``max_draws`` draws, register it with ``tags`` (and ``cvm.model_id``, the content id of
    its files); returns its version. ``example`` holds a few customer summaries that document
    the model's input and output schema."""
    from models.btyd.predict import PredictionSettings
    from pipeline import io

    if not tracking.get("enabled", True):
        return None
    prediction = prediction or PredictionSettings()
    fitted = clv_store.load(model_dir)
    example = example[list(fitted.input_columns)]
    output = fitted.predict(example, prediction, max_draws)
    params = asdict(prediction) | {"max_draws": max_draws or 0}
    name = model_names(tracking)["clv"]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "prediction.json"
        settings.write_text(json.dumps({"prediction": asdict(prediction), "max_draws": max_draws}))
        version = _log(
            "clv_model",
            ClvModel(),
            {"model": str(model_dir), "settings": str(settings)},
            signature(example, output, params),
            name,
        )
    tag_version(mlflow.MlflowClient(), name, version, {"cvm.model_id": io.content_id(model_dir)})
    tag_version(mlflow.MlflowClient(), name, version, tags or {})
    return version


def register_churn(model_dir: Path, example: pd.DataFrame, tracking: dict[str, Any]) -> str | None:
    """Log the churn model in ``model_dir`` as an MLflow model, its signature from ``example``
    (rows of its features, the CLV-derived ones included); register it, return its version."""
    if not tracking.get("enabled", True):
        return None
    model = churn_store.load(model_dir)
    example = example[list(model.inputs)].head(10)
    output = pd.Series(model.predict(example), name="churn_probability")
    return _log(
        "churn_model",
        ChurnPyfunc(),
        {"model": str(model_dir)},
        signature(example, output),
        model_names(tracking)["churn"],
    )


def register_scorer(
    clv_dir: Path,
    churn_dir: Path,
    features: pd.DataFrame,
    scoring,
    as_of: date,
    provenance: dict[str, str],
    tracking: dict[str, Any],
) -> str | None:
    """Log the scorer (:class:`pipeline.serving.ScorerPyfunc`) of the CLV model in ``clv_dir``
    and the churn model in ``churn_dir`` with ``scoring`` (the pipeline's
    :class:`models.scoring.ScoringSettings`), the as-of date ``as_of`` and the model labels
    ``provenance``; register it and return its version. ``features`` is the scoring feature
    table: its customers are the population tiers and RFM scores rank against, its first rows
    document the signature."""
    from models.columns import MARGIN
    from models.scoring import SUMMARY_COLUMNS, population, score_customers

    if not tracking.get("enabled", True):
        return None
    clv, churn = clv_store.load(clv_dir), churn_store.load(churn_dir)
    table = score_customers(features, clv, churn, scoring, provenance, as_of)
    tiers = scoring.tiers
    reference = population(table, scoring.value_per_purchase, tiers.by, tiers.weights)
    inputs = [c for c in features.columns if c in (*SUMMARY_COLUMNS, MARGIN) or c in churn.features]
    example = features[inputs].head(10)
    output = score_customers(example, clv, churn, scoring, provenance, as_of, reference=reference)
    spec = {
        "settings": scoring.to_dict(),
        "as_of": as_of.isoformat(),
        "provenance": provenance,
        "dtypes": numeric_dtypes(features[inputs]),
        "inputs": inputs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        saved = {
            "scorer": Path(tmp) / "scorer.json",
            "population": Path(tmp) / "population.parquet",
        }
        saved["scorer"].write_text(json.dumps(spec, indent=2))
        reference.to_parquet(saved["population"], index=False)
        artifacts = {"clv": clv_dir, "churn": churn_dir, **saved}
        return _log(
            "scorer_model",
            ScorerPyfunc(),
            {key: str(path) for key, path in artifacts.items()},
            signature(
                example, output, {"as_of_date": as_of.isoformat()}, ["as_of_date"], checked=True
            ),
            model_names(tracking)["scorer"],
        )


def latest_version(client: mlflow.MlflowClient, name: str, tags: dict[str, str]) -> str | None:
    """The newest version of model ``name`` carrying ``tags``; ``None`` when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return None
    found = [int(v.version) for v in versions if tags.items() <= dict(v.tags).items()]
    return str(max(found)) if found else None


# --------------------------------------------------------------------------------------------
# Champion and challenger: registry aliases
# --------------------------------------------------------------------------------------------

KINDS = ("clv", "churn")  # the pair that scores: promoted together
SCORER = "scorer"  # fit from the pair, registered with it; its aliases move with the pair's


def model_names(tracking: dict[str, Any]) -> dict[str, str]:
    """The registered model name of each kind:
    ``{"clv": "cvm-clv", "churn": "cvm-churn", "scorer": "cvm-scorer"}``."""
    return {
        "clv": tracking.get("clv_model_name", CLV_MODEL_NAME),
        "churn": tracking.get("churn_model_name", CHURN_MODEL_NAME),
        SCORER: tracking.get("scorer_model_name", SCORER_MODEL_NAME),
    }


def scorer_pair(names: dict[str, str], versions: dict[str, str | None]) -> str:
    """The ``cvm.paired_with`` tag of a scorer fit from these versions of the pair."""
    return ",".join(f"{names[kind]}/{versions[kind]}" for kind in KINDS)


def connect(tracking: dict[str, Any]) -> mlflow.MlflowClient:
    """A client of the configured tracking store and registry (also set for ``models:/`` URIs)."""
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

    scorer = versions.get(SCORER)
    versions = {kind: versions.get(kind) for kind in KINDS}
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
    if scorer is not None:  # a pair promoted before the scorer existed has none
        _check_scorer(client, names, versions, scorer)
    return tags


def _check_scorer(client, names: dict[str, str], versions: dict, scorer: str) -> None:

    paired = version_tags(client, names[SCORER], scorer).get("cvm.paired_with")
    expected = scorer_pair(names, versions)
    if paired is not None and paired != expected:
        raise CvmError(
            f"split champion pair: {names[SCORER]}/{scorer} (alias '{CHAMPION}') was fit from "
            f"{paired}, but the champions are {expected}; point the three '{CHAMPION}' aliases "
            "at versions of one retraining run"
        )


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
        loaded = {kind: _load(names[kind], self.versions[kind]) for kind in KINDS}
        self.clv = loaded["clv"].unwrap_python_model().fitted
        self.churn = loaded["churn"].unwrap_python_model().model

    def labels(self) -> dict[str, str]:
        """Provenance columns of the scored table: ``cvm-clv/3`` and ``cvm-churn/3``."""
        return {f"{kind}_model": f"{self.names[kind]}/{self.versions[kind]}" for kind in KINDS}


def _load(name: str, version: str):
    """The pyfunc of a registered version; a :class:`CvmError` naming it when its files are
    gone or damaged (an artifact store cleaned by hand, a copy without its ``mlruns``)."""

    try:
        return mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    except (mlflow.exceptions.MlflowException, OSError, EOFError, ValueError) as err:
        raise CvmError(
            f"{name} version {version}: its registered files cannot be loaded "
            f"({first_line(err)}); restore "
            "the artifact store, or register new models with `cvm retrain`"
        ) from None
