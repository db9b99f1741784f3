"""The model evaluation for data scientists: the appendix of the report (:mod:`models.report`)."""

from __future__ import annotations

import base64
import html
import io as bytes_io

import pandas as pd

from models.evaluation import plots


def _png(fig) -> str:
    buffer = bytes_io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode()


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(float_format=lambda v: f"{v:,.4f}", na_rep="–", border=0)


def _segment_tables(segments: pd.DataFrame, cells: pd.DataFrame) -> str:
    """The segment summary: the value matrix's cells, and the value tier x lifecycle stage
    pairs; nothing without a summary."""
    if segments.empty:
        return ""
    parts = ["<h3>Segment summary</h3>"]
    if len(cells):
        parts.append(_table(_summary_columns(cells).set_index("value_segment")))
    pairs = segments[(segments.view == "tier_lifecycle") & (segments.customers > 0)]
    parts.append(_table(_summary_columns(pairs).set_index(["value_tier", "lifecycle_stage"])))
    return "".join(parts)


def _summary_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """The summary columns worth showing: those holding a value (no money without amounts)."""
    from models.value_views import SUMMARY_COLUMNS

    keep = [c for c in SUMMARY_COLUMNS if c != "view"]
    return rows[[c for c in keep if c in rows.columns and rows[c].notna().any()]]


def _level_sentence(selection: dict | None) -> str:
    """Which model's P(no purchase) the score recalibrates and whose level it is shifted to
    (:mod:`models.churn.level`), when it is shifted."""
    level = (selection or {}).get("level")
    if not level:
        return ""
    shape, mean = (_model(choice) for choice in (level["shape"]["choice"], level["choice"]))
    return (
        f" Its prior is the P(no purchase) of {shape} (the lowest validation log loss, its level "
        f"set aside); its mean is set to {level['mean']:.3f}, {mean}'s (the smallest error of "
        "the churn level at the validation cutoff)."
    )


def _model(choice: str) -> str:
    """A purchase model the churn level chose, as a sentence names it."""
    return "the CLV model" if choice == "clv" else f"the {choice} model"


def _reference_sentence(evaluation: dict) -> str:
    """The CLV model's customer MAE of holdout purchases beside the stationary BG/NBD's."""
    reference = evaluation.get("clv_reference")
    if not reference:
        return ""
    mae, interval = evaluation["clv"]["purchases"]["mae"], reference["intervals"]["mae"]
    difference = reference["intervals"]["difference"]
    return (
        f"Customer MAE of holdout purchases {mae:.3f} (95% interval {interval['low']:.3f} to "
        f"{interval['high']:.3f}); the stationary BG/NBD fit on the same customers: "
        f"{reference['purchases']['mae']:.3f}, aggregate error "
        f"{reference['purchases']['aggregate_error_pct']:+.1f}% (the difference's 95% interval "
        f"{difference['low']:+.4f} to {difference['high']:+.4f})."
    )


def _purchase_model_section(fits: dict) -> str:
    """The purchase model of each fit (``fit_clv``'s report): its clock, its regularity where it
    has one and, where it was chosen out of time, every candidate's scores at the validation
    cutoff and the reason."""
    parts = []
    for name in ("calibration", "scoring"):
        fit = fits.get(name, {})
        if "model" not in fit:
            continue
        line = f"{name} fit: {fit['model']}"
        if season := fit.get("season"):
            line += (
                f" on a yearly seasonal clock (busiest around day {season['peak_day']:.0f} of "
                f"the year, {100 * season['amplitude']:.0f}% above the mean rate)"
            )
        if regularity := fit.get("regularity"):
            by_k = ", ".join(f"{k}: {v:,.1f}" for k, v in regularity["loglik"].items())
            line += (
                f", its customers buying every k-th event of their rate (Erlang-k times between "
                f"purchases; k = 1 is MBG/NBD), k = {regularity['k']} of highest likelihood "
                f"(log-likelihood by k: {by_k})"
            )
        parts.append(f"<p>{html.escape(line)}.</p>")
        if choice := fit.get("choice"):
            scores = pd.DataFrame(choice["scores"]).T.assign(noise=pd.Series(choice["noise"]))
            parts.append(
                f"<p>Chosen at the validation cutoff {choice['validation_cutoff']} "
                f"({choice['customers']:,} customers): {html.escape(choice['reason'])}. Rule: "
                f"{html.escape(choice['rule'])}.</p>{_table(scores)}"
            )
    return "<h4>Purchase model</h4>" + "".join(parts) if parts else ""


def evaluation_appendix(
    scored: pd.DataFrame,
    evaluation: dict,
    importance: pd.DataFrame,
    curves: dict[str, pd.DataFrame],
    selection: dict | None = None,
    segments: pd.DataFrame | None = None,
    levels: list[str] = (),
    fits: dict | None = None,
) -> str:
    """The model evaluation for data scientists (the report's appendix, :mod:`models.report`):
    a scored table, its evaluation results, the churn model's feature importances and the
    evaluation's plot data (``tracking``, ``calibration_holdout``, ``churn_roc``,
    ``churn_calibration``). ``segments`` is the segment summary, its value matrix rows with their
    ``historical_level`` and ``clv_level`` (of ``levels``, lowest first); ``fits`` is
    ``fit_clv``'s report (the purchase model of each fit, how chosen)."""
    churn = pd.DataFrame(evaluation["churn"]).T.drop(columns=["n", "base_rate"])
    clv = pd.DataFrame(evaluation["clv"]).T.drop(columns=["n"])
    aucs = {k: v["roc_auc"] for k, v in evaluation["churn"].items()}
    holdout = evaluation["holdout_length"]
    has_spend = bool(scored.clv.notna().any())  # a log without amounts predicts no spend
    segments = pd.DataFrame(columns=["view"]) if segments is None else segments
    placed = segments.view == "value_matrix"
    placed &= segments["historical_level"].notna() if "historical_level" in segments else False
    cells = segments[placed]
    figures = [
        plots.tier_shares(scored),
        *([plots.value_matrix(cells, list(levels))] if len(cells) else []),
        *([plots.clv_distribution(scored)] if has_spend else []),
        plots.p_alive_matrix(scored),
        plots.tracking(curves["tracking"], curves["tracking"].period.max() - holdout),
        plots.calibration_holdout(curves["calibration_holdout"]),
        *(
            figure(curves[name])
            for name, figure in (
                ("repeat_histogram", plots.repeat_histogram),
                ("holdout_by_recency", plots.conditional_by_recency),
                ("heterogeneity", plots.heterogeneity),
                ("p_alive_paths", plots.p_alive_paths),
            )
            if name in curves
        ),
        plots.roc_curves(curves["churn_roc"], aucs),
        plots.reliability(curves["churn_calibration"]),
        plots.feature_importance(importance),
    ]
    images = "".join(f'<img src="data:image/png;base64,{_png(f)}" alt="">' for f in figures)
    beats = evaluation["churn_model_beats"]
    margins = evaluation["churn_intervals"]["margins"]
    verdict = "; ".join(
        f"{m}: {v['model']:.4f} vs {v['strongest_baseline']} {v['baseline']:.4f}"
        f" ({'better' if v['beats'] else 'not better'}; the margin's 95% bootstrap interval "
        f"{margins[m][v['strongest_baseline']]['low']:+.4f} to "
        f"{margins[m][v['strongest_baseline']]['high']:+.4f})"
        for m, v in beats.items()
    )
    return f"""
<h3>Holdout evaluation (calibration cutoff {evaluation["dates"]["calibration_end"]})</h3>
<h4>CLV model: holdout purchases and spend per customer</h4>{_table(clv)}
<p>{html.escape(_reference_sentence(evaluation))}</p>
{_purchase_model_section(fits or {})}
<h4>Churn model and baselines</h4><p>{html.escape(verdict)}</p>
<p>Published churn score: {html.escape((selection or {}).get("reason", "the booster"))}
({html.escape((selection or {}).get("rule", ""))}).{html.escape(_level_sentence(selection))}</p>
{_table(churn)}
{_segment_tables(segments, cells)}
<h3>Plots</h3><div class="grid">{images}</div>
"""
