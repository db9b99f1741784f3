"""Compose the Hydra config in ``conf/`` into ``params.yaml``; turn its sections into settings."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from features.spec import ColumnMapping, FeatureSpec, IngestRules
from pipeline import progress
from pipeline.errors import CvmError

CONF_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")
DAYS_PER_MONTH = 365.25 / 12


def compose(overrides: list[str] | None = None, conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The config composed by Hydra from ``conf_dir`` with ``overrides`` (``key=value``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides or []))
    except HydraException as err:
        raise CvmError(f"{conf_dir}: cannot compose the config: {err}") from None
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def write_params(cfg: dict[str, Any], path: Path = PARAMS_FILE) -> None:
    """Write ``params.yaml`` as DVC reads it."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def load_params(path: Path = PARAMS_FILE) -> DictConfig:
    """Load ``params.yaml``; a missing key then fails with its dotted name."""
    if not path.is_file():
        raise CvmError(f"{path}: not found; run `cvm params` to compose it from conf/")
    cfg = OmegaConf.create(yaml.safe_load(path.read_text()))
    OmegaConf.set_struct(cfg, True)
    return cfg


def get(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` for a dotted key, or a :class:`CvmError` naming the missing key."""
    value = OmegaConf.select(cfg, key, throw_on_missing=False, default=_MISSING)
    if value is _MISSING:
        raise CvmError(f"params.yaml: missing config key {key!r}")
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


_MISSING = object()


def as_date(value: Any, key: str) -> date | None:
    """Parse an ISO date config value (``None`` stays ``None``)."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CvmError(f"config key {key!r} is {value!r}; expected a date YYYY-MM-DD") from None


def _build(cls: type, values: dict[str, Any], key: str) -> Any:
    try:
        return cls(**values)
    except TypeError as err:
        allowed = ", ".join(cls.__dataclass_fields__)
        raise CvmError(f"config key {key!r}: {err}; allowed keys are {allowed}") from None
    except ValueError as err:
        raise CvmError(f"config: {err}") from None


def column_mapping(cfg: DictConfig) -> ColumnMapping:
    return _build(ColumnMapping, get(cfg, "data.mapping"), "data.mapping")


def ingest_rules(cfg: DictConfig) -> IngestRules:
    rules = dict(get(cfg, "data.rules"))
    for key in ("start", "end"):
        rules[key] = as_date(rules.get(key), f"data.rules.{key}")
    return _build(IngestRules, rules, "data.rules")


def feature_spec(cfg: DictConfig) -> FeatureSpec:
    values = dict(get(cfg, "features"))
    if "windows_days" in values:
        values["windows_days"] = tuple(values["windows_days"])
    return _build(FeatureSpec, values, "features")


def clv_settings(cfg: DictConfig):
    """``clv`` section → :class:`models.clv.ClvSettings` (seed from the top-level ``seed``)."""
    from models.clv import ClvSettings, ConvergenceSettings, SamplerSettings
    from models.priors import Priors

    clv = get(cfg, "clv")
    return _build(
        ClvSettings,
        {
            "model": clv["model"],
            "method": clv["method"],
            "priors": _build(Priors, clv["priors"], "clv.priors"),
            "sampler": _build(
                SamplerSettings,
                {**clv["sampler"], "progressbar": progress.interactive()},
                "clv.sampler",
            ),
            "convergence": _build(ConvergenceSettings, clv["convergence"], "clv.convergence"),
            "seed": get(cfg, "seed"),
        },
        "clv",
    )


def prediction_settings(cfg: DictConfig, **override: float):
    """``clv.prediction`` (days, months, annual rate) → PredictionSettings in model units."""
    from models.clv_predict import PredictionSettings

    pred = get(cfg, "clv.prediction")
    unit_days = feature_spec(cfg).unit_days
    values = {
        "horizon": pred["horizon_days"] / unit_days,
        "clv_periods": pred["clv_months"],
        "time_units_per_period": DAYS_PER_MONTH / unit_days,
        "discount_rate": (1 + pred["annual_discount_rate"]) ** (1 / 12) - 1,
        "margin": pred["margin"],
        "interval": pred["interval"],
        "chunk_size": pred["chunk_size"],
    }
    return _build(PredictionSettings, values | override, "clv.prediction")


def churn_settings(cfg: DictConfig):
    """``churn`` section → :class:`models.churn.ChurnSettings`."""
    from models.churn import ChurnSettings

    try:
        return ChurnSettings.from_mapping(get(cfg, "churn"))
    except ValueError as err:
        raise CvmError(f"config: {err}") from None


def tier_settings(cfg: DictConfig):
    """``tiers`` section → (:class:`TierSettings`, :class:`LifecycleRules`)."""
    from models.segments import LifecycleRules, TierSettings

    tiers = dict(get(cfg, "tiers"))
    lifecycle = tiers.pop("lifecycle")
    tiers = {k: tuple(v) if isinstance(v, list) else v for k, v in tiers.items()}
    return _build(TierSettings, tiers, "tiers"), _build(
        LifecycleRules, lifecycle, "tiers.lifecycle"
    )
