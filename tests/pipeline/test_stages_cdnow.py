"""`cvm run` end to end on the bundled CDNOW sample, recorded in a real MLflow store."""

import contextlib
import itertools
import json
import re

import mlflow
import pandas as pd
import pytest

from models.columns import MARGIN
from models.margin import MARGIN_COLUMNS
from models.promotion import PROMOTABLE, MetricRule, lookup
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


@pytest.fixture
def sample_run(pipeline_outputs):
    return pipeline_outputs


def test_ingest_keeps_every_sample_row(sample_run):
    report = json.loads((sample_run / "data/interim/ingest_report.json").read_text())
    assert report["rows_read"] == 6919 == report["rows_kept"] + report["rows_quarantined"]
    assert report["customers"] == 2357
    assert report["total_amount"] == pytest.approx(244091.94, abs=0.01)


def test_feature_tables_cover_every_customer(sample_run):
    cal = pd.read_parquet(sample_run / "data/features/calibration.parquet")
    scoring = pd.read_parquet(sample_run / "data/features/scoring.parquet")
    train = pd.read_parquet(sample_run / "data/features/train_calibration.parquet")
    assert len(cal) == len(scoring) == 2357
    assert cal.frequency.sum() == 2457 and cal.holdout_purchases.sum() == 1882
    assert cal.churned.notna().all() and scoring["T"].max() == pytest.approx(
        545 / 7
    )  # 1997-01-01 to 1998-06-30
    # training cutoffs leave the whole churn window before the calibration cutoff
    cutoffs = pd.to_datetime(train.cutoff)
    assert (cutoffs + pd.Timedelta(days=180) <= pd.Timestamp("1997-09-30")).all()
    assert cutoffs.nunique() == 4
    assert not cal.isna()[["frequency", "recency", "T", "monetary_value"]].any().any()


def test_each_stage_is_recorded_in_mlflow(sample_run):
    client = mlflow.MlflowClient(f"sqlite:///{sample_run}/mlflow.db")
    exp = client.get_experiment_by_name("cvm")
    runs = {r.data.tags["cvm.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {
        "pipeline",
        "ingest",
        "features",
        "fit_clv",
        "train_churn",
        "evaluate",
        "score",
        "report",
    }
    ingest = runs["ingest"]
    assert ingest.data.metrics["rows_read"] == 6919
    assert ingest.data.params["mapping.amount"] == "dollar_value"
    artifacts = [a.path for a in client.list_artifacts(ingest.info.run_id)]
    assert "ingest_report.json" in artifacts
    assert runs["features"].data.metrics["calibration_rows"] == 2357
    assert runs["features"].data.params["features.time_unit"] == "weeks"
    # the published churn candidate, the model its prior comes from and its level's
    report = json.loads((sample_run / "artifacts/churn/train_report.json").read_text())
    tags, level = runs["train_churn"].data.tags, report["scoring"]["selection"]["level"]
    assert tags["cvm.churn.scoring.choice"] == report["scoring"]["choice"]
    assert tags["cvm.churn.scoring.prior"] == level["shape"]["choice"]
    assert tags["cvm.churn.scoring.level"] == level["choice"] in level["validation_errors"]


def test_one_run_per_execution_holds_the_config_and_the_headline_figures(sample_run):
    client = mlflow.MlflowClient(f"sqlite:///{sample_run}/mlflow.db")
    exp = client.get_experiment_by_name("cvm")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`cvm.stage` = 'pipeline'")
    stages = client.search_runs(
        [exp.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(stages) == 7
    assert parent.info.status == "FINISHED"
    # named apart from other executions; the UI opens the experiment on its runs
    assert parent.info.run_name == "pipeline CDNOW_sample 1997-09-30"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # the whole composed config, flattened, once
    assert parent.data.params["data.mapping.amount"] == "dollar_value"
    assert parent.data.params["churn.num_leaves"] == "7"
    assert len(parent.data.params) > 100
    evaluation = json.loads((sample_run / "reports/evaluation.json").read_text())
    assert parent.data.metrics["churn_roc_auc"] == evaluation["churn"]["churn_model"]["roc_auc"]
    assert parent.data.metrics["customers"] == 2357
    assert parent.data.tags["mlflow.source.git.commit"]


def test_the_scored_table_covers_every_customer(sample_run):
    from models.scoring import COLUMN_DOCS

    table = pd.read_parquet(sample_run / "data/scored/customers.parquet")
    # the README's way to read the CSV, as printed, in the project
    (snippet,) = re.findall(r"```python\n(import pandas as pd\n\ncustomers = .*?)```", README, re.S)
    names: dict = {}
    with contextlib.chdir(sample_run):
        exec(snippet, names)
    csv = names["customers"]
    assert csv.customer_id.tolist() == table.customer_id.tolist()  # 07592 stays 07592
    schema = json.loads((sample_run / "data/scored/customers.schema.json").read_text())
    assert len(table) == len(csv) == schema["rows"] == 2357
    assert table.customer_id.is_unique
    assert [c["name"] for c in schema["columns"]] == list(table.columns)
    # every column documented; the margin ones are there where the log has margins
    assert set(COLUMN_DOCS) - set(table.columns) == {MARGIN, *MARGIN_COLUMNS}
    assert set(table.columns) <= set(COLUMN_DOCS)
    assert not table.isna().any().any()
    assert table.clv_lower.le(table.clv).all() and table.clv.le(table.clv_upper).all()
    assert table.churn_probability.between(0, 1).all() and table.p_alive.between(0, 1).all()
    assert set(table.value_tier) == {"platinum", "gold", "silver", "bronze"}
    assert (table.as_of_date == pd.Timestamp("1998-06-30")).all()
    fit = json.loads((sample_run / "artifacts/clv/fit_report.json").read_text())
    churn = json.loads((sample_run / "artifacts/churn/train_report.json").read_text())
    assert (table.clv_model == f"cvm-clv@{fit['scoring']['model_id']}").all()
    assert (table.churn_model == f"cvm-churn@{churn['scoring']['model_id']}").all()


def test_each_churn_score_has_reasons_whose_parts_add_up_to_it(sample_run):
    """The scoring churn model's parts of each customer's score (log-odds) plus its base give
    the published probability; the reasons are distinct and read the customer's own values."""
    from scipy.special import expit

    from models.churn.reasons import REASON_COLUMNS
    from pipeline import churn_store, clv_store, config

    settings = config.Settings(config.load_params(sample_run / "params.yaml"))
    features = pd.read_parquet(sample_run / "data/features/scoring.parquet")
    clv = clv_store.load(sample_run / "artifacts/clv/scoring")
    churn = churn_store.load(sample_run / "artifacts/churn/scoring")
    base, parts = churn.contributions(clv.churn_features(features, settings.churn_horizon))
    table = pd.read_parquet(sample_run / "data/scored/customers.parquet").set_index("customer_id")
    published = table.churn_probability.loc[features.customer_id.astype(str)].to_numpy()
    assert abs(expit(base + parts.sum(axis=1).to_numpy()) - published).max() < 1e-9
    reasons = table[list(REASON_COLUMNS)]
    assert not reasons.apply(lambda r: r.duplicated().any(), axis=1).any()
    own = (
        reasons.eq(table.recency_days.map("last purchase {:,.0f} days ago".format), axis=0)
        | reasons.eq(table.tenure_days.map("first purchase {:,.0f} days ago".format), axis=0)
        | reasons.eq(
            (table.tenure_days - table.recency_days).map(
                "{:,.0f} days from first to last purchase".format
            ),
            axis=0,
        )
    )
    other = ~reasons.apply(lambda c: c.str.contains("days ago|days from first"))
    assert (own | other).all().all()  # a phrase of days is the customer's own


def test_evaluation_reports_every_metric_next_to_every_baseline(sample_run):
    evaluation = json.loads((sample_run / "reports/evaluation.json").read_text())
    churn = evaluation["churn"]
    assert set(churn) == {
        "churn_model",
        "clv_p_no_purchase",
        "clv_expected_purchases",
        "recency_days",
        "clv_not_alive",
        "base_rate",
    }
    for name in ("churn_model", "clv_p_no_purchase", "base_rate"):
        assert {"roc_auc", "pr_auc", "brier", "ece", "top_decile_lift"} <= set(churn[name])
    assert churn["churn_model"]["roc_auc"] > 0.7
    assert evaluation["clv"]["purchases"]["total_actual"] == 1882
    assert abs(evaluation["clv"]["purchases"]["aggregate_error_pct"]) < 15
    tracking_curve = pd.read_csv(sample_run / "reports/plots/tracking.csv")
    assert tracking_curve.actual.is_monotonic_increasing
    plots = sample_run / "reports/plots"
    histogram = pd.read_csv(plots / "repeat_histogram.csv")
    assert histogram.actual.sum() == 2357  # every customer once, in their bucket
    by_recency = pd.read_csv(plots / "holdout_by_recency.csv")
    assert by_recency.customers.sum() == 2357
    assert sorted(p.stem for p in (plots / "p_alive_paths").glob("*.csv")) == [
        "frequent_buyer",
        "median_repeat_buyer",
        "one_time_buyer",
    ]
    # the stationary BG/NBD beside the CLV model, on the same customers
    reference = evaluation["clv_reference"]
    assert reference["model"] == "bgnbd" and reference["purchases"]["total_actual"] == 1882
    assert (
        reference["intervals"]["difference"]["low"] <= reference["intervals"]["difference"]["high"]
    )
    html = (sample_run / "reports/report.html").read_text()
    assert html.count("data:image/png;base64,") == 13 and "Churn model and baselines" in html
    assert "the stationary BG/NBD fit on the same customers" in html
    assert "<h4>Purchase model</h4><p>calibration fit: bgnbd.</p>" in html
    assert "Its prior is the P(no purchase) of the" in html


def test_every_metric_a_promotion_may_name_is_in_the_evaluation(sample_run):
    """The promotion paths `cvm params` accepts (models.promotion.PROMOTABLE) are exactly the
    numbers of the evaluation a retrain compares, so a path is never found wrong after a fit."""
    evaluation = json.loads((sample_run / "reports/evaluation.json").read_text())
    paths = {
        f"{a}.{b}.{c}"
        for sections, scores, metrics in PROMOTABLE
        for a, b, c in itertools.product(sections, scores, metrics)
    }
    assert all(lookup(evaluation, path) is not None for path in paths)
    for path in paths:
        MetricRule(path, "higher", 0.0)  # accepted by the config's type


def test_the_holdout_never_reaches_the_churn_model(pipeline_outputs, tmp_path, monkeypatch):
    """The candidate choice and the shift to the scored customers see no outcome after the
    cutoff: scrambling every outcome of the calibration table leaves the model as it was."""
    import shutil
    from pathlib import Path

    import numpy as np
    import yaml

    from models.columns import LABEL_COLUMNS
    from pipeline.cli import main

    project = tmp_path / "copy"
    shutil.copytree(pipeline_outputs, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    monkeypatch.chdir(project)
    table = pd.read_parquet("data/features/calibration.parquet")
    rng = np.random.default_rng(0)
    for column in set(LABEL_COLUMNS) & set(table.columns):
        table[column] = rng.permutation(table[column].to_numpy())
    table.to_parquet("data/features/calibration.parquet", index=False)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["tracking"]["enabled"] = False  # the copy registers nothing in the original's store
    Path("local.yaml").write_text(yaml.safe_dump(params))
    before = {p: (pipeline_outputs / p).read_bytes() for p in CHURN_FILES}
    assert main(["stage", "train_churn", "--params", "local.yaml"]) == 0
    for path in CHURN_FILES:
        assert (project / path).read_bytes() == before[path], path


CHURN_FILES = ("artifacts/churn/calibration/model.txt", "artifacts/churn/calibration/meta.json")
