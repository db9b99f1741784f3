"""Compose the Hydra config in ``conf/`` into ``params.yaml``; turn its sections into settings."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from features.spec import ColumnMapping, FeatureSpec, IngestRules
from pipeline import config_schema, progress
from pipeline.catalog import Catalog
from pipeline.errors import CvmError

CONF_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")
DAYS_PER_MONTH = 365.25 / 12


def compose(
    overrides: list[str] | None = None, conf_dir: Path = CONF_DIR, validate: bool = True
) -> dict[str, Any]:
    """The config composed by Hydra from ``conf_dir`` with ``overrides`` (``key=value``),
    checked against :mod:`pipeline.config_schema` unless ``validate`` is false (to write a bad
    config on purpose: the commands check it again when they load it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides or []))
    except HydraException as err:
        raise CvmError(f"{conf_dir}: cannot compose the config: {err}") from None
    composed = OmegaConf.to_container(cfg, resolve=True)
    if validate:
        source = " ".join([str(conf_dir), *(["with", *overrides] if overrides else [])])
        config_schema.validate(composed, source)
    return composed  # type: ignore[return-value]


def write_params(cfg: dict[str, Any], path: Path = PARAMS_FILE) -> None:
    """Write ``params.yaml`` as DVC reads it."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def load_params(path: Path = PARAMS_FILE) -> DictConfig:
    """Load ``params.yaml``, checked against :mod:`pipeline.config_schema` (every command that
    reads it comes through here, so a bad value stops it before it does anything)."""
    if not path.is_file():
        raise CvmError(f"{path}: not found; run `cvm params` to compose it from conf/")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise CvmError(f"{path}: not valid YAML: {err}") from None
    config_schema.validate(tree, str(path))
    cfg = OmegaConf.create(_plain(tree))
    OmegaConf.set_struct(cfg, True)
    return cfg


def check_as_of(cfg: DictConfig, as_of: date) -> None:
    """The ``--as-of`` date of ``cvm score`` or ``cvm retrain`` (the run's scoring date) against
    the config's dates (:func:`pipeline.config_schema.date_problems`)."""
    config_schema.check_dates(
        {"rules": get(cfg, "data.rules"), "scoring_date": as_of},
        f"--as-of {as_of} (the run's data.scoring_date): ",
    )


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
    from models.btyd.clv import ClvSettings, ConvergenceSettings, SamplerSettings
    from models.btyd.priors import Priors

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
            "spend": get(cfg, "data.mapping").get("amount") is not None,
        },
        "clv",
    )


def prediction_settings(cfg: DictConfig, **override: float):
    """``clv.prediction`` (days, months, annual rate) → PredictionSettings in model units."""
    from models.btyd.predict import PredictionSettings

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
    from models.churn.settings import ChurnSettings

    try:
        return ChurnSettings.from_mapping(get(cfg, "churn"))
    except ValueError as err:
        raise CvmError(f"config: {err}") from None


def tier_settings(cfg: DictConfig):
    """``tiers`` section → (:class:`TierSettings`, :class:`LifecycleRules`)."""
    from models.segments import LifecycleRules, TierSettings

    tiers = dict(get(cfg, "tiers"))
    lifecycle = tiers.pop("lifecycle")
    for key in ("value_matrix", "actions"):  # the value views: see view_settings
        tiers.pop(key, None)
    tiers = {k: tuple(v) if isinstance(v, list) else v for k, v in tiers.items()}
    return _build(TierSettings, tiers, "tiers"), _build(
        LifecycleRules, lifecycle, "tiers.lifecycle"
    )


def view_settings(cfg: DictConfig):
    """``tiers.value_matrix`` and ``tiers.actions`` → :class:`ValueViewSettings`."""
    from models.value_views import ActionTable, ValueMatrix, ValueViewSettings

    matrix = dict(get(cfg, "tiers.value_matrix"))
    matrix = {k: tuple(v) if isinstance(v, list) else v for k, v in matrix.items()}
    return ValueViewSettings(
        matrix=_build(ValueMatrix, matrix, "tiers.value_matrix"),
        actions=_build(ActionTable, get(cfg, "tiers.actions"), "tiers.actions"),
    )


class Settings:
    """The config as typed, validated values, each built once on first use: what the stage
    functions take instead of the raw config. Values derived from several keys (the churn
    horizon in model units, the prediction settings in model units) are computed here only."""

    def __init__(self, cfg: DictConfig) -> None:
        self._cfg = cfg

    def section(self, key: str) -> Any:
        """A config section as plain data (what stages log as parameters)."""
        return get(self._cfg, key)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.from_paths(get(self._cfg, "paths"))

    @cached_property
    def mapping(self) -> ColumnMapping:
        return column_mapping(self._cfg)

    @cached_property
    def rules(self) -> IngestRules:
        return ingest_rules(self._cfg)

    @cached_property
    def source(self) -> Path:
        return Path(get(self._cfg, "data.path"))

    @cached_property
    def dates(self) -> dict[str, date | None]:
        """``calibration_end``, ``holdout_end`` and ``scoring_date`` (``None``: the data's end)."""
        keys = ("calibration_end", "holdout_end", "scoring_date")
        return {k: as_date(get(self._cfg, f"data.{k}"), f"data.{k}") for k in keys}

    @cached_property
    def features(self) -> FeatureSpec:
        return feature_spec(self._cfg)

    @cached_property
    def churn_horizon(self) -> float:
        """``features.churn_horizon_days`` in model time units."""
        return self.features.churn_horizon_days / self.features.unit_days

    @cached_property
    def clv(self):
        return clv_settings(self._cfg)

    @cached_property
    def prediction(self):
        return prediction_settings(self._cfg)

    @cached_property
    def max_draws(self) -> int | None:
        """``clv.prediction.max_draws``: at most this many posterior draws score (None: all)."""
        value = get(self._cfg, "clv.prediction.max_draws")
        return int(value) if value else None

    @cached_property
    def churn(self):
        return churn_settings(self._cfg)

    @cached_property
    def scoring(self):
        """What :func:`models.scoring.score_customers` needs."""
        from models.scoring import ScoringSettings

        tiers, lifecycle = tier_settings(self._cfg)
        return ScoringSettings(
            prediction=self.prediction,
            max_draws=self.max_draws,
            churn_horizon=self.churn_horizon,
            tiers=tiers,
            lifecycle=lifecycle,
            value_per_purchase=get(self._cfg, "clv.prediction.value_per_purchase"),
            views=view_settings(self._cfg),
        )

    @cached_property
    def guard_formulas(self) -> bool:
        """``export.csv_guard_formulas``: spreadsheet formulas in the CSV written as text."""
        value = get(self._cfg, "export.csv_guard_formulas")
        if not isinstance(value, bool):
            raise CvmError(f"export.csv_guard_formulas is {value!r}; expected true or false")
        return value

    @cached_property
    def database(self):
        """``export.database``: where ``cvm score`` and ``cvm retrain`` publish the tables."""
        from pipeline.database import DatabaseSettings

        return DatabaseSettings.from_config(get(self._cfg, "export.database"))

    @cached_property
    def engine(self) -> dict[str, Any]:
        return get(self._cfg, "engine")

    @cached_property
    def tracking(self) -> dict[str, Any]:
        return get(self._cfg, "tracking")

    def with_data(self, **values: Any) -> Settings:
        """New settings with some ``data`` keys replaced (a log path, dates); this one is left
        as it is. The dates must keep the rules between them (a :class:`CvmError` otherwise)."""
        tree = OmegaConf.to_container(self._cfg, resolve=True)
        tree["data"] = tree["data"] | {k: _plain(v) for k, v in values.items()}
        changed = ", ".join(f"data.{k}={_plain(v)}" for k, v in values.items())
        config_schema.check_dates(tree["data"], f"with {changed}: ")
        cfg = OmegaConf.create(tree)
        OmegaConf.set_struct(cfg, True)
        return Settings(cfg)


def _plain(value: Any) -> Any:
    """Dates as ISO text and paths as text (what OmegaConf holds), inside lists and mappings
    too."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return str(value) if isinstance(value, Path) else value
