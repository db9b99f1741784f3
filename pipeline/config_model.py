"""The composed config (``params.yaml``) as one typed value, :class:`Config`.

Each group is a pydantic dataclass declared beside the code that uses it (``churn`` in
:mod:`models.churn.settings`, ``clv`` in :mod:`models.btyd.settings`, ``tiers`` in
:mod:`models.value_views`, ``features`` and the data's mapping and rules in
:mod:`features.spec`); the groups only the pipeline reads are declared here. A key's type says
what it accepts (:mod:`models.settings`), a group's rules between its keys are its validator.

:func:`pipeline.config_check.validate` turns a config into a :class:`Config`, or names every
problem of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, fields
from typing import Annotated, Any, Literal

from annotated_types import MinLen
from pydantic import Field, PlainValidator

from features.spec import ColumnMapping, FeatureSpec, IngestRules
from models.btyd.settings import ClvConfig
from models.churn.settings import ChurnSettings
from models.promotion import MetricRule
from models.report.settings import ReportSettings
from models.settings import (
    AtLeastOne,
    Column,
    Count,
    Day,
    Expect,
    Flag,
    PathText,
    PositiveNumber,
    Seed,
    Share,
    Text,
    integer,
    listing,
    model_rules,
    settings,
    text,
    to_date,
)
from models.value_views import Tiers
from pipeline.credentials import has_password, redact
from pipeline.database import SCHEMES
from pipeline.errors import CvmError


@settings
class CategoricalLevel:
    """A categorical customer attribute and its base level (left out of the one-hot columns)."""

    column: Column
    base: Annotated[int, Expect("an integer")] | Text


@settings
class CustomersConfig:
    """A table of customer attributes: covariates of the CLV and churn models."""

    path: PathText
    id: Column
    covariates: listing(Column, unique=True) = ()  # numeric columns
    categorical: listing(CategoricalLevel) = ()  # one-hot encoded, the base level left out


# (later, earlier, strictly later, why): each checked when both dates are set
DATE_ORDER = (
    (
        "data.holdout_end",
        "data.calibration_end",
        True,
        "the holdout is the window after the calibration cutoff",
    ),
    (
        "data.scoring_date",
        "data.calibration_end",
        False,
        "the scoring models are fit on all the history up to the scoring date, the evaluation's "
        "up to the calibration cutoff",
    ),
    ("data.rules.end", "data.rules.start", True, "rows outside [start, end] are quarantined"),
    ("data.rules.end", "data.calibration_end", True, "rows after data.rules.end are quarantined"),
    ("data.rules.end", "data.holdout_end", False, "rows after data.rules.end are quarantined"),
    ("data.rules.end", "data.scoring_date", False, "rows after data.rules.end are quarantined"),
    (
        "data.calibration_end",
        "data.rules.start",
        True,
        "rows before data.rules.start are quarantined: nothing would be left to calibrate on",
    ),
)


def date_problems(data: Mapping[str, Any]) -> list[str]:
    """The :data:`DATE_ORDER` rules broken by the dates of a ``data`` section (keys absent or
    null are not set; values are ISO text or dates)."""
    rules = data.get("rules") or {}
    days = {
        f"data.{k}": to_date(data.get(k))
        for k in ("calibration_end", "holdout_end", "scoring_date")
    } | {f"data.rules.{k}": to_date(rules.get(k)) for k in ("start", "end")}
    problems = []
    for later, earlier, strict, why in DATE_ORDER:
        a, b = days[later], days[earlier]
        if a is not None and b is not None and (a < b or (strict and a == b)):
            order = "after" if strict else "on or after"
            problems.append(f"{later} is '{a}'; expected a date {order} {earlier} ('{b}'): {why}")
    return problems


def check_dates(data: Mapping[str, Any], context: str = "") -> None:
    """:func:`date_problems` as a :class:`CvmError` (``context`` first): for the dates a command
    sets at run time (``cvm retrain``, ``cvm score --as-of``)."""
    problems = date_problems(data)
    if problems:
        raise CvmError(context + "; ".join(problems))


@settings
class DataConfig:
    """The config group ``data``: the log, how to read it, and the cutoffs."""

    name: Text
    path: PathText
    format: Literal["csv", "whitespace", "parquet"]
    header: Flag
    names: listing(Column, min_len=1, unique=True) | None  # the columns when header: false
    delimiter: text("a single character", pattern=r".")  # csv only
    mapping: ColumnMapping
    rules: IngestRules
    calibration_end: Day
    holdout_end: Day | None  # None: the last transaction
    scoring_date: Day | None  # None: the last transaction
    customers: CustomersConfig | None  # None: no customer attributes

    @model_rules
    def _dates_in_order(self) -> list[str]:
        return date_problems(
            {k: getattr(self, k) for k in ("calibration_end", "holdout_end", "scoring_date")}
            | {"rules": {"start": self.rules.start, "end": self.rules.end}}
        )

    @model_rules
    def _one_profit_with_amounts(self) -> list[str]:
        """A margin is a share of spend (:mod:`models.margin`): it needs the amounts too, and
        comes from one column, the margin's or the cost's."""
        mapping = self.mapping
        if mapping.margin is not None and mapping.cost is not None:
            return [
                f"data.mapping.cost is {mapping.cost!r}; expected null with data.mapping.margin "
                f"set ({mapping.margin!r}): each line's margin comes from one of them"
            ]
        kind = mapping.profit
        if kind is None or mapping.amount is not None:
            return []
        return [
            f"data.mapping.{kind} is {getattr(mapping, kind)!r}; expected null with "
            "data.mapping.amount null (a margin is a share of the spend a log without amounts "
            "does not have)"
        ]

    @model_rules
    def _names_hold_the_mapped_columns(self) -> list[str]:
        """A text log without a header needs ``names``, and they must hold the mapped columns."""
        if self.format == "parquet" or self.header:
            return []
        if not self.names:
            return ["data.names is None; expected the column names: data.header is false"]
        mapped = {f.name: getattr(self.mapping, f.name) for f in fields(self.mapping)}
        return [
            f"data.mapping.{key} is {column!r}; expected one of data.names "
            f"({', '.join(self.names)})"
            for key, column in mapped.items()
            if key != "timestamp_format" and column is not None and column not in self.names
        ]


@settings
class TrackingConfig:
    """The config group ``tracking``: the MLflow tracking store and model registry."""

    enabled: Flag
    uri: text("a tracking URI such as sqlite:///mlflow.db")
    registry_uri: text("a registry URI") | None  # None: uri
    experiment: Text
    register: Flag


@settings
class DuckdbEngine:
    name: Literal["duckdb"]
    threads: AtLeastOne
    memory_limit: text("a size such as 2GB, 512MB or 80%", r"\d+(\.\d+)?\s*([KMGT]i?B?|%)") | None
    temp_directory: PathText | None  # None: a temporary directory


def _options(value: Any) -> dict:
    """Free-form settings passed on to Spark: names to text, numbers or booleans, nested or
    dotted."""

    def ok(v: Any) -> bool:
        return isinstance(v, Mapping) and all(
            isinstance(k, str) and (isinstance(x, str | int | float | bool) or ok(x))
            for k, x in v.items()
        )

    if not ok(value):
        raise ValueError("not a mapping of setting names to text, numbers or booleans")
    return dict(value)


SparkOptions = Annotated[
    dict,
    PlainValidator(_options),
    Expect("a mapping of setting names to text, numbers or booleans"),
]


@settings
class SparkEngine:
    name: Literal["spark"]
    master: text("a Spark master URL such as local[2]")
    app_name: Text
    log_level: Annotated[
        str,
        Expect("one of ALL, DEBUG, INFO, WARN, ERROR, FATAL, OFF, TRACE"),
        Field(pattern=r"(?i)^(ALL|DEBUG|INFO|WARN|ERROR|FATAL|OFF|TRACE)$"),
    ]
    conf: SparkOptions | None


Engine = Annotated[DuckdbEngine | SparkEngine, Field(discriminator="name")]


@settings
class FeedChecks:
    max_quarantine_share: Share
    max_days_without_data: Count
    max_history_loss: Share


@settings
class Promotion:
    metrics: Annotated[
        dict[str, MetricRule],
        MinLen(1),
        Expect("a mapping of metric names to {path, better, tolerance, relative}"),
    ]


@settings
class Drift:
    features: listing(Column) | None
    scores: listing(Column) | None
    bins: integer(ge=2)
    warn: PositiveNumber
    breach: PositiveNumber
    action: Literal["report", "block", "fail"]
    dated: listing(Column, unique=True) = ()  # features counting days back from the as-of date

    @model_rules
    def _warn_before_breach(self) -> list[str]:
        if self.warn <= self.breach:
            return []
        return [
            f"retrain.drift.warn is {self.warn!r}; expected at most retrain.drift.breach "
            f"({self.breach!r})"
        ]

    @model_rules
    def _dated_are_features(self) -> list[str]:
        stray = [c for c in self.dated if c not in (self.features or ())]
        if not stray:
            return []
        return [
            f"retrain.drift.dated names {', '.join(stray)}; expected columns of "
            "retrain.drift.features"
        ]


@settings
class RetrainConfig:
    """The config group ``retrain`` (see ``conf/retrain/default.yaml``)."""

    work_dir: PathText
    lock_file: PathText
    summary: PathText
    scored: PathText | None  # None: paths.scored
    feed: FeedChecks
    promotion: Promotion
    drift: Drift


@settings
class TableNames:
    customers: Text
    segments: Text
    kpis: Text
    migration: Text


@settings
class DatabaseConfig:
    url: (
        text(
            "a database URL: duckdb:///path/file.duckdb or postgresql://user@host/db",
            rf"({'|'.join(SCHEMES)})://.+",
        )
        | None
    )
    schema: Text
    tables: TableNames
    from_pipeline: Flag

    @model_rules
    def _no_password(self) -> list[str]:
        """params.yaml is committed: a password in it would be shared with the repository."""
        if self.url is None or not has_password(self.url):
            return []
        return [
            f"export.database.url is {redact(self.url)!r}; expected a URL without a password: "
            "set PGPASSWORD or a ~/.pgpass entry, which the PostgreSQL driver reads"
        ]


@settings
class ExportConfig:
    csv_guard_formulas: Flag
    database: DatabaseConfig


@settings
class Paths:
    """Every artifact's path (:mod:`pipeline.catalog`); the ``*_dir`` keys are what the others
    build on."""

    clean: PathText
    quarantine: PathText
    ingest_report: PathText
    ingest_metrics: PathText
    features_dir: PathText
    features_calibration: PathText
    features_scoring: PathText
    features_train_calibration: PathText
    features_train_scoring: PathText
    features_repeats: PathText
    features_report: PathText
    features_metrics: PathText
    clv_dir: PathText
    clv_calibration: PathText
    clv_scoring: PathText
    fit_report: PathText
    fit_metrics: PathText
    churn_dir: PathText
    churn_calibration: PathText
    churn_scoring: PathText
    train_report: PathText
    train_metrics: PathText
    reports_dir: PathText
    evaluation: PathText
    evaluation_metrics: PathText
    plots: PathText
    score_summary: PathText
    report: PathText
    scored: PathText
    segments: PathText
    state: PathText
    output_roots: listing(PathText, unique=True)  # folders outside the project outputs may use
    input_roots: listing(PathText, unique=True)  # folders outside the project logs may be read in


@settings
class Config:
    """The whole config, each group typed."""

    data: DataConfig
    clv: ClvConfig
    churn: ChurnSettings
    tiers: Tiers
    tracking: TrackingConfig
    engine: Engine
    retrain: RetrainConfig
    seed: Seed
    export: ExportConfig
    paths: Paths
    features: FeatureSpec = field(default_factory=FeatureSpec)
    report: ReportSettings = field(default_factory=ReportSettings)

    @model_rules
    def _not_contacted_are_actions(self) -> list[str]:
        actions = self.tiers.actions
        known = {a for stages in actions.table.values() for a in stages.values()}
        known.add(actions.default)
        return [
            f"report.not_contacted names {name!r}; expected one of the recommended actions of "
            f"tiers.actions ({', '.join(sorted(known))})"
            for name in self.report.not_contacted
            if name not in known
        ]

    @model_rules
    def _tiers_rank_a_value_the_log_has(self) -> list[str]:
        mapping, weights = self.data.mapping, self.tiers.weights
        missing = {"profit": mapping.profit is None, "amount": mapping.amount is None}
        column = {"profit": "margin and data.mapping.cost", "amount": "amount"}
        if self.tiers.by == "weighted":
            return [
                f"tiers.weights.{name} is {getattr(weights, name)!r}; expected 0 with "
                f"data.mapping.{column[name]} null (the log has no {name} to weigh)"
                for name in ("profit", "amount")
                if getattr(weights, name) and missing[name]
            ]
        if self.tiers.by == "margin_clv" and missing["profit"]:
            return [
                "tiers.by is 'margin_clv'; expected clv or historical_value with "
                "data.mapping.margin and data.mapping.cost null (map the log's margin or cost "
                "column to rank by profit)"
            ]
        if self.tiers.by != "historical_value" or mapping.amount is not None:
            return []
        return [
            "tiers.by is 'historical_value'; expected clv with data.mapping.amount null (a log "
            "without amounts has no value to date)"
        ]

    @model_rules
    def _one_margin(self) -> list[str]:
        """A margin column gives each customer's own margin: a flat one on top would count the
        margin twice."""
        margin, kind = self.clv.prediction.margin, self.data.mapping.profit
        if kind is None or margin == 1:
            return []
        return [
            f"clv.prediction.margin is {margin!r}; expected 1.0 with data.mapping.{kind} set "
            f"(the {kind} column gives each customer's own share: margin_clv)"
        ]

    @model_rules
    def _a_cutoff_left_to_train_on(self) -> list[str]:
        """The latest cutoffs validate the churn model: one at least must be left to train on."""
        n = self.churn.validation_cutoffs
        cutoffs = self.features.train_cutoffs + self.features.selection_cutoffs
        if n < cutoffs:
            return []
        return [
            f"churn.validation_cutoffs is {n}; expected fewer than the {cutoffs} training "
            "cutoffs (features.train_cutoffs + features.selection_cutoffs): one must be left "
            "to train on"
        ]
