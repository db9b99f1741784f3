"""The composed config (``params.yaml``), key by key: the reference for what each key accepts.

:data:`SCHEMA` gives every key its type and range, :data:`DATE_ORDER` and :data:`RULES` the
rules between keys. :func:`validate` checks a config against both and raises one
:class:`CvmError` that lists every problem, each naming the dotted key, the value given and what
is allowed. It runs when ``conf/`` is composed (``cvm params``, :func:`pipeline.config.compose`)
and when ``params.yaml`` is loaded (every command that reads it), so a bad value stops a command
before it does anything.

How values are read:

- an integer is a whole number written as one: ``true``/``false`` (YAML also reads ``yes``/``no``
  as booleans) and floats, even ``2.0``, are refused: a count written as a float is more likely
  a slip than a choice, and the code passes counts on as they are;
- a number accepts integers (``learning_rate: 1``), never booleans, and must be finite;
- a date is ISO text ``YYYY-MM-DD`` (an unquoted YAML date is accepted too);
- ``null`` only where a key says so; a key missing from a section, or one the section does not
  have, is a problem too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pipeline.errors import CvmError

# --- value types ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bounds:
    """Range bounds: greater than ``gt``, at least ``ge``, below ``lt``, at most ``le``."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    null: bool = False

    def in_range(self, v: float) -> bool:
        return not (
            (self.gt is not None and v <= self.gt)
            or (self.ge is not None and v < self.ge)
            or (self.lt is not None and v >= self.lt)
            or (self.le is not None and v > self.le)
        )

    def range_text(self) -> str:
        """`` > 0``, `` >= 1``, `` in (0, 1]`` and the like; ``""`` without bounds."""
        low = f"({self.gt}" if self.gt is not None else f"[{self.ge}" if self.ge is not None else ""
        high = (
            f"{self.lt})" if self.lt is not None else f"{self.le}]" if self.le is not None else ""
        )
        if low and high:
            return f" in {low}, {high}"
        if low:
            return f" {'>' if low[0] == '(' else '>='} {low[1:]}"
        if high:
            return f" {'<' if high[-1] == ')' else '<='} {high[:-1]}"
        return ""


@dataclass(frozen=True)
class Int(_Bounds):
    """A whole number in range; ``but_not`` is one value of the range left out."""

    but_not: int | None = None

    def accepts(self, v: Any) -> bool:
        return _is_int(v) and self.in_range(v) and v != self.but_not

    def expected(self) -> str:
        other = f" other than {self.but_not}" if self.but_not is not None else ""
        return f"an integer{self.range_text()}{other}"


@dataclass(frozen=True)
class Float(_Bounds):
    """A finite number in range (an integer is fine)."""

    def accepts(self, v: Any) -> bool:
        return _is_number(v) and math.isfinite(v) and self.in_range(v)

    def expected(self) -> str:
        return f"a number{self.range_text()}"


@dataclass(frozen=True)
class Bool:
    null: bool = False

    def accepts(self, v: Any) -> bool:
        return isinstance(v, bool)

    def expected(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Str:
    """Non-empty text, matching ``pattern`` (case-insensitive) if given; ``what`` describes it."""

    null: bool = False
    pattern: str | None = None
    what: str = "a non-empty text"

    def accepts(self, v: Any) -> bool:
        if not isinstance(v, str) or not v:
            return False
        return self.pattern is None or re.fullmatch(self.pattern, v, re.IGNORECASE) is not None

    def expected(self) -> str:
        return self.what


@dataclass(frozen=True)
class Path(Str):
    what: str = "a path"


@dataclass(frozen=True)
class Date:
    null: bool = False

    def accepts(self, v: Any) -> bool:
        return to_date(v) is not None

    def expected(self) -> str:
        return "a date YYYY-MM-DD"


@dataclass(frozen=True)
class Enum:
    choices: tuple[str, ...]
    null: bool = False
    ignore_case: bool = False

    def accepts(self, v: Any) -> bool:
        if self.ignore_case and isinstance(v, str):
            return v.upper() in {c.upper() for c in self.choices}
        return isinstance(v, str) and v in self.choices

    def expected(self) -> str:
        return f"one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class List:
    """A list whose every item ``item`` accepts; at least ``min_len`` long; ``increasing``:
    strictly; ``unique``: no item twice."""

    item: Any
    null: bool = False
    min_len: int = 0
    increasing: bool = False
    unique: bool = False

    def accepts(self, v: Any) -> bool:
        if not isinstance(v, list) or len(v) < self.min_len:
            return False
        if not all(self.item.accepts(x) for x in v):
            return False
        if self.increasing and any(a >= b for a, b in zip(v, v[1:], strict=False)):
            return False
        return not self.unique or len(set(v)) == len(v)

    def expected(self) -> str:
        shape = [
            "a non-empty list" if self.min_len else "a list",
            *(["strictly increasing"] if self.increasing else []),
            *(["without repeats"] if self.unique else []),
        ]
        return f"{', '.join(shape)}, each {self.item.expected()}"


@dataclass(frozen=True)
class Options:
    """Free-form settings passed on to a tool (Spark's): names to text, numbers or booleans,
    nested or dotted."""

    null: bool = False

    def accepts(self, v: Any) -> bool:
        if not isinstance(v, Mapping):
            return False
        return all(
            isinstance(k, str)
            and (
                isinstance(x, str | int | float | bool)
                or (isinstance(x, Mapping) and self.accepts(x))
            )
            for k, x in v.items()
        )

    def expected(self) -> str:
        return "a mapping of setting names to text, numbers or booleans"


@dataclass(frozen=True)
class Grid:
    """Labels on a grid: a non-empty mapping of row names to non-empty mappings of column names
    to non-empty text (which rows and columns exist is for a rule between keys to check)."""

    what: str
    null: bool = False

    def accepts(self, v: Any) -> bool:
        if not isinstance(v, Mapping) or not v:
            return False
        return all(
            isinstance(row, str)
            and isinstance(cells, Mapping)
            and cells
            and all(isinstance(k, str) and isinstance(x, str) and x for k, x in cells.items())
            for row, cells in v.items()
        )

    def expected(self) -> str:
        return self.what


@dataclass(frozen=True)
class MapOf:
    """A mapping of names the user chooses to sections (a dict of keys) of one shape."""

    entry: dict
    what: str
    min_len: int = 0


@dataclass(frozen=True)
class Level:
    """A categorical column and its base level: ``{column: <name>, base: <level>}``."""

    null: bool = False

    def accepts(self, v: Any) -> bool:
        return (
            isinstance(v, Mapping)
            and set(v) == {"column", "base"}
            and COLUMN.accepts(v["column"])
            and (_is_int(v["base"]) or (isinstance(v["base"], str) and v["base"] != ""))
        )

    def expected(self) -> str:
        return "{column: <column name>, base: <its base level>}"


@dataclass(frozen=True)
class OrNull:
    """A section (a dict of keys), or ``null`` for none."""

    section: dict


@dataclass(frozen=True)
class Variant:
    """A section whose other keys depend on the choice in its key ``by``: ``options`` holds the
    keys of each choice."""

    by: str
    options: dict[str, dict] = field(default_factory=dict)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def to_date(v: Any) -> date | None:
    """``v`` as a date (ISO ``YYYY-MM-DD`` text or a date), or ``None`` when it is not one."""
    if isinstance(v, date) and not isinstance(v, datetime):
        return v
    if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        try:
            return date.fromisoformat(v)
        except ValueError:
            return None
    return None


# --- the schema -----------------------------------------------------------------------------

SEED = Int(ge=0, le=2**31 - 1)  # LightGBM's seed is a C int
SHARE = Float(ge=0, le=1)
PROBABILITY = Float(ge=0, le=1)
COLUMN = Str(what="a column name")
OPTIONAL_COLUMN = Str(null=True, what="a column name")

DATA = {
    "name": Str(),
    "path": Path(),
    "format": Enum(("csv", "whitespace", "parquet")),
    "header": Bool(),
    "names": List(COLUMN, null=True, min_len=1, unique=True),  # the columns when header: false
    "delimiter": Str(pattern=r".", what="a single character"),  # csv only
    "mapping": {
        "customer_id": COLUMN,
        "timestamp": COLUMN,
        "timestamp_format": Str(what="iso or a strftime pattern such as %Y%m%d"),
        "amount": OPTIONAL_COLUMN,  # null: a log without spend
        "quantity": OPTIONAL_COLUMN,
        "order_id": OPTIONAL_COLUMN,
        "margin": OPTIONAL_COLUMN,
    },
    "rules": {
        "start": Date(null=True),
        "end": Date(null=True),
        "returns": Enum(("quarantine", "net")),
        "zero_amounts": Enum(("keep", "quarantine")),
        "duplicates": Enum(("keep", "quarantine")),
        "extreme_amounts": Enum(("warn", "cap", "quarantine")),
        "extreme_factor": Float(gt=1),
    },
    "calibration_end": Date(),
    "holdout_end": Date(null=True),  # null: the last transaction
    "scoring_date": Date(null=True),  # null: the last transaction
    # a table of customer attributes (covariates of the CLV and churn models); null: none
    "customers": OrNull(
        {
            "path": Path(),
            "id": COLUMN,
            "covariates": List(COLUMN, unique=True),  # numeric columns
            "categorical": List(Level()),  # one-hot encoded, the base level left out
        }
    ),
}

CLV = {
    "model": Enum(("bgnbd", "pareto_nbd")),
    "method": Enum(("map", "nuts")),
    "priors": {
        "kind": Enum(("weakly_informative", "flat")),
        "log_mu": Float(),
        "log_sigma": Float(gt=0),
    },
    "sampler": {
        "name": Enum(("nutpie", "pymc")),
        "draws": Int(ge=1),
        "tune": Int(ge=0),
        "chains": Int(ge=1),
        "cores": Int(ge=1),
        "target_accept": Float(gt=0, lt=1),
    },
    "convergence": {
        "max_rhat": Float(ge=1),
        "min_ess": Float(ge=0),
        "max_divergences": Int(ge=0),
        "on_failure": Enum(("fail", "warn")),
    },
    "prediction": {
        "horizon_days": Int(gt=0),
        "clv_months": Int(gt=0),
        "annual_discount_rate": Float(ge=0),
        "margin": Float(gt=0, le=1),  # share of spend that is profit
        "interval": Float(gt=0, lt=1),
        "chunk_size": Int(gt=0),
        "max_draws": Int(gt=0, null=True),  # null: every draw
        "value_per_purchase": Float(gt=0, null=True),
    },
}

CHURN = {
    "num_leaves": Int(ge=2),
    "learning_rate": Float(gt=0),
    "n_estimators": Int(ge=1),
    "min_child_samples": Int(ge=1),
    "feature_fraction": Float(gt=0, le=1),
    "bagging_fraction": Float(gt=0, le=1),
    "bagging_freq": Int(ge=0),  # 0: no bagging
    "lambda_l2": Float(ge=0),
    "max_depth": Int(ge=-1, but_not=0),  # -1: no limit
    "early_stopping_rounds": Int(ge=1),
    "early_stopping_min_delta": Float(ge=0),
    "calibration": Enum(("platt", "isotonic")),
    "calibration_prior": OPTIONAL_COLUMN,  # platt only
    "selection_margin": Float(ge=0),
    "shift_to_target": Bool(),
    "validation_cutoffs": Int(ge=1),
    "exclude": List(COLUMN),
    "seed": SEED,
    "num_threads": Int(ge=1),
    "max_rows": Int(ge=2, null=True),  # null: every row
}

TIERS = {
    "method": Enum(("quantile", "threshold")),
    "by": Enum(("clv", "margin_clv", "historical_value")),  # historical_value needs amounts
    "names": List(Str(), min_len=2, unique=True),
    "bounds": List(Float(), min_len=1),  # see RULES: descending, in (0, 1) for quantile
    "lifecycle": {
        "new_days": Int(ge=0),
        "lost_p_alive": PROBABILITY,
        "lost_churn": PROBABILITY,
        "risk_p_alive": PROBABILITY,
        "risk_churn": PROBABILITY,
        "loyal_repeats": Int(ge=0),
    },
    "value_matrix": {  # see RULES: one level more than cuts, every cell named once
        "cuts": List(Float(gt=0, lt=1), min_len=1, increasing=True),
        "levels": List(Str(), min_len=2, unique=True),
        "names": Grid("a mapping of historical levels to {CLV level: cell name}"),
    },
    "actions": {  # see RULES: tiers of tiers.names, lifecycle stages
        "default": Str(),
        "table": Grid("a mapping of value tiers to {lifecycle stage: action}"),
    },
}

TRACKING = {
    "enabled": Bool(),
    "uri": Str(what="a tracking URI such as sqlite:///mlflow.db"),
    "registry_uri": Str(null=True, what="a registry URI"),  # null: uri
    "experiment": Str(),
    "register": Bool(),
}

ENGINE = Variant(
    "name",
    {
        "duckdb": {
            "threads": Int(ge=1),
            "memory_limit": Str(
                null=True,
                pattern=r"\d+(\.\d+)?\s*([KMGT]i?B?|%)",
                what="a size such as 2GB, 512MB or 80%",
            ),
            "temp_directory": Path(null=True),  # null: a temporary directory
        },
        "spark": {
            "master": Str(what="a Spark master URL such as local[2]"),
            "app_name": Str(),
            "log_level": Enum(
                ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF", "TRACE"),
                ignore_case=True,
            ),
            "conf": Options(null=True),
        },
    },
)

RETRAIN = {
    "work_dir": Path(),
    "lock_file": Path(),
    "summary": Path(),
    "scored": Path(null=True),  # null: paths.scored
    "feed": {
        "max_quarantine_share": SHARE,
        "max_days_without_data": Int(ge=0),
        "max_history_loss": SHARE,
    },
    "promotion": {
        "metrics": MapOf(
            {
                "path": Str(what="a dotted path into reports/evaluation.json"),
                "better": Enum(("higher", "lower")),
                "tolerance": Float(ge=0),
                "relative": Bool(),
            },
            what="a mapping of metric names to {path, better, tolerance, relative}",
            min_len=1,
        ),
    },
    "drift": {
        "features": List(COLUMN, null=True),
        "scores": List(COLUMN, null=True),
        "bins": Int(ge=2),
        "warn": Float(gt=0),
        "breach": Float(gt=0),
        "action": Enum(("report", "block", "fail")),
    },
}

# every artifact's path (pipeline/catalog.py); the *_dir keys are what the others build on
PATHS = {
    "clean": Path(),
    "quarantine": Path(),
    "ingest_report": Path(),
    "features_dir": Path(),
    "features_calibration": Path(),
    "features_scoring": Path(),
    "features_train_calibration": Path(),
    "features_train_scoring": Path(),
    "features_repeats": Path(),
    "features_report": Path(),
    "clv_dir": Path(),
    "clv_calibration": Path(),
    "clv_scoring": Path(),
    "fit_report": Path(),
    "churn_dir": Path(),
    "churn_calibration": Path(),
    "churn_scoring": Path(),
    "train_report": Path(),
    "reports_dir": Path(),
    "evaluation": Path(),
    "plots": Path(),
    "score_summary": Path(),
    "report": Path(),
    "scored": Path(),
    "segments": Path(),
    "state": Path(),
}

FEATURES = {
    "time_unit": Enum(("days", "weeks")),
    "churn_horizon_days": Int(gt=0),
    "windows_days": List(Int(gt=0), min_len=1, increasing=True),
    "trend_window_days": Int(gt=0),
    "train_cutoffs": Int(ge=1),
    "train_cutoff_step_days": Int(gt=0),
    "selection_cutoffs": Int(ge=0),
}

SCHEMA: dict[str, Any] = {
    "data": DATA,
    "clv": CLV,
    "churn": CHURN,
    "tiers": TIERS,
    "tracking": TRACKING,
    "engine": ENGINE,
    "retrain": RETRAIN,
    "seed": SEED,
    "export": {
        "csv_guard_formulas": Bool(),
        "database": {
            "url": Str(
                null=True,
                pattern=r"(duckdb|postgresql)://.+",
                what="a database URL: duckdb:///path/file.duckdb or postgresql://user@host/db",
            ),
            "schema": Str(),
            "tables": {"customers": Str(), "segments": Str()},
            "from_pipeline": Bool(),
        },
    },
    "paths": PATHS,
    "features": FEATURES,
}

# --- rules between keys ---------------------------------------------------------------------

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


def _column_names(cfg: dict) -> list[str]:
    """A text log without a header needs ``data.names``, and they must hold the mapped columns."""
    data = cfg["data"]
    if data["format"] == "parquet" or data["header"]:
        return []
    if not data["names"]:
        return ["data.names is None; expected the column names: data.header is false"]
    return [
        f"data.mapping.{key} is {column!r}; expected one of data.names ({', '.join(data['names'])})"
        for key, column in data["mapping"].items()
        if key != "timestamp_format" and column is not None and column not in data["names"]
    ]


def _tiers(cfg: dict) -> list[str]:
    tiers = cfg["tiers"]
    names, bounds = tiers["names"], tiers["bounds"]
    problems = []
    if len(names) != len(bounds) + 1:
        problems.append(
            f"tiers.names is {names!r}; expected one name more than tiers.bounds {bounds!r} "
            "(the bounds separate the tiers)"
        )
    if any(a <= b for a, b in zip(bounds, bounds[1:], strict=False)):
        problems.append(f"tiers.bounds is {bounds!r}; expected strictly decreasing bounds")
    if tiers["method"] == "quantile" and not all(0 < b < 1 for b in bounds):
        problems.append(f"tiers.bounds is {bounds!r}; expected quantiles in (0, 1)")
    return problems


def _value_matrix(cfg: dict) -> list[str]:
    """Both axes are cut into ``levels`` and every (historical, CLV) cell has its own name."""
    matrix = cfg["tiers"]["value_matrix"]
    cuts, levels, names = matrix["cuts"], matrix["levels"], matrix["names"]
    if len(levels) != len(cuts) + 1:
        return [
            f"tiers.value_matrix.levels is {levels!r}; expected one level more than "
            f"tiers.value_matrix.cuts {cuts!r} (the cuts separate the levels)"
        ]
    problems = [
        f"tiers.value_matrix.names.{row} is not a level; expected one of {', '.join(levels)}"
        for row in names
        if row not in levels
    ]
    for row in levels:
        cells = names.get(row, {})
        unknown = [c for c in cells if c not in levels]
        missing = [c for c in levels if c not in cells]
        if unknown or missing:
            problems.append(
                f"tiers.value_matrix.names.{row} is {cells!r}; expected a name for each CLV "
                f"level {', '.join(levels)} (every cell of the matrix named)"
            )
    given = [x for row in names.values() for x in row.values()]
    if not problems and len(set(given)) != len(given):
        problems.append(
            f"tiers.value_matrix.names is {names!r}; expected a different name for each cell"
        )
    return problems


def _actions(cfg: dict) -> list[str]:
    """The action table names tiers of ``tiers.names`` and the lifecycle stages only."""
    from models.segments import LIFECYCLE_STAGES

    tiers, table = cfg["tiers"]["names"], cfg["tiers"]["actions"]["table"]
    problems = [
        f"tiers.actions.table.{tier} is not a value tier; expected one of {', '.join(tiers)}"
        for tier in table
        if tier not in tiers
    ]
    for tier, row in table.items():
        problems += [
            f"tiers.actions.table.{tier}.{stage} is not a lifecycle stage; expected one of "
            f"{', '.join(LIFECYCLE_STAGES)}"
            for stage in row
            if stage not in LIFECYCLE_STAGES
        ]
    return problems


def _tier_basis(cfg: dict) -> list[str]:
    if cfg["tiers"]["by"] != "historical_value" or cfg["data"]["mapping"]["amount"] is not None:
        return []
    return [
        "tiers.by is 'historical_value'; expected clv or margin_clv with data.mapping.amount "
        "null (a log without amounts has no value to date)"
    ]


def _lifecycle(cfg: dict) -> list[str]:
    """``lost`` is tested before ``at_risk``: its limits must be the stricter ones."""
    rules = cfg["tiers"]["lifecycle"]
    problems = []
    if rules["lost_p_alive"] > rules["risk_p_alive"]:
        problems.append(
            f"tiers.lifecycle.lost_p_alive is {rules['lost_p_alive']!r}; expected at most "
            f"tiers.lifecycle.risk_p_alive ({rules['risk_p_alive']!r})"
        )
    if rules["lost_churn"] < rules["risk_churn"]:
        problems.append(
            f"tiers.lifecycle.lost_churn is {rules['lost_churn']!r}; expected at least "
            f"tiers.lifecycle.risk_churn ({rules['risk_churn']!r})"
        )
    return problems


def _validation_cutoffs(cfg: dict) -> list[str]:
    """The latest cutoffs validate the churn model: one at least must be left to train on."""
    n = cfg["churn"]["validation_cutoffs"]
    cutoffs = cfg["features"]["train_cutoffs"] + cfg["features"]["selection_cutoffs"]
    if n < cutoffs:
        return []
    return [
        f"churn.validation_cutoffs is {n}; expected fewer than the {cutoffs} training cutoffs "
        "(features.train_cutoffs + features.selection_cutoffs): one must be left to train on"
    ]


def _calibration_prior(cfg: dict) -> list[str]:
    churn = cfg["churn"]
    if churn["calibration_prior"] is None or churn["calibration"] == "platt":
        return []
    return [
        f"churn.calibration_prior is {churn['calibration_prior']!r}; expected null with "
        f"churn.calibration {churn['calibration']!r} (only platt takes a prior)"
    ]


def _drift_levels(cfg: dict) -> list[str]:
    drift = cfg["retrain"]["drift"]
    if drift["warn"] <= drift["breach"]:
        return []
    return [
        f"retrain.drift.warn is {drift['warn']!r}; expected at most retrain.drift.breach "
        f"({drift['breach']!r})"
    ]


# (the keys a rule reads, the rule): a rule runs only when those keys are valid themselves
RULES: tuple[tuple[tuple[str, ...], Callable[[dict], list[str]]], ...] = (
    (
        (
            "data.calibration_end",
            "data.holdout_end",
            "data.scoring_date",
            "data.rules.start",
            "data.rules.end",
        ),
        lambda cfg: date_problems(cfg["data"]),
    ),
    (("data.format", "data.header", "data.names", "data.mapping"), _column_names),
    (("tiers.method", "tiers.names", "tiers.bounds"), _tiers),
    (("tiers.lifecycle",), _lifecycle),
    (("tiers.value_matrix",), _value_matrix),
    (("tiers.names", "tiers.actions"), _actions),
    (("tiers.by", "data.mapping.amount"), _tier_basis),
    (
        ("churn.validation_cutoffs", "features.train_cutoffs", "features.selection_cutoffs"),
        _validation_cutoffs,
    ),
    (("churn.calibration", "churn.calibration_prior"), _calibration_prior),
    (("retrain.drift.warn", "retrain.drift.breach"), _drift_levels),
)

# --- checking -------------------------------------------------------------------------------


def validate(cfg: Any, source: str = "config") -> None:
    """Check a composed config (plain data or an OmegaConf config); a :class:`CvmError` that
    starts with ``source`` and lists every problem."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    found = problems(cfg)
    if len(found) == 1:
        raise CvmError(f"{source}: {found[0]}")
    if found:
        raise CvmError(f"{source}: {len(found)} config problems:\n  " + "\n  ".join(found))


def problems(cfg: Any) -> list[str]:
    """Every problem of ``cfg``: keys first (type, range, missing, unknown), then the rules."""
    found: list[tuple[str, str]] = []
    _check(SCHEMA, cfg, "", found)
    bad = [key for key, _ in found]
    for keys, rule in RULES:
        if not any(_related(b, k) for b in bad for k in keys):
            found += [("", problem) for problem in rule(cfg)]
    return [problem for _, problem in found]


def _related(a: str, b: str) -> bool:
    """One key is the other, or inside it (``""`` is the whole config)."""
    return a == b or not a or not b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _check(spec: Any, value: Any, key: str, found: list[tuple[str, str]]) -> None:
    if isinstance(spec, OrNull):
        if value is not None:
            _check_section(spec.section, value, key, found)
    elif isinstance(spec, dict):
        _check_section(spec, value, key, found)
    elif isinstance(spec, Variant):
        choice = value.get(spec.by) if isinstance(value, Mapping) else None
        if choice in spec.options:
            _check_section({spec.by: Enum((choice,))} | spec.options[choice], value, key, found)
        else:
            allowed = Enum(tuple(spec.options))
            found.append((key, f"{key}.{spec.by} is {choice!r}; expected {allowed.expected()}"))
    elif isinstance(spec, MapOf):
        if not isinstance(value, Mapping) or len(value) < spec.min_len:
            found.append((key, f"{key} is {value!r}; expected {spec.what}"))
        else:
            for name, entry in value.items():
                _check_section(spec.entry, entry, f"{key}.{name}", found)
    elif not ((value is None and spec.null) or spec.accepts(value)):
        null = " or null" if spec.null else ""
        found.append((key, f"{key} is {value!r}; expected {spec.expected()}{null}"))


def _check_section(section: dict, value: Any, key: str, found: list[tuple[str, str]]) -> None:
    where = key or "the config"
    if not isinstance(value, Mapping):
        found.append(
            (key, f"{where} is {value!r}; expected a section with keys {', '.join(section)}")
        )
        return
    for name in value:
        if name not in section:
            dotted = f"{key}.{name}" if key else str(name)
            found.append(
                (dotted, f"{dotted} is not a config key; {where} has the keys {', '.join(section)}")
            )
    for name, spec in section.items():
        dotted = f"{key}.{name}" if key else name
        if name in value:
            _check(spec, value[name], dotted, found)
        else:
            found.append((dotted, f"{dotted} is missing; expected {_expected(spec)}"))


def _expected(spec: Any) -> str:
    if isinstance(spec, OrNull):
        return "a section or null"
    if isinstance(spec, dict | Variant):
        return "a section"
    if isinstance(spec, MapOf):
        return spec.what
    return spec.expected() + (" or null" if spec.null else "")
