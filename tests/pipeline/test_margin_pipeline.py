"""Profit end to end: the apparel log with a margin column (each customer's own share of each
price, synthetic), `cvm run` tiering by margin CLV, and the registered scorer ranking as the
table does; a simulated B2B log tiered by frequency, amount and profit together."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.scoring import COLUMN_DOCS
from models.simulate import SimulationSettings, simulate_log
from tests.conftest import REPO, built_once, run_cvm, write_params
from tests.html_tables import table_under
from tests.pipeline.test_retrain import FAST
from tests.pipeline.test_scorer_model import assert_rows_match

pytestmark = pytest.mark.e2e

APPAREL = REPO / "data/raw/apparel"


def with_margins(source: Path, target: Path) -> pd.Series:
    """The apparel log with a ``Margin`` column: each customer's true share of spend (from 10 %
    to 50 %), each line's share scattered around it (the basket's mix, a discount: sd 15
    points). Returns the true shares by customer id."""
    log = pd.read_csv(source, dtype={"Id": str})
    rng = np.random.default_rng(3)
    ids = log.Id.unique()
    truth = pd.Series(rng.uniform(0.1, 0.5, len(ids)), index=ids)
    line = truth.loc[log.Id].to_numpy() + rng.normal(0, 0.15, len(log))
    log["Margin"] = (log.Price * line).round(2)
    log.to_csv(target, index=False)
    return truth


APPAREL_RUN = (
    "data=apparel",
    "data.mapping.margin=Margin",
    "tiers.by=margin_clv",
    "clv.method=map",
    "tracking.register=true",
    "tracking.uri=sqlite:///mlflow.db",
)


def ran(tmp_path_factory, name: str, write_log, *overrides: str) -> Path:
    """A project (built once) holding what ``write_log(project)`` wrote and its `cvm run` with
    params.yaml composed from ``overrides``."""

    def build(root: Path) -> None:
        write_log(root)
        write_params(root, *overrides, new_store=True)
        done = run_cvm(root, "run")
        assert done.returncode == 0, done.stderr[-3000:]

    return built_once(tmp_path_factory, name, build)


def apparel_with_margins(root: Path) -> None:
    """The apparel log with margins (:func:`with_margins`), its true shares beside it."""
    raw = root / "data/raw/apparel"
    raw.mkdir(parents=True)
    truth = with_margins(APPAREL / "apparelTrans.csv", raw / "apparelTrans.csv")
    truth.rename("share").to_csv(root / "true_shares.csv", index_label="customer_id")
    shutil.copy(APPAREL / "apparelStaticCov.csv", raw)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return ran(tmp_path_factory, "margin_apparel", apparel_with_margins, *APPAREL_RUN)


def test_the_table_tiers_customers_by_the_profit_they_bring(project):
    table = pd.read_parquet(project / "data/scored/customers.parquet")
    log = pd.read_csv(project / "data/raw/apparel/apparelTrans.csv", dtype={"Id": str})
    margin = log.groupby("Id").Margin.sum()
    assert table.total_margin.to_numpy() == pytest.approx(
        margin.loc[table.customer_id].to_numpy(), abs=1e-6
    )
    assert table.historical_value.tolist() == table.total_margin.tolist()
    # shrunk toward the population's share, each customer's share is nearer their true one
    # than their margin to date over their spend to date, most of all with few purchases
    truth = pd.read_csv(project / "true_shares.csv", dtype={"customer_id": str})
    truth = truth.set_index("customer_id").share.loc[table.customer_id].to_numpy()
    raw = (table.total_margin / table.total_spend).to_numpy()
    shrunk = table.margin_share.to_numpy()
    few = table.purchase_days.to_numpy() <= 2
    assert np.abs(shrunk - truth).mean() < np.abs(raw - truth).mean()
    assert np.abs(shrunk - truth)[few].mean() < 0.8 * np.abs(raw - truth)[few].mean()
    assert table.margin_clv.to_numpy() == pytest.approx(
        (table.clv * table.margin_share).to_numpy(), rel=1e-12
    )
    # the tiers are margin-CLV bands: every platinum above every gold, and so on
    bands = table.groupby("value_tier", observed=True).margin_clv.agg(["min", "max"])
    assert (bands["min"].iloc[:-1].to_numpy() >= bands["max"].iloc[1:].to_numpy()).all()
    assert bands.index.tolist() == ["platinum", "gold", "silver", "bronze"]
    # revenue would rank them otherwise
    assert table.value_tier.tolist() != pd.qcut(table.clv.rank(method="min"), 4).tolist()
    assert set(table.columns) == set(COLUMN_DOCS)  # every column documented, margins too
    summary = json.loads((project / "reports/score_summary.json").read_text())
    assert summary["total_margin_clv"] == pytest.approx(table.margin_clv.sum())


def test_the_segment_summary_the_kpis_and_the_report_total_the_profit(project):
    from models.kpis import snapshot

    table = pd.read_parquet(project / "data/scored/customers.parquet")
    segments = pd.read_parquet(project / "data/scored/customers_segments.parquet")
    for view, rows in segments.groupby("view"):
        assert rows.total_margin_clv.sum() == pytest.approx(table.margin_clv.sum()), view
    pairs = segments[segments.view == "tier_lifecycle"].groupby("value_tier").total_margin_clv
    by_tier = table.groupby("value_tier", observed=True).margin_clv.sum()
    assert pairs.sum().loc[by_tier.index].to_numpy() == pytest.approx(by_tier.to_numpy())
    kpis = snapshot(table).set_index(["dimension", "group"])
    assert kpis.loc[("all", "all"), "margin_clv"] == pytest.approx(table.margin_clv.sum())
    assert kpis.loc[("value_tier", "gold"), "margin_clv"] == pytest.approx(by_tier["gold"])
    page = (project / "reports/report.html").read_text()
    tiers = {r["Value tier"]: r for r in table_under(page, "Value tiers")}
    assert tiers["gold"]["Margin CLV"] == f"${by_tier['gold']:,.0f}"
    assert f"${table.margin_clv.sum():,.0f}" in page  # the headline's margin CLV


def test_the_registered_scorer_ranks_exactly_as_the_table(project):
    uri = f"sqlite:///{project}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model("models:/cvm-scorer/1")
    table = pd.read_parquet(project / "data/scored/customers.parquet")
    features = pd.read_parquet(project / "data/features/scoring.parquet")
    batch = features.sample(25, random_state=1)  # scored against the population it knows
    got = model.predict(batch)
    assert "margin_clv" in got.columns
    assert_rows_match(got, table)


B2B_START = date(2023, 1, 2)


def b2b_log(path: Path) -> None:
    """A simulated B2B log: 400 accounts ordering about every five weeks for two years (BG/NBD),
    orders around 10,000 (Gamma-Gamma), each account's margin share of each order scattered
    around its own (from 5 % to 45 %)."""
    settings = SimulationSettings(
        customers=400,
        params=(("r", 2.0), ("alpha", 10.0), ("a", 0.5), ("b", 8.0)),
        spend=(("p", 6.25), ("q", 3.74), ("gamma", 4600.0)),
        start=B2B_START,
        cohort_days=180,
        horizon_days=730,
        seed=9,
    )
    log = simulate_log(settings)[0]
    rng = np.random.default_rng(9)
    ids = log.customer_id.unique()
    share = pd.Series(rng.uniform(0.05, 0.45, len(ids)), index=ids).loc[log.customer_id]
    log["margin"] = (log.amount * (share.to_numpy() + rng.normal(0, 0.05, len(log)))).round(2)
    log[["customer_id", "timestamp", "amount", "margin"]].to_csv(path, index=False)


B2B_RUN = (
    *FAST,
    "data.path=accounts.csv",
    "data.mapping.margin=margin",
    "data.calibration_end=2024-06-25",  # 540 days after the first account's first order
    "tiers.by=weighted",
    "tracking.enabled=false",
)


@pytest.fixture(scope="module")
def b2b_project(tmp_path_factory) -> Path:
    return ran(
        tmp_path_factory, "margin_b2b", lambda root: b2b_log(root / "accounts.csv"), *B2B_RUN
    )


def test_accounts_are_tiered_by_frequency_amount_and_profit_together(b2b_project):
    table = pd.read_parquet(b2b_project / "data/scored/customers.parquet")
    log = pd.read_csv(b2b_project / "accounts.csv", dtype={"customer_id": str})
    assert len(table) == 400 and log.amount.mean() > 5_000  # few accounts, large orders
    # the score, from the log: purchase days, spend and margin, each the share of accounts below
    log["day"] = pd.to_datetime(log.timestamp).dt.date
    counts = log.groupby("customer_id").agg(
        days=("day", "nunique"), spend=("amount", "sum"), margin=("margin", "sum")
    )
    below = (counts.rank(method="min") - 1) / len(counts)
    score = below.mean(axis=1).loc[table.customer_id].to_numpy()
    assert table.total_margin.to_numpy() == pytest.approx(
        counts.margin.loc[table.customer_id].to_numpy(), abs=1e-6
    )
    # the tiers are bands of that score, best first
    bands = pd.Series(score).groupby(table.value_tier, observed=True).agg(["min", "max"])
    assert bands.index.tolist() == ["platinum", "gold", "silver", "bronze"]
    assert (bands["min"].iloc[:-1].to_numpy() >= bands["max"].iloc[1:].to_numpy()).all()
    # not the margin CLV's: an account may be platinum on its past and not on its forecast
    assert table.value_tier.tolist() != pd.qcut(-table.margin_clv, [0, 0.05, 0.2, 0.5, 1]).tolist()
