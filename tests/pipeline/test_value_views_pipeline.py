"""The value views in the config, the score stage's files and the published table."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import yaml

from pipeline import config, config_check
from tests.conftest import REPO

COMMITTED = yaml.safe_load((REPO / "params.yaml").read_text())


def problems(**tiers) -> list[str]:
    """The problems of the committed params with some ``tiers`` keys replaced."""
    cfg = copy.deepcopy(COMMITTED)
    cfg["tiers"] |= tiers
    return config_check.problems(cfg)


TERCILES = {
    "cuts": [0.333, 0.667],
    "levels": ["low", "mid", "high"],
    "names": {h: {c: f"{h}_{c}" for c in ("low", "mid", "high")} for h in ("low", "mid", "high")},
}


def test_the_committed_views_are_valid_and_terciles_too():
    assert problems() == []
    assert problems(value_matrix=TERCILES) == []
    views = config_check.validate(COMMITTED).tiers.views
    assert views.matrix.cell_names() == ["stars", "fading", "rising", "low_value"]
    assert views.actions.table["platinum"]["at_risk"] == "retain: personal outreach"


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        (
            {"by": "margin"},
            "tiers.by is 'margin'; expected one of clv, margin_clv, historical_value",
        ),
        (
            {"by": "margin_clv"},
            "tiers.by is 'margin_clv'; expected clv or historical_value with data.mapping.margin "
            "and data.mapping.cost null (map the log's margin or cost column to rank by profit)",
        ),
        (
            {"value_matrix": TERCILES | {"levels": ["low", "high"]}},
            "tiers.value_matrix.levels is ['low', 'high']; expected one level more than",
        ),
        (
            {"value_matrix": TERCILES | {"cuts": [0.667, 0.333]}},
            "tiers.value_matrix.cuts is [0.667, 0.333]; expected a non-empty list, strictly "
            "increasing",
        ),
        (
            {"value_matrix": TERCILES | {"names": {"low": {"low": "x"}}}},
            "tiers.value_matrix.names.low is {'low': 'x'}; expected a name for each CLV level",
        ),
        (
            {"value_matrix": TERCILES | {"names": TERCILES["names"] | {"top": {"low": "x"}}}},
            "tiers.value_matrix.names.top is not a level",
        ),
        (
            {
                "value_matrix": TERCILES
                | {"names": TERCILES["names"] | {"mid": {"low": "a", "mid": "a", "high": "b"}}}
            },
            "expected a different name for each cell",
        ),
        (
            {"actions": {"default": "mail", "table": {"diamond": {"lost": "call"}}}},
            "tiers.actions.table.diamond is not a value tier; expected one of platinum, gold",
        ),
        (
            {"actions": {"default": "mail", "table": {"gold": {"sleeping": "call"}}}},
            "tiers.actions.table.gold.sleeping is not a lifecycle stage",
        ),
        (
            {"actions": {"default": "", "table": {"gold": {"lost": "call"}}}},
            "tiers.actions.default is ''; expected a non-empty text",
        ),
    ],
)
def test_a_bad_view_setting_is_named(tiers, expected):
    found = problems(**tiers)
    assert found and expected in found[0], found


def test_a_margin_column_ranks_by_profit_and_is_the_only_margin():
    cfg = copy.deepcopy(COMMITTED)
    cfg["data"]["mapping"]["margin"] = "profit"
    cfg["tiers"]["by"] = "margin_clv"
    assert config_check.problems(cfg) == []
    cfg["clv"]["prediction"]["margin"] = 0.3  # a flat margin on top would count it twice
    (problem,) = config_check.problems(cfg)
    assert problem == (
        "clv.prediction.margin is 0.3; expected 1.0 with data.mapping.margin set (the margin "
        "column gives each customer's own share: margin_clv)"
    )
    cfg["clv"]["prediction"]["margin"] = 1.0
    cfg["data"]["mapping"]["cost"] = "cost"  # one column gives the margin, not two
    (problem,) = config_check.problems(cfg)
    assert problem == (
        "data.mapping.cost is 'cost'; expected null with data.mapping.margin set ('profit'): "
        "each line's margin comes from one of them"
    )
    cfg["data"]["mapping"] |= {"margin": None, "amount": None}  # a cost without the spend
    assert any(
        p.startswith("data.mapping.cost is 'cost'; expected null with data.mapping.amount")
        for p in config_check.problems(cfg)
    )


def test_value_to_date_cannot_rank_a_log_without_amounts():
    cfg = copy.deepcopy(COMMITTED)
    cfg["tiers"]["by"] = "historical_value"
    assert config_check.problems(cfg) == []
    cfg["data"]["mapping"]["amount"] = None
    (problem,) = config_check.problems(cfg)
    assert problem.startswith("tiers.by is 'historical_value'; expected clv with")


def test_the_settings_carry_tiers_by_and_the_views():
    cfg = copy.deepcopy(COMMITTED)
    cfg["tiers"]["by"] = "historical_value"
    cfg["tiers"]["value_matrix"] = TERCILES
    settings = config.Settings(config.OmegaConf.create(cfg)).scoring
    assert settings.tiers.by == "historical_value"
    assert settings.views.matrix.levels == ("low", "mid", "high")
    assert settings.views.actions.default == COMMITTED["tiers"]["actions"]["default"]


def test_the_score_stage_writes_the_segment_summary_with_the_table(pipeline_outputs):
    from models.scoring import COLUMN_DOCS

    scored = pipeline_outputs / "data/scored"
    table = pd.read_parquet(scored / "customers.parquet")
    summary = pd.read_parquet(scored / "customers_segments.parquet")
    csv = pd.read_csv(scored / "customers_segments.csv")
    assert len(csv) == len(summary) == 4 * 5 + 4
    for view, rows in summary.groupby("view"):
        assert rows.customers.sum() == len(table) == 2357, view
        assert rows.total_clv.sum() == pytest.approx(table.clv.sum(), rel=1e-9)
        assert rows.total_value_at_risk.sum() == pytest.approx(table.value_at_risk.sum(), rel=1e-9)
    # the views in the table, documented
    schema = json.loads((scored / "customers.schema.json").read_text())
    described = {c["name"]: c["description"] for c in schema["columns"]}
    for name in ("historical_value", "value_at_risk", "retention_priority", "value_segment"):
        assert described[name] == COLUMN_DOCS[name] != ""
    assert table.value_at_risk.to_numpy() == pytest.approx(
        (table.clv * table.churn_probability).to_numpy()
    )
    assert (table.historical_value == table.total_spend).all()
    assert sorted(table.retention_priority) == list(range(1, len(table) + 1))
    first = table.loc[table.retention_priority.idxmin()]
    assert first.value_at_risk == table.value_at_risk.max()
    assert set(table.value_segment) == {"stars", "rising", "fading", "low_value"}
    cell = summary[(summary.view == "value_matrix") & (summary.value_segment == "stars")]
    assert cell.customers.item() == (table.value_segment == "stars").sum()
    at_risk = table[(table.value_tier == "platinum") & (table.lifecycle_stage == "at_risk")]
    assert (at_risk.recommended_action == "retain: personal outreach").all()


def test_the_report_shows_the_value_matrix_and_the_segments(pipeline_outputs):
    summary = pd.read_parquet(pipeline_outputs / "data/scored/customers_segments.parquet")
    html = (pipeline_outputs / "reports/report.html").read_text()
    assert "<h3>Value matrix</h3>" in html and "<h3>Segment summary</h3>" in html
    for cell in summary[summary.view == "value_matrix"].itertuples():
        assert f"{cell.value_segment}: {cell.customers:,} customers, CLV $" in html
    grid = html.index("<h3>Value matrix</h3>")
    # as the heat map draws it: high historical value first, predicted CLV from low to high
    cells = [html.index(f"{name}: ", grid) for name in ("fading", "stars", "low_value", "rising")]
    assert cells == sorted(cells)


def test_publishing_a_table_writes_its_summary_beside_it(pipeline_outputs, tmp_path):
    from pipeline.publication import write_table

    table = pd.read_parquet(pipeline_outputs / "data/scored/customers.parquet")
    base = tmp_path / "out" / "customers"
    write_table(table, base, tmp_path / "state")
    written = pd.read_parquet(tmp_path / "out/customers_segments.parquet")
    expected = pd.read_parquet(pipeline_outputs / "data/scored/customers_segments.parquet")
    pd.testing.assert_frame_equal(written, expected)
    assert sorted(p.name for p in base.parent.iterdir()) == [
        "customers.csv",
        "customers.parquet",
        "customers.schema.json",
        "customers_segments.csv",
        "customers_segments.parquet",
    ]
