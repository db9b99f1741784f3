"""The report for the people who decide, opened in a real browser: it renders offline with no
console message, and reads as the run that made it (a screenshot is kept in test-artifacts/)."""

from __future__ import annotations

import pytest

from tests.browser import render
from tests.html_tables import table_under

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_the_check_sees_a_console_error_and_a_fetch(tmp_path):
    """The browser check can fail: a script error and an image from the network are seen."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<!doctype html><p>x</p><img src="https://example.com/x.png">'
        '<script>console.error("boom")</script>'
    )
    seen = render(page, "check.png", height=300)
    assert any('"boom"' in line for line in seen["console"])
    assert seen["fetched"] == ["https://example.com/x.png"]


def test_the_pipeline_report_renders_offline_and_leads_with_the_decisions(pipeline_outputs):
    import pandas as pd

    report = pipeline_outputs / "reports/report.html"
    assert render(report, "report_pipeline.png") == {"console": [], "fetched": []}
    page = report.read_text()
    table = pd.read_parquet(pipeline_outputs / "data/scored/customers.parquet")
    sections = ["Headline", "What to do", "Change since the previous table", "Value tiers"]
    sections += ["Whom to contact first", "Glossary", "Appendix: model evaluation"]
    at = [page.index(f"<h2>{s}</h2>") for s in sections]
    assert at == sorted(at)  # the decisions first, the evaluation last
    actions = table_under(page, "What to do")
    assert sum(int(r["Customers"].replace(",", "")) for r in actions) == len(table)
    assert f'<div class="figure">{len(table):,}</div>' in page
    assert f"${table.clv.sum():,.0f}" in page  # the config's currency, whole units
    assert "let go: no paid contact</h3>" not in page  # no contact list for those let go
