"""The appendix of a report made by `cvm score` or `cvm retrain`: where the table comes from and,
for a retraining, the promotion decision that chose its models."""

from __future__ import annotations

import html

import pandas as pd

from models.report.fmt import table, text


def facts(title: str, items: list[tuple[str, object]]) -> str:
    """A two-column table of labelled facts (a log's path, rows read, the models)."""
    rows = pd.DataFrame(items, columns=["fact", "value"])
    return f"<h3>{html.escape(title)}</h3>" + table(rows, [("fact", "", text), ("value", "", text)])


def _figure(value) -> str:
    return "–" if value is None else f"{value:.4g}"


def promotion(summary: dict) -> str:
    """`cvm retrain`'s decision: promoted or kept and why, every promotion metric of both model
    pairs on the window since the champion's calibration, and the drift check."""
    decision = summary.get("decision") or {}
    parts = ["<h3>Promotion</h3>"]
    verdict = "promoted" if decision.get("promoted") else "not promoted; the champion stays"
    parts.append(f"<p>The challenger was {verdict}: {html.escape(decision.get('reason', ''))}.</p>")
    evaluation = summary.get("evaluation") or {}
    rows = pd.DataFrame(evaluation.get("metrics", []))
    if len(rows):
        window = evaluation.get("window", {})
        rows = rows.assign(worse=rows["worse"].map({True: "yes", False: "no"}))
        for column in ("challenger", "champion", "limit"):
            rows[column] = rows[column].map(_figure)
        parts.append(
            f"<p>Both pairs evaluated from {window.get('start')} to {window.get('end')}.</p>"
            + table(
                rows,
                [
                    ("metric", "Metric", text),
                    ("better", "Better when", text),
                    ("challenger", "Challenger", text),
                    ("champion", "Champion", text),
                    ("limit", "Limit", text),
                    ("worse", "Worse beyond the limit", text),
                ],
            )
        )
    drift = summary.get("drift") or {}
    if drift:
        breaches = ", ".join(drift.get("breaches", [])) or "none"
        parts.append(
            f"<p>Drift against the champion's training data: {html.escape(drift['status'])} "
            f"(breaches: {html.escape(breaches)}).</p>"
        )
    return "".join(parts)
