"""`cvm retrain` week after week on a growing simulated log, and `cvm score` from the registry.

Real stages, a real MLflow store and registry in a temp directory, MAP fits. The weeks: the first
champion; a broken feed delivered three ways, then the good one; a re-run; a misconfigured
challenger; a week of shifted behaviour (drift), first with ``drift.action: fail``, then ``block``.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from models.simulate import SimulationSettings, simulate_log
from pipeline import config, database
from pipeline.cli import main
from pipeline.database import DatabaseSettings
from pipeline.io import numbers_only
from pipeline.retrain import run as retrain_run
from pipeline.stages.score import score as score_stage
from pipeline.tracking import Tracker
from tests.browser import render
from tests.conftest import REPO, readme_query
from tests.cvm_forks import start_holding_the_lock
from tests.html_tables import table_under

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

START = date(2023, 1, 2)
FIRST_AS_OF = START + timedelta(days=630)  # 2024-09-23, a Monday: one as-of date a week
BASE = {"r": 0.6, "alpha": 3.0, "a": 0.7, "b": 4.0}
SHIFTED = {"r": 0.6, "alpha": 0.6, "a": 0.7, "b": 4.0}  # five times the purchase rate
CHEAP_SPEND = (("p", 6.25), ("q", 3.74), ("gamma", 30.0))  # half the spend per purchase
NAMES = ("cvm-clv", "cvm-churn", "cvm-scorer")
RULE_NAMES = (
    "churn_roc_auc",
    "churn_brier",
    "clv_purchases_mae",
    "clv_purchases_gini",
)  # the scorer's aliases move with the pair's

FAST = (
    "data=simulated",
    "data.format=csv",
    "clv.method=map",
    # these tests are about retraining and publishing, not the purchase model's choice (tested
    # in tests/models/test_choice.py and by the suite's default run): one candidate, no season
    "clv.candidates=[bgnbd]",
    "clv.season=false",
    "features.churn_horizon_days=56",
    "features.train_cutoffs=2",
    "features.train_cutoff_step_days=14",
    "features.windows_days=[30,90]",
    "churn.min_child_samples=100",
    "churn.n_estimators=300",
    "churn.learning_rate=0.1",
    "churn.early_stopping_rounds=20",
    "churn.num_threads=1",  # OpenMP threads competing with other busy processes crawl
    # adjacent weeks' models differ by about 0.01 ROC-AUC on the same window
    "retrain.promotion.metrics.churn_roc_auc.tolerance=0.02",
    "retrain.promotion.metrics.churn_brier.tolerance=0.01",
)
# a misconfigured experiment: one two-leaf tree, no CLV prior in the calibration
BAD_CHURN = ("churn.n_estimators=1", "churn.num_leaves=2", "churn.calibration_prior=null")


def as_of(week: int) -> date:
    return FIRST_AS_OF + timedelta(days=7 * week)


def _simulate(params: dict, seed: int, customers: int, **kw) -> pd.DataFrame:
    settings = SimulationSettings(
        customers=customers, params=tuple(params.items()), seed=seed, **kw
    )
    return simulate_log(settings)[0]


def simulated_history(customers: int = 2500, seed: int = 11) -> pd.DataFrame:
    """Customers arriving every day from START, observed for 700 days (BG/NBD, Gamma-Gamma)."""
    return _simulate(BASE, seed, customers, start=START, cohort_days=690, horizon_days=700)


def until(log: pd.DataFrame, day: date) -> pd.DataFrame:
    return log[log.timestamp < pd.Timestamp(day + timedelta(days=1))]


def shifted_history(base: pd.DataFrame, day: date, customers: int, seed: int) -> pd.DataFrame:
    """The log up to ``day`` whose last week's activity follows other parameters: existing
    customers buy five times as often, and a campaign brings 1,500 new bargain hunters."""
    shift = pd.Timestamp(day - timedelta(days=6))
    faster = _simulate(SHIFTED, seed, customers, start=START, cohort_days=690, horizon_days=700)
    newcomers = _simulate(
        SHIFTED,
        seed + 1,
        1500,
        start=day - timedelta(days=6),
        cohort_days=7,
        horizon_days=14,
        spend=CHEAP_SPEND,
    ).assign(customer_id=lambda f: "N" + f.customer_id)
    log = pd.concat([base[base.timestamp < shift], faster[faster.timestamp >= shift], newcomers])
    return until(log, day)


def write(log: pd.DataFrame, path: Path) -> Path:
    """The log as a CSV file in time order, as a shop's export writes it."""
    log = log.sort_values(["timestamp", "customer_id"], kind="stable")
    log[["customer_id", "timestamp", "amount"]].to_csv(path, index=False)
    return path


def state(project: Path) -> dict:
    """Everything a failed or idle run must leave alone: the scored table, its segment summary
    and KPI history (bytes), its rows in
    the database, the aliases, the registered versions and the completed-run records."""
    uri = f"sqlite:///{project}/mlflow.db"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    runs = project / "artifacts/retrain/runs"
    db_file = project / DEFAULT_DATABASE.removeprefix("duckdb:///")
    settings = DatabaseSettings(f"duckdb:///{db_file}", "cvm", {"customers": "customers"})
    return {
        "scored": {
            p.name: p.read_bytes()
            for p in sorted((project / "data/published").glob("customers*"))
            if p.is_file() and p != db_file  # its bytes move with any write: its rows below
        },
        "database": db_file.is_file()
        and database.read(settings, "customers").sort_values("customer_id").to_csv(index=False),
        "aliases": {n: dict(client.get_registered_model(n).aliases) for n in NAMES},
        "versions": {n: len(client.search_model_versions(f"name='{n}'")) for n in NAMES},
        "records": {p.parent.name: p.read_text() for p in sorted(runs.glob("*/summary.json"))},
    }


def summary(project: Path) -> dict:
    return json.loads((project / "reports/retrain_summary.json").read_text())


def champions(project: Path, alias: str = "champion") -> dict[str, str]:
    uri = f"sqlite:///{project}/mlflow.db"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    return {n: str(client.get_registered_model(n).aliases.get(alias)) for n in NAMES}


def assert_rule_followed(s: dict) -> None:
    """Promoted exactly when no metric is worse than the champion's beyond its tolerance,
    recomputed here from the figures, and drift did not block it."""
    worse = []
    for row in s["evaluation"]["metrics"]:
        new, old, tol = row["challenger"], row["champion"], row["tolerance"]
        slack = tol * abs(old) if row["relative"] else tol
        if row["better"] == "higher" and new < old - slack:
            worse.append(row["metric"])
        if row["better"] == "lower" and new > old + slack:
            worse.append(row["metric"])
    blocked = s["drift"]["status"] == "breach" and s["drift"]["action"] == "block"
    assert s["decision"]["promoted"] == (not worse and not blocked), s["decision"]
    assert sorted(s["decision"].get("worse", [])) == sorted(worse)


def assert_table_matches_champions(project: Path, log: Path, day: date) -> None:
    """The scored table is what `cvm score` makes of the same log with the current champions."""
    table = pd.read_parquet(project / "data/published/customers.parquet")
    versions = champions(project)
    assert (table.clv_model == f"cvm-clv/{versions['cvm-clv']}").all()
    assert (table.churn_model == f"cvm-churn/{versions['cvm-churn']}").all()
    assert (table.as_of_date == pd.Timestamp(day)).all()
    assert_database_holds(DEFAULT_DATABASE, table)  # published there too
    production = (project / DEFAULT_DATABASE.removeprefix("duckdb:///")).read_bytes()
    out = project / "check" / "customers"
    assert main(["score", "--log", str(log), "--as-of", str(day), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(table, pd.read_parquet(out.with_suffix(".parquet")))
    # a table written elsewhere leaves the production tables alone
    assert (project / DEFAULT_DATABASE.removeprefix("duckdb:///")).read_bytes() == production


DEFAULT_DATABASE = (
    "duckdb:///data/published/customers.duckdb"  # export.database.url, in the project
)


def assert_database_holds(url: str, table: pd.DataFrame) -> None:
    """The database at ``url`` holds ``table`` and its segment summary, as readers see them."""
    tables = {"customers": "customers", "segments": "customer_segments"}
    settings = DatabaseSettings(url, "cvm", tables)
    found = database.read(settings, "customers").sort_values("customer_id", ignore_index=True)
    expected = table.sort_values("customer_id", ignore_index=True)
    assert found.customer_id.tolist() == expected.customer_id.tolist()
    for column in ("clv", "churn_probability", "p_alive"):
        np.testing.assert_allclose(found[column].to_numpy(float), expected[column].to_numpy(float))
    assert (found.clv_model == expected.clv_model.iloc[0]).all()
    segments = database.read(settings, "segments")
    assert (pd.to_datetime(segments.as_of_date) == expected.as_of_date.iloc[0]).all()  # a DATE
    assert segments.groupby("view").customers.sum().eq(len(table)).all()


def retrain(log: Path, day: date, params: str = "params.yaml") -> int:
    return main(["retrain", "--log", str(log), "--as-of", str(day), "--params", params])


def compose(project: Path, name: str, *overrides: str) -> str:
    cfg = config.compose(
        [*FAST, f"tracking.uri=sqlite:///{project}/mlflow.db", *overrides], REPO / "conf"
    )
    config.write_params(cfg, project / name)
    return name


def test_weekly_retraining_promotes_only_better_challengers(
    make_params, tmp_path, capsys, postgres
):
    project = tmp_path
    make_params(*FAST, f"data.path={project}/log.csv")
    # this process ran something in another tracking store before (a notebook, another job)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/elsewhere.db")
    with mlflow.start_run(experiment_id="0"):  # the default experiment of any new store
        pass
    base = simulated_history()
    table: list[dict] = []

    def record(week: int, delivery: str, code: int) -> dict:
        s = summary(project) if code != 3 else {"status": "nothing_to_do"}
        rows = {r["metric"]: r for r in (s.get("evaluation") or {}).get("metrics", [])}
        psi = [
            row["psi"]
            for kind in ("features", "scores")
            for row in (s.get("drift") or {}).get(kind, {}).values()
            if row.get("psi") is not None
        ]
        table.append(
            {
                "week": week,
                "as_of": str(as_of(week)),
                "delivery": delivery,
                "exit": code,
                "status": s["status"],
                "champion_before": (s.get("champion_before") or {}).get("clv"),
                "challenger": (s.get("challenger") or {}).get("clv"),
                "champion_after": champions(project)["cvm-clv"],
                "auc_champion": (rows.get("churn_roc_auc") or {}).get("champion"),
                "auc_challenger": (rows.get("churn_roc_auc") or {}).get("challenger"),
                "mae_champion": (rows.get("clv_purchases_mae") or {}).get("champion"),
                "mae_challenger": (rows.get("clv_purchases_mae") or {}).get("challenger"),
                "drift": (s.get("drift") or {}).get("status"),
                "max_psi": max(psi) if psi else None,
                "seconds": s.get("seconds"),
            }
        )
        return s

    # week 0: no champion yet; the first challenger becomes it. The run reads its config and
    # changes nothing in it (the stages get their dates and catalog as values)
    log0 = write(until(base, as_of(0)), project / "log0.csv")
    cfg = config.load_params(project / "params.yaml")
    before_run = OmegaConf.to_container(cfg)
    code, _ = retrain_run(cfg, log0, as_of(0))
    assert code == 0
    assert OmegaConf.to_container(cfg) == before_run
    s = record(0, "good", 0)
    assert s["decision"]["reason"].startswith("no champion yet")
    assert s["drift"]["status"] == "skipped"
    assert champions(project) == {"cvm-clv": "1", "cvm-churn": "1", "cvm-scorer": "1"}
    assert_table_matches_champions(project, log0, as_of(0))
    # cvm score publishes to the PostgreSQL server the downstream teams read, when configured
    pg = compose(project, "pg.yaml", f"export.database.url='{postgres}'")
    assert main(["score", "--log", str(log0), "--as-of", str(as_of(0)), "--params", pg]) == 0
    assert_database_holds(postgres, pd.read_parquet(project / "data/published/customers.parquet"))
    # the score stage, on the files those registered models were saved from, scores alike
    settings = config.Settings(cfg)
    staged = settings.catalog.under(project / "artifacts/retrain/staging/project")
    staged = staged.replace(
        scored=project / "stage" / "customers", score_summary=project / "s.json"
    )
    score_stage(settings, staged, Tracker({"enabled": False}))
    labels = ["clv_model", "churn_model"]  # registry versions here, content hashes there
    published = pd.read_parquet(project / "data/published/customers.parquet")
    stage_table = pd.read_parquet(project / "stage/customers.parquet")
    pd.testing.assert_frame_equal(published.drop(columns=labels), stage_table.drop(columns=labels))
    assert stage_table.clv_model.str.startswith("cvm-clv@").all()
    # and the scorer registered with the champions, on the same features, gives the same rows
    mlflow.set_registry_uri(f"sqlite:///{project}/mlflow.db")
    scorer = mlflow.pyfunc.load_model("models:/cvm-scorer@champion")
    rows = scorer.predict(pd.read_parquet(staged.features_scoring))
    pd.testing.assert_frame_equal(rows, published, check_dtype=False)

    # week 1: a broken feed, three ways; each fails before touching anything
    good1 = until(base, as_of(1))
    before = state(project)
    text = write(good1, project / "full1.csv").read_bytes()
    broken = {
        "truncated": text[: int(len(text) * 0.6)],  # the export died mid-file
        "garbage": write(
            good1.assign(
                amount=good1.amount.astype(object).where(np.arange(len(good1)) % 3 > 0, "n/a")
            ),
            project / "tmp.csv",
        ).read_bytes(),  # a third of the amounts unreadable
        "history_lost": write(
            good1[good1.timestamp >= pd.Timestamp(as_of(1) - timedelta(days=120))],
            project / "tmp.csv",
        ).read_bytes(),  # only the last 120 days: a delta sent as the full log
    }
    messages = {
        "truncated": "days before the as-of date",  # the export is in time order
        "garbage": "were quarantined",
        "history_lost": "lost",
    }
    for delivery, content in broken.items():
        path = project / f"log1_{delivery}.csv"
        path.write_bytes(content)
        capsys.readouterr()
        assert retrain(path, as_of(1)) == 2, delivery
        err = capsys.readouterr().err
        assert "broken feed" in err and messages[delivery] in err, err
        assert "left as they were" in err
        s = record(1, delivery, 2)
        assert s["status"] == "failed" and s["error"]["step"] == "feed_checks"
        assert state(project) == before, f"{delivery}: a failed run changed the outputs"

    # the good delivery, but the scored table cannot be replaced (a directory took the CSV's
    # name): the run fails at its very last step; the aliases go back, the old table stays
    log1 = write(good1, project / "log1.csv")
    csv = project / "data/published/customers.csv"
    saved = csv.read_bytes()
    csv.unlink()
    (csv / "taken").mkdir(parents=True)
    before = state(project)
    assert retrain(log1, as_of(1)) == 1
    s = record(1, "good, table blocked", 1)
    assert s["status"] == "failed" and s["error"]["step"] == "publish"
    after = state(project)
    assert {k: after[k] for k in ("scored", "database", "aliases", "records")} == {
        k: before[k] for k in ("scored", "database", "aliases", "records")
    }
    # the challenger was registered before the failure, but never got an alias
    assert after["versions"] == {n: before["versions"][n] + 1 for n in NAMES}
    (csv / "taken").rmdir()
    csv.rmdir()
    csv.write_bytes(saved)

    # the good delivery: the challenger is promoted if it is not worse
    assert retrain(log1, as_of(1)) == 0
    s = record(1, "good", 0)
    assert_rule_followed(s)
    assert s["decision"]["promoted"] and s["drift"]["status"] == "ok"
    forms = {name: row["form"] for name, row in s["drift"]["features"].items()}
    assert forms["tenure_days"] == forms["recency_days"] == "date" and forms["frequency"] == "value"
    assert champions(project) == {"cvm-clv": "3", "cvm-churn": "3", "cvm-scorer": "3"}
    assert_table_matches_champions(project, log1, as_of(1))
    # the challenger's metrics are its own evaluation's numbers, the champion's kept apart
    reports = project / "artifacts/retrain/staging/project/reports"
    evaluation = json.loads((reports / "evaluation.json").read_text())
    metrics = json.loads((reports / "evaluation_metrics.json").read_text())
    assert metrics == numbers_only(evaluation)

    # the same week again: nothing to do, nothing touched
    before = state(project)
    capsys.readouterr()
    assert retrain(log1, as_of(1)) == 3
    assert "nothing to do" in capsys.readouterr().out
    record(1, "re-run", 3)
    assert state(project) == before

    # week 2: a misconfigured challenger is worse: refused; the table is re-scored with the
    # champions at the new date
    log2 = write(until(base, as_of(2)), project / "log2.csv")
    bad = compose(project, "params_bad.yaml", f"data.path={log2}", *BAD_CHURN)
    assert retrain(log2, as_of(2), bad) == 4
    s = record(2, "bad config", 4)
    assert_rule_followed(s)
    assert not s["decision"]["promoted"] and "churn_roc_auc" in s["decision"]["worse"]
    assert s["challenger"] == {"clv": "4", "churn": "4", "scorer": "4"}
    assert champions(project) == {"cvm-clv": "3", "cvm-churn": "3", "cvm-scorer": "3"}
    assert champions(project, "challenger") == {"cvm-clv": "4", "cvm-churn": "4", "cvm-scorer": "4"}
    assert_table_matches_champions(project, log2, as_of(2))

    # week 3: shifted behaviour. With drift.action=fail the run stops before fitting anything
    log3 = write(shifted_history(base, as_of(3), 2500, 11), project / "log3.csv")
    before = state(project)
    fail = compose(project, "params_fail.yaml", "retrain.drift.action=fail")
    capsys.readouterr()
    assert retrain(log3, as_of(3), fail) == 2
    assert "drift" in capsys.readouterr().err
    s = record(3, "shifted, drift fails", 2)
    assert s["status"] == "failed" and s["error"]["step"] == "drift"
    assert s["drift"]["status"] == "breach"
    assert "feature tenure_days" in s["drift"]["breaches"]
    assert state(project) == before
    # with drift.action=block the challenger is fitted and evaluated, but not promoted
    block = compose(project, "params_block.yaml", "retrain.drift.action=block")
    assert retrain(log3, as_of(3), block) == 4
    s = record(3, "shifted, drift blocks", 4)
    assert_rule_followed(s)
    assert s["decision"].get("blocked_by_drift") and s["drift"]["status"] == "breach"
    assert s["drift"]["features"]["tenure_days"]["psi"] > 0.25
    assert champions(project) == {"cvm-clv": "3", "cvm-churn": "3", "cvm-scorer": "3"}
    assert_table_matches_champions(project, log3, as_of(3))

    # every decision is in MLflow: one retrain run per attempt, the stage runs its children
    uri = f"sqlite:///{project}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("cvm")
    runs = client.search_runs([experiment.experiment_id], "tags.`cvm.stage` = 'retrain'")
    decisions = sorted(r.data.tags.get("cvm.decision") for r in runs)
    weeks = {f"retrain {as_of(w)}" for w in range(4)}
    assert {r.info.run_name for r in runs} == weeks  # each named by the as-of date it ran for
    assert decisions.count("promoted") == 2 and decisions.count("kept") == 2
    assert decisions.count("failed") == 5
    for run in runs:  # the promotion table of every run that compared, the refused ones too
        if run.data.tags["cvm.decision"] in ("promoted", "kept"):
            path = mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="promotion_table.json", tracking_uri=uri
            )
            promotion = json.loads(Path(path).read_text())
            assert [row["metric"] for row in promotion["metrics"]] == list(RULE_NAMES)
            assert all(
                {"challenger", "champion", "limit", "worse"} <= set(r) for r in promotion["metrics"]
            )
            promoted = run.data.tags["cvm.decision"] == "promoted"
            assert promotion["decision"]["promoted"] == promoted
    promoted = next(r for r in runs if r.data.tags["cvm.decision"] == "promoted")
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{promoted.info.run_id}'"
    )
    assert {c.data.tags["cvm.stage"] for c in children} >= {
        "ingest",
        "features",
        "fit_clv",
        "train_churn",
        "evaluate",
    }
    # the KPI history: a snapshot per week published (week 0 scored again replaced its own),
    # the realised retention since the week before, every customer's move between tiers
    kpis = pd.read_parquet(project / "data/published/customers_kpis.parquet")
    everyone = kpis[kpis.dimension == "all"].set_index("as_of_date")
    assert [d.date() for d in everyone.index] == [as_of(w) for w in range(4)]
    assert everyone.retention_rate.iloc[1:].between(0.01, 0.99).all()
    assert everyone.retention_rate.isna().iloc[0] and everyone.customers.is_monotonic_increasing
    moves = pd.read_parquet(project / "data/published/customers_migration.parquet")
    moved = moves.groupby(["as_of_date", "dimension"]).customers.sum().unstack()
    assert (everyone.customers.iloc[1:] == moved.T).all().all()
    in_database = DatabaseSettings(DEFAULT_DATABASE, "cvm", {"kpis": "kpi_history"})
    assert len(database.read(in_database, "kpis")) == len(kpis)
    with duckdb.connect("data/published/customers.duckdb", read_only=True) as con:
        weekly = con.sql(readme_query("-- the realised weekly retention per value tier")).df()
    assert len(weekly) == 3 * 4 and weekly.retention_rate.between(0, 1).all()  # weeks 1-3
    # the report beside the table: the latest week against the week before, the decision
    report = project / "data/published/customers_report.html"
    page = report.read_text()
    assert "by cvm retrain" in page and "The challenger was not promoted" in page
    week3 = kpis[(kpis.dimension == "value_tier") & (kpis.as_of_date == pd.Timestamp(as_of(3)))]
    tiers = table_under(page, "Change since the previous table")
    assert {r["Value tier"]: int(r["Customers now"].replace(",", "")) for r in tiers} == dict(
        zip(week3.group, week3.customers, strict=True)
    )
    assert all(r[f"Customers {as_of(2)}"] for r in tiers)
    grid = table_under(page, "Migration between value tiers")
    counts = sum(int(v.replace(",", "")) for r in grid for k, v in list(r.items())[1:])
    tier_moves = moves[
        (moves.dimension == "value_tier") & (moves.as_of_date == pd.Timestamp(as_of(3)))
    ]
    assert counts == tier_moves.customers.sum()
    assert page.count("<svg") == 5  # the KPIs over the four weeks
    assert render(report, "report_retrain.png") == {"console": [], "fetched": []}
    scored_elsewhere = (project / "check/customers_report.html").read_text()
    assert "by cvm score" in scored_elsewhere
    assert "a table written with --out has no history" in scored_elsewhere
    metrics = client.get_run(promoted.info.run_id).data.metrics
    assert metrics["kpis_customers"] in set(everyone.customers)

    # a champion pair split by hand (as a kill while publishing once left it): refused by both
    uri = f"sqlite:///{project}/mlflow.db"
    registry = mlflow.MlflowClient(uri, registry_uri=uri)
    registry.set_registered_model_alias("cvm-churn", "champion", "1")
    for command in ("score", "retrain"):
        capsys.readouterr()
        assert main([command, "--log", str(log3), "--as-of", str(as_of(3))]) == 2
        err = capsys.readouterr().err
        assert "split champion pair" in err and "cvm-clv/3" in err and "cvm-churn/3" in err
    registry.set_registered_model_alias("cvm-churn", "champion", "3")
    # the scorer's champion fit from another pair: refused too
    registry.set_registered_model_alias("cvm-scorer", "champion", "4")
    capsys.readouterr()
    assert main(["score", "--log", str(log3), "--as-of", str(as_of(3))]) == 2
    err = capsys.readouterr().err
    assert "split champion pair" in err and "cvm-scorer/4" in err and "cvm-churn/4" in err
    registry.set_registered_model_alias("cvm-scorer", "champion", "3")
    assert registry.get_model_version("cvm-scorer", "3").tags["cvm.paired_with"] == (
        "cvm-clv/3,cvm-churn/3"
    )

    frame = pd.DataFrame(table)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print("\n" + frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def test_a_second_retrain_exits_with_the_lock_message_while_the_first_completes(
    make_params, tmp_path, capsys
):
    log = write(until(simulated_history(1500, seed=5), as_of(0)), tmp_path / "log.csv")
    params = make_params(*FAST, f"data.path={log}")
    lock_file = tmp_path / "artifacts/retrain/cvm.lock"
    first = start_holding_the_lock(tmp_path, lock_file, "retrain", "--params", str(params))
    try:
        assert main(["retrain", "--params", str(params)]) == 5
        err = capsys.readouterr().err
        assert "another cvm run is in progress" in err and f"pid {first.pid}" in err
        assert "cvm retrain" in err
        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert "promoted" in out
    history = (tmp_path / "artifacts/retrain/history.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in history] == ["promoted"]
    assert lock_file.read_text() == ""  # released


def test_score_needs_registered_champions(make_params, tmp_path, capsys):
    log = write(until(simulated_history(300, seed=2), as_of(0)), tmp_path / "log.csv")
    params = make_params(*FAST, f"data.path={log}")
    assert main(["score", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert "no version of cvm-clv, cvm-churn has the alias 'champion'" in err
    assert not (tmp_path / "data/published").exists()


def test_a_bad_drift_action_is_named(make_params, tmp_path, capsys):
    params = make_params(*FAST, "retrain.drift.action=ignore")
    assert main(["retrain", "--params", str(params)]) == 2
    assert "retrain.drift.action is 'ignore'; expected one of report, block, fail" in (
        capsys.readouterr().err
    )
