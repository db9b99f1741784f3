"""Every config key is checked for type and range, and the keys against each other, when the
config is composed and when a command loads it: a bad value stops the command at once, with
exit 2 and a message naming the key, the value and what is allowed."""

from __future__ import annotations

import copy
import itertools
import shutil
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from pipeline import backtest, config, config_check
from pipeline.errors import CvmError
from tests.conftest import REPO, run_cvm

COMMITTED = yaml.safe_load((REPO / "params.yaml").read_text())


def params(**changes) -> dict:
    """The committed params with ``changes`` (dotted key → value; ``...`` deletes the key)."""
    cfg = copy.deepcopy(COMMITTED)
    for key, value in changes.items():
        *parents, last = key.split(".")
        section = cfg
        for name in parents:
            section = section[name]
        if value is ...:
            del section[last]
        else:
            section[last] = value
    return cfg


def message(cfg: dict) -> str:
    with pytest.raises(CvmError) as err:
        config_check.validate(cfg, "params.yaml")
    return str(err.value)


# (key, a bad value, what is allowed): each value type of the schema at least once
BAD_VALUES = [
    # integers: text, floats (even integral), booleans and out-of-range values refused
    ("clv.prediction.horizon_days", "abc", "an integer > 0"),
    ("clv.prediction.horizon_days", 0, "an integer > 0"),
    ("clv.sampler.draws", 1000.0, "an integer >= 1"),
    ("seed", True, "an integer in [0, 2147483647]"),
    ("churn.seed", -1, "an integer in [0, 2147483647]"),
    ("engine.threads", "abc", "an integer >= 1"),
    ("churn.max_depth", 0, "an integer >= -1 other than 0"),
    # numbers: integers are fine (see the valid cases), booleans, text and NaN are not
    ("churn.learning_rate", 0, "a number > 0"),
    ("churn.feature_fraction", 1.5, "a number in (0, 1]"),
    ("clv.prediction.interval", True, "a number in (0, 1)"),
    ("clv.sampler.target_accept", "0.8", "a number in (0, 1)"),
    ("data.rules.extreme_factor", float("nan"), "a number > 1"),
    ("retrain.feed.max_quarantine_share", 2, "a number in [0, 1]"),
    # booleans
    ("export.csv_guard_formulas", "yes", "true or false"),
    ("churn.shift_to_target", 1, "true or false"),
    # choices
    ("clv.method", "advi", "one of map, nuts"),
    ("retrain.drift.action", "ignore", "one of report, block, fail"),
    ("engine.name", "polars", "one of duckdb, spark"),
    # dates
    ("data.calibration_end", "30/09/1997", "a date YYYY-MM-DD"),
    ("data.calibration_end", None, "a date YYYY-MM-DD"),
    ("data.rules.start", "1997-02-30", "a date YYYY-MM-DD or null"),
    # lists
    (
        "features.windows_days",
        [30, 30, 90],
        "a non-empty list, strictly increasing, each an integer > 0",
    ),
    ("features.windows_days", [], "a non-empty list"),
    ("churn.exclude", "customer_id", "a list, each a column name"),
    ("tiers.names", ["gold", "gold", "silver", "bronze"], "without repeats"),
    ("retrain.drift.features", [1, 2], "a list, each a column name or null"),
    # optional values: null is allowed, a bad value is not
    ("clv.prediction.max_draws", 0, "an integer > 0 or null"),
    ("data.mapping.amount", 3, "a column name or null"),
    ("clv.prediction.value_per_purchase", -1, "a number > 0 or null"),
    # text and paths
    ("paths.clean", "", "a path"),
    ("retrain.work_dir", None, "a path"),
    ("data.delimiter", ";;", "a single character"),
    ("engine.memory_limit", "lots", "a size such as 2GB, 512MB or 80%"),
    ("report.currency", 1, "a text"),
    ("report.contacts_per_action", -1, "an integer in [0, 1000]"),
    # a mapping of user-named sections, and a section where a value belongs
    ("retrain.promotion.metrics", {}, "a mapping of metric names to"),
    ("retrain.promotion.metrics.churn_brier.tolerance", -0.1, "a number >= 0"),
    ("retrain.promotion.metrics.churn_brier.better", "up", "one of higher, lower"),
    ("tiers.lifecycle", 3, "a section with keys new_days, lost_p_alive"),
    # formats and metric paths the stages would only find wrong later
    ("data.mapping.timestamp_format", "%Q", "iso or a strftime pattern such as %Y%m%d"),
    ("data.mapping.timestamp_format", "ISO", "iso or a strftime pattern"),
    ("data.mapping.timestamp_format", "%D", "iso or a strftime pattern"),
    ("retrain.promotion.metrics.churn_brier.path", "churn.nothing.roc_auc", "a metric of"),
    ("retrain.promotion.metrics.churn_brier.path", "churn.recency_days.brier", "a metric of"),
]


@pytest.mark.parametrize(("key", "value", "allowed"), BAD_VALUES)
def test_a_bad_value_is_named_with_what_is_allowed(key, value, allowed):
    text = message(params(**{key: value}))
    assert text.startswith(f"params.yaml: {key} is {value!r}; expected ")
    assert allowed in text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("churn.learning_rate", 1),  # an integer where a number is expected
        ("clv.prediction.max_draws", None),
        ("data.rules.start", date(1997, 1, 1)),  # an unquoted YAML date
        ("engine.memory_limit", "512 MiB"),
        (
            "retrain.promotion.metrics",
            {"auc": COMMITTED["retrain"]["promotion"]["metrics"]["churn_roc_auc"]},
        ),
        ("churn.max_depth", 4),
        ("data.mapping.timestamp_format", "%-d.%-m.%Y %H:%M:%S.%f%z"),
        ("data.mapping.timestamp_format", "100%% on %Y-%m-%d"),
        ("retrain.promotion.metrics.churn_brier.path", "churn.clv_p_no_purchase.ece"),
        ("retrain.promotion.metrics.churn_brier.path", "clv.spend.aggregate_error_pct"),
    ],
)
def test_a_good_value_passes(key, value):
    config_check.validate(params(**{key: value}))


def test_the_spark_engine_has_its_own_keys():
    spark = config.compose(["engine=spark"], REPO / "conf")["engine"]
    config_check.validate(params(engine=spark))
    text = message(params(engine=spark | {"log_level": "LOUD", "conf": {"a": [1]}, "threads": 2}))
    assert "engine.log_level is 'LOUD'; expected one of ALL, DEBUG" in text
    assert "engine.conf is {'a': [1]}; expected a mapping of setting names to text" in text
    assert "engine.threads is not a config key; engine has the keys name, master, app_name" in text


def test_missing_and_unknown_keys_are_named_with_the_allowed_ones():
    text = message(params(**{"clv.sampler.chains": ..., "data.mapping.store": "shop", "extra": 1}))
    assert "clv.sampler.chains is missing; expected an integer >= 1" in text
    assert (
        "data.mapping.store is not a config key; data.mapping has the keys customer_id, "
        "timestamp, timestamp_format, amount, quantity, order_id, margin, cost"
    ) in text
    assert "extra is not a config key; the config has the keys data, clv, churn" in text
    assert message(None).startswith("params.yaml: the config is None; expected a section")


def test_every_problem_is_listed_at_once():
    text = message(
        params(**{"seed": "abc", "clv.sampler.draws": "abc", "data.scoring_date": "1997-01-01"})
    )
    assert text.startswith("params.yaml: 3 config problems:\n")
    assert "  seed is 'abc'" in text and "  clv.sampler.draws is 'abc'" in text
    assert "  data.scoring_date is '1997-01-01'" in text


# (changes, the problem): every rule between keys
RULE_CASES = [
    (
        {"report.not_contacted": ["let go"]},
        "report.not_contacted names 'let go'; expected one of the recommended actions of "
        "tiers.actions (",
    ),
    (
        {"data.scoring_date": "1997-06-30"},
        "data.scoring_date is '1997-06-30'; expected a date on or after data.calibration_end "
        "('1997-09-30')",
    ),
    (
        {"data.holdout_end": "1997-09-30"},
        "data.holdout_end is '1997-09-30'; expected a date after data.calibration_end "
        "('1997-09-30')",
    ),
    (
        {"data.rules.start": "1998-06-30"},
        "data.rules.end is '1998-06-30'; expected a date after data.rules.start ('1998-06-30')",
    ),
    (
        {"data.rules.end": "1998-03-31"},
        "data.rules.end is '1998-03-31'; expected a date on or after data.holdout_end "
        "('1998-06-30')",
    ),
    (
        {"data.rules.end": "1998-03-31", "data.holdout_end": None},
        "data.rules.end is '1998-03-31'; expected a date on or after data.scoring_date",
    ),
    (
        {"data.rules.end": "1997-09-30", "data.holdout_end": None, "data.scoring_date": None},
        "data.rules.end is '1997-09-30'; expected a date after data.calibration_end",
    ),
    (
        {"data.rules.start": "1997-09-30", "data.rules.end": None},
        "data.calibration_end is '1997-09-30'; expected a date after data.rules.start",
    ),
    (
        {"data.header": False},
        "data.names is None; expected the column names: data.header is false",
    ),
    (
        {"data.header": False, "data.names": ["customer_id", "date", "dollar_value"]},
        "data.mapping.quantity is 'number_of_cds'; expected one of data.names",
    ),
    (
        {"tiers.bounds": [0.95, 0.5]},
        "tiers.names is ['platinum', 'gold', 'silver', 'bronze']; expected one name more than "
        "tiers.bounds [0.95, 0.5]",
    ),
    ({"tiers.bounds": [0.95, 0.5, 0.8]}, "expected strictly decreasing bounds"),
    (
        {"tiers.bounds": [500.0, 200.0, 50.0]},
        "tiers.bounds is [500.0, 200.0, 50.0]; expected quantiles in (0, 1)",
    ),
    (
        {"tiers.lifecycle.lost_p_alive": 0.6},
        "tiers.lifecycle.lost_p_alive is 0.6; expected at most tiers.lifecycle.risk_p_alive (0.5)",
    ),
    (
        {"tiers.lifecycle.lost_churn": 0.5},
        "tiers.lifecycle.lost_churn is 0.5; expected at least tiers.lifecycle.risk_churn (0.6)",
    ),
    (
        {"churn.validation_cutoffs": 6},
        "churn.validation_cutoffs is 6; expected fewer than the 6 training cutoffs",
    ),
    (
        {"churn.calibration": "isotonic"},
        "churn.calibration_prior is 'btyd_p_no_purchase'; expected null with churn.calibration "
        "'isotonic'",
    ),
    (
        {"retrain.drift.warn": 0.3},
        "retrain.drift.warn is 0.3; expected at most retrain.drift.breach (0.25)",
    ),
    (
        {"retrain.drift.dated": ["tenure_days", "age_days"]},
        "retrain.drift.dated names age_days; expected columns of retrain.drift.features",
    ),
]


@pytest.mark.parametrize(("changes", "problem"), RULE_CASES)
def test_a_rule_between_keys_is_checked(changes, problem):
    assert problem in message(params(**changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"data.holdout_end": None, "data.scoring_date": None, "data.rules.end": None},
        {"data.scoring_date": "1997-09-30"},  # scoring at the calibration cutoff
        {"tiers.method": "threshold", "tiers.bounds": [500, 200.0, 50.0]},
        {
            "data.header": False,
            "data.names": ["x", "customer_id", "date", "n", "number_of_cds", "dollar_value"],
        },
        {"churn.calibration": "isotonic", "churn.calibration_prior": None},
    ],
)
def test_a_config_that_keeps_the_rules_passes(changes):
    config_check.validate(params(**changes))


def test_a_rule_is_not_tried_on_a_bad_value():
    text = message(params(**{"tiers.bounds": "abc", "data.scoring_date": 19970930}))
    assert text.count("\n  ") == 2  # the two type problems, no rule failing on them
    assert "tiers.bounds is 'abc'" in text and "data.scoring_date is 19970930" in text


def test_the_dates_a_command_sets_at_run_time_keep_the_rules():
    cfg = config.load_params(REPO / "params.yaml")
    settings = config.Settings(cfg)
    with pytest.raises(CvmError, match=r"data.rules.end is '1998-06-30'; expected a date on or"):
        settings.with_data(holdout_end=date(1998, 7, 7), scoring_date=date(1998, 7, 7))
    with pytest.raises(CvmError, match=r"^with data.scoring_date=1997-01-31: data.scoring_date"):
        settings.with_data(scoring_date=date(1997, 1, 31))
    assert settings.with_data(scoring_date=date(1998, 1, 31)).dates["scoring_date"] == date(
        1998, 1, 31
    )
    with pytest.raises(CvmError, match=r"^--as-of 1998-07-01 \(the run's data.scoring_date\): "):
        config.check_as_of(cfg, date(1998, 7, 1))
    config.check_as_of(cfg, date(1998, 6, 30))


# --- the configs of the repository validate -------------------------------------------------


def test_the_committed_params_validate():
    config_check.validate(COMMITTED)
    config.load_params(REPO / "params.yaml")


def _group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize(
    "choice",
    list(
        itertools.product(
            _group_options("data"),
            _group_options("clv"),
            _group_options("engine"),
            _group_options("tiers"),
        )
    ),
    ids="-".join,
)
def test_every_config_group_option_composes_to_a_valid_config(choice):
    overrides = [
        f"{g}={o}" for g, o in zip(("data", "clv", "engine", "tiers"), choice, strict=True)
    ]
    settings = config.Settings(_omega(config.compose(overrides, REPO / "conf")))
    assert settings.features and settings.rules and settings.mapping and settings.catalog


def test_every_backtest_case_composes_to_valid_settings(monkeypatch):
    monkeypatch.chdir(REPO)
    suite, logs = backtest.load_suite("standard")
    for spec in logs:
        source = None if spec.simulate is None else Path("simulated/transactions.parquet")
        for cutoff in spec.cutoffs:
            settings = backtest.case_settings(suite, spec, source, cutoff)
            assert settings.dates["calibration_end"] == cutoff
            # the settings every stage builds
            assert settings.clv and settings.churn and settings.scoring and settings.catalog


def _omega(tree: dict):
    from omegaconf import OmegaConf

    return OmegaConf.create(tree)


# --- through the command line ---------------------------------------------------------------


@pytest.mark.parametrize("group", ["tiers", "clv"])
def test_a_config_group_set_to_null_is_refused_in_words(tmp_path, group):
    with pytest.raises(CvmError) as err:
        config.compose([f"{group}=null"], REPO / "conf")
    assert str(err.value) == (
        f"{REPO / 'conf'} with {group}=null: cannot compose the config: Config group override "
        "must be a string or a list. Got NoneType"
    )


def test_cvm_params_refuses_a_bad_override_and_leaves_params_yaml(tmp_path):
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    before = (tmp_path / "params.yaml").read_bytes()
    done = run_cvm(tmp_path, "params", "clv.prediction.horizon_days=abc")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "cvm: error: conf with clv.prediction.horizon_days=abc: clv.prediction.horizon_days is "
        "'abc'; expected an integer > 0\n"
    )
    assert (tmp_path / "params.yaml").read_bytes() == before
    assert not (tmp_path / "conf/project").exists()  # nor made it the project's choice


@pytest.fixture
def bad_params(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(params(**{"clv.prediction.horizon_days": "abc"})))
    return path


@pytest.mark.parametrize(
    "command",
    [
        ("stage", "score"),
        ("stage", "ingest"),
        ("run",),
        ("score",),
        ("retrain",),
    ],
    ids=" ".join,
)
def test_a_command_refuses_a_bad_params_file_at_once(tmp_path, bad_params, command):
    started = time.monotonic()
    done = run_cvm(tmp_path, *command, "--params", str(bad_params))
    assert time.monotonic() - started < 30
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"cvm: error: {bad_params}: clv.prediction.horizon_days is 'abc'; expected an integer > 0\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written


@pytest.mark.parametrize("command", ["score", "retrain"])
def test_an_as_of_date_after_the_accepted_rows_is_refused(tmp_path, command):
    done = run_cvm(
        tmp_path, command, "--params", str(REPO / "params.yaml"), "--as-of", "1998-07-31"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        "cvm: error: --as-of 1998-07-31 (the run's data.scoring_date): data.rules.end is "
        "'1998-06-30'; expected a date on or after data.scoring_date ('1998-07-31')"
    )
    assert list(tmp_path.iterdir()) == []
