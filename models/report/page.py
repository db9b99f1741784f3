"""The page: what a marketing, CRM or finance team reads on Monday morning, then the glossary
and the appendix for data scientists."""

from __future__ import annotations

import html
from dataclasses import dataclass

import pandas as pd

from models import kpis
from models.churn.reasons import REASON_COLUMNS
from models.report import charts, glossary
from models.report.fmt import Formats, table, text
from models.report.settings import ReportSettings
from models.scoring import total_or_none
from models.segments import LIFECYCLE_STAGES

FIRST_TABLE = "this is the first published table: there is nothing to compare with yet"
ACTIVE = ("new", "active", "loyal")  # the lifecycle stages counted as active customers

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 2px solid #1f5fa8; }
.sub { color: #555; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 1em 0; }
.card { border: 1px solid #ccd; border-radius: 6px; padding: 10px 14px; min-width: 150px; }
.card .label { color: #555; font-size: 0.85em; } .card .figure { font-size: 1.6em; }
.card .note { color: #555; font-size: 0.8em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; } th { background: #eef2f8; }
td.num { text-align: right; white-space: nowrap; } td.txt { text-align: left; }
.bar { display: inline-block; height: 0.8em; background: #1f5fa8; vertical-align: middle; }
.warning { color: #a00; font-weight: bold; }
.charts { display: flex; flex-wrap: wrap; gap: 10px; }
dl.glossary dt { font-weight: bold; margin-top: 0.5em; } dl.glossary dd { margin-left: 1.5em; }
.appendix { border-top: 4px double #999; margin-top: 3em; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; } .grid img { max-width: 540px; }
"""


@dataclass(frozen=True)
class Context:
    """What the page says about where its table comes from: the command that ``made`` it, the
    churn horizon in days, the CLV horizon in months, and why there is no change to show when
    there is no history (``no_history``)."""

    made: str
    churn_days: int
    clv_months: int
    no_history: str | None = None  # None: the first published table

    @property
    def why_no_change(self) -> str:
        return self.no_history or FIRST_TABLE


def decision_page(
    scored: pd.DataFrame,
    settings: ReportSettings,
    scoring,
    context: Context,
    history: dict[str, pd.DataFrame] | None = None,
    appendix: str = "",
    warnings: tuple[str, ...] | list[str] = (),
) -> str:
    """The report of a scored customer table (:func:`models.scoring.score_customers`) with the
    ``scoring`` settings it was made with; ``history`` is the KPI history of the published
    tables, this one's snapshot included (:mod:`models.kpis`); ``appendix`` the evaluation's
    HTML for data scientists."""
    f = Formats(settings)
    as_of = kpis.as_of(scored).date()
    has_money = bool(scored["clv"].notna().any())
    models = f"{scored.clv_model.iloc[0]} and {scored.churn_model.iloc[0]}"
    sections = [
        _headline(scored, f, context, has_money, history),
        _actions(scored, f, has_money),
        _change(history, f, context, has_money, _tier_names(scored)),
        _tiers(scored, f, has_money, scoring.views.matrix),
        _contacts(scored, f, settings, has_money),
        _glossary(scoring, context, has_money),
    ]
    alerts = "".join(f'<p class="warning">Warning: {html.escape(w)}</p>' for w in warnings)
    appendix_part = (
        f'<section class="appendix"><h2>Appendix: model evaluation</h2>{appendix}</section>'
        if appendix
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer value report, {as_of}</title>
<style>{STYLE}{charts.STYLE}</style></head><body>
<h1>Customer value report</h1>
<p class="sub">Scored as of {as_of} by {html.escape(context.made)}, with the models
{html.escape(models)}.</p>
{alerts}{"".join(sections)}{appendix_part}
</body></html>
"""


def _card(label: str, figure: str, note: str = "") -> str:
    return (
        f'<div class="card"><div class="label">{html.escape(label)}</div>'
        f'<div class="figure">{html.escape(figure)}</div>'
        f'<div class="note">{html.escape(note)}</div></div>'
    )


def _previous(history: dict[str, pd.DataFrame] | None, day: pd.Timestamp) -> pd.DataFrame | None:
    """The snapshot of the table published before the one of ``day`` (None: there is none)."""
    if history is None:
        return None
    rows = history["kpis"]
    dates = pd.to_datetime(rows["as_of_date"])
    earlier = dates[dates < day]
    return rows[dates == earlier.max()] if len(earlier) else None


def _figure(snap: pd.DataFrame, dimension: str, group: str, column: str):
    row = snap[(snap["dimension"] == dimension) & (snap["group"] == group)]
    return row[column].iloc[0] if len(row) else None


def _headline(scored, f: Formats, context: Context, has_money: bool, history) -> str:
    n = len(scored)
    active = int(scored["lifecycle_stage"].astype("str").isin(ACTIVE).sum())
    churn = float(scored["churn_probability"].mean())
    clv, risk = total_or_none(scored["clv"]), total_or_none(scored["value_at_risk"])
    before = _previous(history, pd.Timestamp(kpis.as_of(scored)))

    def then(column: str):
        return _figure(before, kpis.ALL, kpis.ALL, column)

    def since(now, column):
        if before is None:
            return ""
        return (
            f"{f.change(now, then(column))} since {pd.Timestamp(before.as_of_date.iloc[0]).date()}"
        )

    active_before = ""
    if before is not None:
        stages = before[before["dimension"] == "lifecycle_stage"]
        active_then = stages[stages["group"].isin(ACTIVE)]["customers"].sum()
        active_before = f"; {f.change(active, active_then)} since the previous table"
    churn_note = f"no purchase expected in the next {context.churn_days} days"
    if before is not None:
        churn_note += f"; {f.points(churn - then('expected_churn_rate'))} since the previous table"
    cards = [
        _card("Customers", f.count(n), since(n, "customers")),
        _card("Active customers", f.count(active), f"{f.percent(active / n)}{active_before}"),
        _card("Expected churn rate", f.percent(churn), churn_note),
        _card(
            f"Total CLV, next {context.clv_months} months",
            f.money(clv),
            since(clv, "clv") if has_money else "the log has no amounts",
        ),
        _card(
            "Value at risk",
            f.money(risk),
            f"{f.percent(risk / clv)} of the CLV" if has_money and clv else "",
        ),
    ]
    if "margin_clv" in scored:
        cards.append(_card("Margin CLV (profit to come)", f.money(scored["margin_clv"].sum())))
    if history is not None:
        latest = history["kpis"][
            pd.to_datetime(history["kpis"]["as_of_date"]) == kpis.as_of(scored)
        ]
        retention = _figure(latest, kpis.ALL, kpis.ALL, "retention_rate")
        if retention is not None and not pd.isna(retention):
            cards.append(
                _card(
                    "Realised retention",
                    f.percent(retention),
                    "of the previous table's customers bought since",
                )
            )
    return f'<h2>Headline</h2><div class="cards">{"".join(cards)}</div>'


def _per_group(scored, by: str, f: Formats, title: str) -> tuple[pd.DataFrame, list]:
    """Customers (and their share), CLV, value at risk and expected churn per group of ``by``
    (every tier, even an empty one; the actions given), with the columns that show them."""
    rows = scored.groupby(by, sort=True, observed=by == "recommended_action").agg(
        customers=("customer_id", "size"),
        clv=("clv", "sum"),
        value_at_risk=("value_at_risk", "sum"),
        churn=("churn_probability", "mean"),
    )
    rows = rows.reset_index().assign(share=lambda t: t.customers / len(scored))
    columns = [
        (by, title, text),
        ("customers", "Customers", f.count),
        ("share", "Share", f.percent),
        ("churn", "Expected churn", f.percent),
    ]
    return rows, columns


def _actions(scored, f: Formats, has_money: bool) -> str:
    """Customers and value per recommended action, the most value at risk first."""
    rows, columns = _per_group(scored, "recommended_action", f, "Recommended action")
    order = "value_at_risk" if has_money else "customers"
    rows = rows.sort_values([order, "recommended_action"], ascending=[False, True])
    top = rows[order].max() or 1
    rows["bar"] = rows[order] / top

    def bar(share) -> str:
        return f'<span class="bar" style="width:{120 * share:.0f}px"></span>'

    if has_money:
        columns += [("clv", "CLV", f.money), ("value_at_risk", "Value at risk", f.money)]
    columns.append(("bar", "", bar))
    return (
        "<h2>What to do</h2><p>Customers per recommended action (value tier x lifecycle "
        "stage; see the glossary), the most value at risk first.</p>" + table(rows, columns)
    )


def _contacts(scored, f: Formats, settings: ReportSettings, has_money: bool) -> str:
    """The first customers to contact per action: by retention priority (value at risk)."""
    per_action = settings.contacts_per_action
    if not per_action:
        return ""
    reasons = [c for c in REASON_COLUMNS if c in scored]
    columns = [
        ("retention_priority", "Priority", f.count),
        ("customer_id", "Customer", text),
        ("value_tier", "Tier", text),
        ("lifecycle_stage", "Stage", text),
        ("recency_days", "Days since last purchase", f.count),
        ("churn_probability", "Churn probability", f.percent),
    ]
    if has_money:
        columns += [("clv", "CLV", f.money), ("value_at_risk", "Value at risk", f.money)]
    if reasons:
        scored = scored.assign(reasons=scored[reasons].apply(_reasons, axis=1))
        columns.append(("reasons", "Why the churn score", text))
    ranked = scored.sort_values("retention_priority")
    totals = ranked.groupby("recommended_action", observed=True)["value_at_risk"].sum()
    order = totals.sort_values(ascending=False).index if has_money else sorted(totals.index)
    order = [a for a in order if a not in settings.not_contacted]
    parts = [
        f"<h2>Whom to contact first</h2><p>Per action, the {per_action} customers with the "
        "highest retention priority (the most value at risk), with the three strongest reasons "
        "for their churn score."
        + (f" No list for {', '.join(settings.not_contacted)}." if settings.not_contacted else "")
        + "</p>"
    ]
    for action in order:
        rows = ranked[ranked["recommended_action"] == action].head(per_action)
        parts.append(f"<h3>{html.escape(str(action))}</h3>{table(rows, columns)}")
    return "".join(parts)


def _reasons(row: pd.Series) -> str:
    return "; ".join(str(v) for v in row if isinstance(v, str) and v)


def _tiers(scored, f: Formats, has_money: bool, matrix) -> str:
    rows, columns = _per_group(scored, "value_tier", f, "Value tier")
    if has_money:
        rows["clv_share"] = rows["clv"] / rows["clv"].sum()
        columns += [("clv", "CLV", f.money), ("clv_share", "Share of CLV", f.percent)]
    if "margin_clv" in scored:
        margins = scored.groupby("value_tier", observed=False)["margin_clv"].sum()
        rows["margin_clv"] = rows["value_tier"].map(margins).astype(float)
        columns.append(("margin_clv", "Margin CLV", f.money))
    if has_money:
        columns.append(("value_at_risk", "Value at risk", f.money))
    stages = pd.crosstab(scored["value_tier"], scored["lifecycle_stage"].astype("str"))
    stages = stages.reindex(columns=[s for s in LIFECYCLE_STAGES if s in stages])
    stage_rows = stages.reset_index()
    stage_columns = [("value_tier", "Value tier", text)] + [(s, s, f.count) for s in stages.columns]
    return (
        "<h2>Value tiers</h2>"
        + table(rows, columns)
        + "<h3>Customers per tier and lifecycle stage</h3>"
        + table(stage_rows, stage_columns)
        + (_matrix(scored, f, matrix) if has_money else "")
    )


def _matrix(scored, f: Formats, matrix) -> str:
    """The value matrix as the appendix's heat map draws it: historical value high to low
    (rows), predicted CLV low to high (columns); each cell its customers and CLV."""
    cells = scored.groupby("value_segment", observed=True).agg(
        customers=("customer_id", "size"), clv=("clv", "sum")
    )
    rows = []
    for level in reversed(matrix.levels):
        row = {"level": level}
        for column in matrix.levels:
            name = matrix.names[level][column]
            n, clv = cells.loc[name] if name in cells.index else (0, 0.0)
            row[column] = f"{name}: {f.count(n)} customers, CLV {f.money(clv)}"
        rows.append(row)
    columns = [("level", "historical value \\ predicted CLV", text)] + [
        (c, c, text) for c in matrix.levels
    ]
    return "<h3>Value matrix</h3>" + table(pd.DataFrame(rows), columns)


def _tier_names(scored) -> list[str]:
    """The value tiers, best first (the table's categories)."""
    tiers = scored["value_tier"]
    names = tiers.cat.categories if isinstance(tiers.dtype, pd.CategoricalDtype) else tiers.unique()
    return [str(t) for t in names]


def _change(history, f: Formats, context: Context, has_money: bool, tiers: list[str]) -> str:
    """Change since the previous published table: per tier, the migration between tiers, and
    the KPIs over every published table."""
    head = "<h2>Change since the previous table</h2>"
    if history is None or history["kpis"].empty:
        return f"{head}<p>No history: {html.escape(context.why_no_change)}.</p>"
    snaps = history["kpis"]
    dates = pd.to_datetime(snaps["as_of_date"])
    latest = snaps[dates == dates.max()]
    before = _previous(history, dates.max())
    parts = [head]
    if before is None:
        why = context.why_no_change
        parts.append(f"<p>{html.escape(why[:1].upper() + why[1:])}.</p>")
    else:
        day = pd.Timestamp(before.as_of_date.iloc[0]).date()
        rows = latest[latest["dimension"] == "value_tier"].merge(
            before[before["dimension"] == "value_tier"][["group", "customers", "clv"]],
            on="group",
            how="outer",
            suffixes=("", "_before"),
        )
        rank = {name: i for i, name in enumerate(tiers)}
        rows = rows.sort_values("group", key=lambda g: g.map(rank).fillna(len(rank)))
        rows["customer_change"] = [
            f.change(a, b) for a, b in zip(rows.customers, rows.customers_before, strict=True)
        ]
        columns = [
            ("group", "Value tier", text),
            ("customers_before", f"Customers {day}", f.count),
            ("customers", "Customers now", f.count),
            ("customer_change", "Change", text),
        ]
        if has_money:
            rows["clv_change"] = [
                f.change(a, b) for a, b in zip(rows.clv, rows.clv_before, strict=True)
            ]
            columns += [
                ("clv_before", f"CLV {day}", f.money),
                ("clv", "CLV now", f.money),
                ("clv_change", "Change", text),
            ]
        columns.append(("retention_rate", "Realised retention", f.percent))
        parts.append(
            f"<p>Against the table published for {day}. Realised retention: the share of that "
            "table's customers of the tier who bought since.</p>" + table(rows, columns)
        )
        parts.append(_migration(history["migration"], dates.max(), f, tiers))
    parts.append(_over_time(snaps, f, has_money))
    return "".join(parts)


def _migration(moves: pd.DataFrame, day: pd.Timestamp, f: Formats, tiers: list[str]) -> str:
    """Customers from each tier of the previous table (rows, new customers first) to each tier
    now (columns, those gone last), best tiers first."""
    now = moves[(pd.to_datetime(moves["as_of_date"]) == day) & (moves["dimension"] == "value_tier")]
    if now.empty:
        return ""
    grid = now.pivot_table(
        index="from_group", columns="to_group", values="customers", aggfunc="sum", fill_value=0
    )
    order = [kpis.NEW, *tiers, kpis.GONE]
    grid = grid.reindex(
        index=[t for t in order if t in grid.index], columns=[t for t in order if t in grid.columns]
    )
    grid = grid.reset_index().rename(columns={"from_group": "from \\ to"})
    columns = [("from \\ to", "Previous tier \\ tier now", text)] + [
        (c, c, f.count) for c in grid.columns[1:]
    ]
    return "<h3>Migration between value tiers</h3>" + table(grid, columns)


def _over_time(snaps: pd.DataFrame, f: Formats, has_money: bool) -> str:
    every = snaps[snaps["dimension"] == kpis.ALL].sort_values("as_of_date")
    series = [("customers", "Customers", f.count)]
    if has_money:
        series += [("clv", "Total CLV", f.money)]
        if "margin_clv" in every and every["margin_clv"].notna().any():
            series += [("margin_clv", "Total margin CLV", f.money)]
        series += [("value_at_risk", "Value at risk", f.money)]
    series += [
        ("expected_churn_rate", "Expected churn rate", f.percent),
        ("retention_rate", "Realised retention", f.percent),
    ]
    charts_html = "".join(
        charts.line_chart(every["as_of_date"], every[column], title, show)
        for column, title, show in series
    )
    return (
        f"<h3>KPIs over the published tables ({len(every)})</h3>"
        f'<div class="charts">{charts_html}</div>'
    )


def _glossary(scoring, context: Context, has_money: bool) -> str:
    terms = [
        *glossary.KPI_TERMS,
        *glossary.tier_terms(scoring.tiers, has_money),
        *glossary.lifecycle_terms(scoring.lifecycle, context.churn_days),
        *(glossary.segment_terms(scoring.views) if has_money else []),
        *glossary.rfm_terms(),
        *glossary.action_terms(scoring.views),
    ]
    items = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(meaning)}</dd>" for term, meaning in terms
    )
    return f'<h2>Glossary</h2><dl class="glossary">{items}</dl>'
