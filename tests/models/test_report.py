"""The report for the people who decide, on tables whose answers are counted by hand: figures
written as the config says, the action table and contact lists adding up to the table, the
change since the previous table, and a glossary entry for every label shown."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from models.kpis import migration, snapshot
from models.report.fmt import Formats
from models.report.page import Context, decision_page
from models.report.settings import ReportSettings
from models.segments import LifecycleRules, TierSettings, assign_tiers
from models.value_views import ValueViewSettings, recommended_action
from tests.html_tables import table_under

SCORING = SimpleNamespace(
    tiers=TierSettings(), lifecycle=LifecycleRules(), views=ValueViewSettings()
)
CONTEXT = Context("a test", churn_days=180, clv_months=12)
STAGES = np.array(["new", "active", "loyal", "at_risk", "lost"])


def scored(as_of: str, n: int = 60, seed: int = 0, money: bool = True) -> pd.DataFrame:
    """A scored table of ``n`` customers: tiers by CLV, stages, actions and priorities as the
    scorer derives them from the columns beside them."""
    rng = np.random.default_rng(seed)
    clv = rng.gamma(1.0, 100.0, n).round(2)
    churn = rng.uniform(0.05, 0.95, n).round(3)
    table = pd.DataFrame(
        {
            "customer_id": [f"{i:04d}" for i in range(n)],
            "as_of_date": pd.Timestamp(as_of),
            "clv": clv,
            "p_alive": 1 - churn / 2,
            "expected_purchases": rng.gamma(1.0, 2.0, n).round(3),
            "churn_probability": churn,
            "value_at_risk": clv * churn,
            "recency_days": rng.integers(0, 400, n),
            "lifecycle_stage": pd.Categorical(STAGES[rng.integers(0, 5, n)]),
            "value_segment": np.where(clv > np.median(clv), "stars", "low_value"),
            "churn_reason_1": [f"no purchase for {d} days" for d in rng.integers(0, 400, n)],
            "churn_reason_2": "purchase model: 0.4 purchases expected",
            "churn_reason_3": None,
            "clv_model": "cvm-clv/3",
            "churn_model": "cvm-churn/3",
        }
    )
    table["value_tier"] = assign_tiers(table.clv, SCORING.tiers)
    table["recommended_action"] = recommended_action(
        table.value_tier, table.lifecycle_stage, SCORING.views.actions
    )
    order = table.sort_values(["value_at_risk", "customer_id"], ascending=[False, True]).index
    table.loc[order, "retention_priority"] = np.arange(1, n + 1)
    if not money:
        table[["clv", "value_at_risk", "value_segment"]] = None
    return table


def test_money_and_percentages_are_written_as_the_config_says():
    euro = Formats(ReportSettings(currency="€", currency_after=True, money_decimals=2))
    assert euro.money(1234.5) == "1,234.50 €" and euro.money(-3.0) == "−3.00 €"
    dollar = Formats(ReportSettings())
    assert dollar.money(1234.5) == "$1,234" and dollar.money(None) == "–"
    assert dollar.percent(0.18204) == "18.2 %" and dollar.points(-0.012) == "-1.2 pt"
    assert Formats(ReportSettings(percent_decimals=0)).percent(0.18204) == "18 %"
    assert Formats(ReportSettings(currency="")).money(12.0) == "12"


def test_the_headline_and_the_action_table_add_up_to_the_table():
    table = scored("2024-03-31")
    f = Formats(ReportSettings())
    page = decision_page(table, ReportSettings(), SCORING, CONTEXT)
    assert f'Total CLV, next 12 months</div><div class="figure">{f.money(table.clv.sum())}' in page
    active = table.lifecycle_stage.isin(["new", "active", "loyal"]).sum()
    assert f'Active customers</div><div class="figure">{active:,}</div>' in page
    assert f.percent(table.churn_probability.mean()) in page
    actions = table_under(page, "What to do")
    assert sum(int(r["Customers"].replace(",", "")) for r in actions) == len(table)
    expected = table.groupby("recommended_action").value_at_risk.sum()
    for row in actions:
        assert row["Value at risk"] == f.money(expected[row["Recommended action"]])
    risks = [expected[r["Recommended action"]] for r in actions]
    assert risks == sorted(risks, reverse=True)  # the most value at risk first


def test_each_action_lists_its_first_customers_to_contact_but_the_ones_let_go():
    table = scored("2024-03-31", n=200)
    settings = ReportSettings(contacts_per_action=3)
    page = decision_page(table, settings, SCORING, CONTEXT)
    for action, rows in table.groupby("recommended_action"):
        if action in settings.not_contacted:
            assert f"<h3>{action}</h3>" not in page
            continue
        listed = table_under(page, action)
        first = rows.sort_values("retention_priority").head(3)
        assert [r["Customer"] for r in listed] == list(first.customer_id)
        assert listed[0]["Why the churn score"] == (
            f"{first.churn_reason_1.iloc[0]}; purchase model: 0.4 purchases expected"
        )
    assert "<h2>Whom to contact first</h2>" not in decision_page(
        table, ReportSettings(contacts_per_action=0), SCORING, CONTEXT
    )


def test_the_change_since_the_previous_table_counts_the_movers():
    before, now = scored("2024-03-31", seed=1), scored("2024-04-30", seed=2)
    history = {
        "kpis": pd.concat([snapshot(before), snapshot(now, before)], ignore_index=True),
        "migration": migration(now, before),
    }
    page = decision_page(now, ReportSettings(), SCORING, CONTEXT, history)
    rows = table_under(page, "Change since the previous table")
    assert [r["Value tier"] for r in rows] == list(SCORING.tiers.names)  # best first
    tiers = {r["Value tier"]: r for r in rows}
    for tier in SCORING.tiers.names:
        then, today = (before.value_tier == tier).sum(), (now.value_tier == tier).sum()
        assert tiers[tier]["Customers 2024-03-31"] == f"{then:,}"
        assert tiers[tier]["Customers now"] == f"{today:,}"
    moves = table_under(page, "Migration between value tiers")
    assert [r["Previous tier \\ tier now"] for r in moves] == list(SCORING.tiers.names)
    moved = pd.crosstab(before.value_tier, now.value_tier)
    for row in moves:
        source = row.pop("Previous tier \\ tier now")
        for target, count in row.items():
            assert int(count) == moved.loc[source, target]
    assert page.count("<svg") == 5  # customers, CLV, value at risk, churn rate, retention
    first = decision_page(before, ReportSettings(), SCORING, CONTEXT, {"kpis": snapshot(before)})
    assert "This is the first published table" in first


def test_a_log_without_amounts_shows_no_money():
    table = scored("2024-03-31", money=False)
    page = decision_page(table, ReportSettings(), SCORING, CONTEXT)
    assert "the log has no amounts" in page and "$" not in page.split("<h2>Glossary")[0]
    assert "Value at risk" not in table_under(page, "What to do")[0]
    assert "Value matrix" not in page


@pytest.mark.parametrize("money", [True, False])
def test_the_glossary_explains_every_label_the_page_shows(money):
    table = scored("2024-03-31", money=money)
    page = decision_page(table, ReportSettings(), SCORING, CONTEXT)
    glossary = page[page.index("<h2>Glossary</h2>") :]
    labels = {*table.value_tier.astype(str), *table.lifecycle_stage.astype(str)}
    labels |= set(table.recommended_action) | set(table.value_segment.dropna())
    for label in labels:
        assert f"<dt>{label}</dt>" in glossary
    assert "<dt>platinum</dt><dd>Value tier: the top 5 % of customers by" in glossary


@pytest.mark.parametrize("money", [True, False])
def test_the_tier_shares_plot_draws_what_the_tiers_rank(money):
    """Without amounts the second bars are the expected purchases' shares, not empty CLV bars."""
    from models.evaluation.plots import tier_shares

    table = scored("2024-03-31", money=money)
    ax = tier_shares(table).axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["customers", "CLV" if money else "expected purchases"]
    value = table.clv if money else table.expected_purchases
    shares = value.groupby(table.value_tier, observed=False).sum() / value.sum() * 100
    heights = [bar.get_height() for bar in ax.containers[1]]
    assert heights == pytest.approx(shares.to_list())


def test_the_appendix_says_how_regular_the_purchase_model_found_the_customers() -> None:
    from models.evaluation.report import _purchase_model_section

    fit = {"model": "mbgcnbd", "regularity": {"k": 3, "loglik": {"1": -900.0, "2": -850.5}}}
    section = _purchase_model_section({"calibration": fit})
    assert "calibration fit: mbgcnbd, its customers buying every k-th event" in section
    assert "k = 3 of highest likelihood (log-likelihood by k: 1: -900.0, 2: -850.5)" in section
    assert "regular" not in _purchase_model_section({"scoring": {"model": "bgnbd"}})


def test_the_appendix_names_the_models_the_churn_prior_and_level_come_from() -> None:
    from models.evaluation.report import _level_sentence

    level = {"choice": "clv", "mean": 0.7779, "shape": {"choice": "bgnbd_weibull+season"}}
    sentence = _level_sentence({"level": level})
    assert "Its prior is the P(no purchase) of the bgnbd_weibull+season model" in sentence
    assert "its mean is set to 0.778, the CLV model's" in sentence
    flipped = {"choice": "weibull_nbd", "mean": 0.5, "shape": {"choice": "clv"}}
    assert "of the CLV model (" in _level_sentence({"level": flipped})
    assert "the weibull_nbd model's" in _level_sentence({"level": flipped})
    assert _level_sentence({}) == ""
