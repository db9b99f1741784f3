"""Compose the Hydra config in ``conf/`` into ``params.yaml``; turn its sections into settings."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from features.spec import ColumnMapping, FeatureSpec, IngestRules
from pipeline import choices, config_check, config_model, path_check, progress
from pipeline.catalog import Catalog
from pipeline.config_model import Config
from pipeline.errors import CvmError

CONF_DIR = Path("conf")
PARAMS_FILE = Path("params.yaml")
DAYS_PER_MONTH = 365.25 / 12
# libyaml's parser where PyYAML was built with it: every command reads params.yaml first
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def compose(
    overrides: list[str] | None = None,
    conf_dir: Path = CONF_DIR,
    validate: bool = True,
    project: Path | None = None,
) -> dict[str, Any]:
    """The config composed by Hydra from ``conf_dir`` with ``overrides`` (``key=value``),
    checked by :mod:`pipeline.config_check` unless ``validate`` is false (to write a bad
    config on purpose: the commands check it again when they load it); with the ``project``
    folder it will run in, its outputs' paths too."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    source = " ".join([str(conf_dir), *(["with", *overrides] if overrides else [])])
    try:
        with initialize_config_dir(str(conf_dir.resolve()), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides or []))
        composed = OmegaConf.to_container(cfg, resolve=True)
    # ValueError: e.g. a group set to null; OmegaConf's: e.g. a removed key another refers to
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise CvmError(f"{source}: cannot compose the config: {err}") from None
    if validate:
        config_check.validate(composed, source, project)
    return composed  # type: ignore[return-value]


def make_params(overrides: list[str], output: Path = PARAMS_FILE) -> None:
    """`cvm params`: ``conf/`` composed with ``overrides`` into ``output``. Into the project's
    ``params.yaml``, the overrides replace the project's choices (:mod:`pipeline.choices`), which
    every later composition reads, `dvc exp run`'s too; any other ``output`` is a composition to
    look at (the choices and then ``overrides``), and the project stays as it was."""
    if output.resolve() != PARAMS_FILE.resolve():
        write_params(compose(overrides, project=Path.cwd()), output)
        return
    with choices.set_aside(CONF_DIR):
        composed = compose(overrides, project=Path.cwd())
        choices.write(overrides, CONF_DIR)
    write_params(composed, output)


def write_params(cfg: dict[str, Any], path: Path = PARAMS_FILE) -> None:
    """Write ``params.yaml`` as DVC reads it."""
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def load_params(path: Path = PARAMS_FILE) -> DictConfig:
    """Load ``params.yaml``, checked by :mod:`pipeline.config_check` (every command that
    reads it comes through here, so a bad value stops it before it does anything), its outputs'
    paths for the working directory, which its relative paths start from."""
    if not path.is_file():
        raise CvmError(f"{path}: not found; run `cvm params` to compose it from conf/")
    try:
        tree = yaml.load(path.read_text(), Loader=_LOADER)
    except yaml.YAMLError as err:
        raise CvmError(f"{path}: not valid YAML: {err}") from None
    config_check.validate(tree, str(path), Path.cwd())
    if path.resolve() == PARAMS_FILE.resolve() and (CONF_DIR / "config.yaml").is_file():
        choices.log_mismatch(tree, compose(validate=False), path)
    cfg = OmegaConf.create(_plain(tree))
    OmegaConf.set_struct(cfg, True)
    return cfg


def check_as_of(cfg: DictConfig, as_of: date) -> None:
    """The ``--as-of`` date of ``cvm score`` or ``cvm retrain`` (the run's scoring date) against
    the config's dates (:func:`pipeline.config_model.date_problems`)."""
    config_model.check_dates(
        {"rules": get(cfg, "data.rules"), "scoring_date": as_of},
        f"--as-of {as_of} (the run's data.scoring_date): ",
    )


def check_paths(cfg: DictConfig, log: Path | None, out: Path | None = None) -> None:
    """The ``--log`` and ``--out`` of ``cvm score`` or ``cvm retrain`` against the config's
    outputs and inputs (:mod:`pipeline.path_check`), before anything is written."""
    outputs = path_check.scored_outputs(out) if out is not None else {}
    problems = path_check.problems(Settings(cfg).config, Path.cwd(), {"--log": log}, outputs)
    if problems:
        raise CvmError("; ".join(problems))


def get(cfg: DictConfig, key: str) -> Any:
    """``cfg[key]`` for a dotted key, or a :class:`CvmError` naming the missing key."""
    value = OmegaConf.select(cfg, key, throw_on_missing=False, default=_MISSING)
    if value is _MISSING:
        raise CvmError(f"params.yaml: missing config key {key!r}")
    return OmegaConf.to_container(value) if isinstance(value, DictConfig) else value


_MISSING = object()


def as_date(value: Any, key: str) -> date | None:
    """An ISO date given on the command line or in a file (``None`` stays ``None``); a
    :class:`CvmError` naming ``key`` otherwise."""
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CvmError(f"{key} is {value!r}; expected a date YYYY-MM-DD") from None


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
    def config(self) -> Config:
        """The config as one typed value (validated when ``params.yaml`` was loaded)."""
        return config_check.validate(OmegaConf.to_container(self._cfg, resolve=True))

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.from_paths(get(self._cfg, "paths"))

    @property
    def mapping(self) -> ColumnMapping:
        return self.config.data.mapping

    @property
    def has_margin(self) -> bool:
        """The log maps a margin (or cost) column (``data.mapping.margin``, ``.cost``): the
        features carry the margin to date, the scored table the margin CLV."""
        return self.mapping.profit is not None

    @property
    def rules(self) -> IngestRules:
        return self.config.data.rules

    @cached_property
    def source(self) -> Path:
        return Path(self.config.data.path)

    @cached_property
    def dates(self) -> dict[str, date | None]:
        """``calibration_end``, ``holdout_end`` and ``scoring_date`` (``None``: the data's end)."""
        data = self.config.data
        return {k: getattr(data, k) for k in ("calibration_end", "holdout_end", "scoring_date")}

    @property
    def features(self) -> FeatureSpec:
        return self.config.features

    @cached_property
    def churn_horizon(self) -> float:
        """``features.churn_horizon_days`` in model time units."""
        return self.features.churn_horizon_days / self.features.unit_days

    @cached_property
    def clv(self):
        """How the CLV pair is fit (:class:`models.btyd.clv.ClvSettings`): the ``clv`` group,
        the top-level ``seed``, and a spend model only for a log with amounts. With ``auto``,
        the first candidate without a season, until the choice (:attr:`clv_candidates`)."""
        from models.btyd.clv import ClvSettings

        clv = self.config.clv
        return ClvSettings(
            model=clv.candidates[0] if clv.model == "auto" else clv.model,
            method=clv.method,
            season=clv.season is True,
            priors=clv.priors,
            sampler=replace(clv.sampler, progressbar=progress.interactive()),
            convergence=clv.convergence,
            seed=self.config.seed,
            spend=self.mapping.amount is not None,
        )

    @cached_property
    def clv_candidates(self) -> list:
        """The purchase models ``fit_clv`` chooses among out of time
        (:class:`models.btyd.choice.Candidate`): one when neither ``clv.model`` nor
        ``clv.season`` is ``auto``."""
        from models.btyd.choice import candidates

        clv = self.config.clv
        models = clv.candidates if clv.model == "auto" else (clv.model,)
        return candidates(models, clv.season)

    @cached_property
    def prediction(self):
        """``clv.prediction`` (days, months, annual rate) in model units
        (:class:`models.btyd.predict.PredictionSettings`)."""
        from models.btyd.predict import PredictionSettings

        pred, unit_days = self.config.clv.prediction, self.features.unit_days
        return PredictionSettings(
            horizon=pred.horizon_days / unit_days,
            clv_periods=pred.clv_months,
            time_units_per_period=DAYS_PER_MONTH / unit_days,
            discount_rate=(1 + pred.annual_discount_rate) ** (1 / 12) - 1,
            margin=pred.margin,
            interval=pred.interval,
            chunk_size=pred.chunk_size,
        )

    @property
    def max_draws(self) -> int | None:
        """``clv.prediction.max_draws``: at most this many posterior draws score (None: all)."""
        return self.config.clv.prediction.max_draws

    @property
    def churn(self):
        return self.config.churn

    @cached_property
    def scoring(self):
        """What :func:`models.scoring.score_customers` needs."""
        from models.scoring import ScoringSettings

        tiers = self.config.tiers
        return ScoringSettings(
            prediction=self.prediction,
            max_draws=self.max_draws,
            churn_horizon=self.churn_horizon,
            tiers=tiers.tiers,
            lifecycle=tiers.lifecycle,
            value_per_purchase=self.config.clv.prediction.value_per_purchase,
            views=tiers.views,
            margin_prior_days=self.config.clv.prediction.margin_prior_days,
        )

    @property
    def guard_formulas(self) -> bool:
        """``export.csv_guard_formulas``: spreadsheet formulas in the CSV written as text."""
        return self.config.export.csv_guard_formulas

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
        config_model.check_dates(tree["data"], f"with {changed}: ")
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
