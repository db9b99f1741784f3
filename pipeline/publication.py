"""Publishing a scored customer table, the one way the score stage, `cvm score` and
`cvm retrain` do it: score the features with a model pair, check the table, write its files and
its segment summary all at once, and (for `cvm retrain`) move the registry aliases with the table
behind a journal that the next command completes or rolls back.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from pipeline import config, faults, io, outputs, registry, stops
from pipeline.catalog import scored_files, segment_files, segments_beside
from pipeline.database import DatabaseSettings, scored_staged
from pipeline.errors import CvmError
from pipeline.history import history_files

JOURNAL = "publish.json"  # in the state folder while the aliases follow a new table


def score_features(
    features: pd.DataFrame, models: registry.ScoringModels, settings: config.Settings, as_of: date
) -> pd.DataFrame:
    """The scored customer table of ``features`` (one row per customer) with ``models``."""
    from models.scoring import score_customers

    try:
        return score_customers(
            features, models.clv, models.churn, settings.scoring, models.labels(), as_of
        )
    except ValueError as err:
        raise CvmError(
            f"{models.labels()['churn_model']} cannot score these features ({err}); "
            "the features config differs from the one it was trained with"
        ) from None


def check_table(table: pd.DataFrame, customers: int, labels: dict[str, str]) -> None:
    """A scored table fit to publish: every customer once, every score defined, the models named."""
    problems = []
    if len(table) != customers:
        problems.append(f"{len(table)} rows for {customers} customers")
    if not table.customer_id.is_unique:
        problems.append("duplicate customer ids")
    scores = ["clv", "p_alive", "expected_purchases", "churn_probability"]
    undefined = {c: int(table[c].isna().sum()) for c in scores if table[c].isna().any()}
    if undefined:
        problems.append(f"undefined scores {undefined}")
    for column, label in labels.items():
        if not (table[column] == label).all():
            problems.append(f"{column} is not {label} everywhere")
    if problems:
        raise CvmError(f"the scored table is not fit to publish: {'; '.join(problems)}")


def report_page(
    settings: config.Settings,
    table: pd.DataFrame,
    made: str,
    history: dict[str, pd.DataFrame] | None = None,
    appendix: str = "",
    warnings: list[str] = (),
    no_history: str | None = None,
) -> str:
    """The report for the people who decide (:mod:`models.report`) of a scored ``table``
    that the command ``made`` names, with the published tables' KPI ``history``."""
    from models.report.page import Context, decision_page

    context = Context(
        made,
        settings.features.churn_horizon_days,
        settings.config.clv.prediction.clv_months,
        no_history,
    )
    return decision_page(
        table, settings.config.report, settings.scoring, context, history, appendix, warnings
    )


def report_file(base: Path) -> Path:
    """The report written beside the table published at ``base``."""
    return base.with_name(f"{base.name}_report.html")


def write_table(
    table: pd.DataFrame,
    base: Path,
    state: Path,
    guard_formulas: bool = True,
    segments: Path | None = None,
    extra: dict[Path, dict | str] | None = None,
    database: DatabaseSettings | None = None,
    history: dict[str, pd.DataFrame] | None = None,
) -> dict | None:
    """The scored table's three files at ``base`` (.parquet, .csv, .schema.json), its segment
    summary's two at ``segments`` (default ``<base>_segments``), the ``extra`` files (JSON of a
    mapping, a text as it is) and the KPI ``history`` with this table's snapshot
    (:func:`pipeline.history.next_history`), all at once; with ``database``, their copy there
    too, staged before the files (:func:`pipeline.database.scored_staged`). A table without the
    value views (not from :func:`models.scoring.score_customers`) has no summary. Returns what
    the database got."""
    from models.scoring import table_schema
    from models.value_views import SUMMARY_READS, segment_summary

    files = list(scored_files(base).values())
    summary = segment_summary(table) if set(SUMMARY_READS) <= set(table.columns) else None
    if summary is not None:
        files += segment_files(segments or segments_beside(base)).values()
    # what is written beside the table: the history's Parquet files, the extra files
    beside = {history_files(base)[kind]: frame for kind, frame in (history or {}).items()}
    beside |= extra or {}
    with (
        scored_staged(table, database, history) as published,
        outputs.atomic_outputs(*files, *beside, state=state) as temps,
    ):
        for temp, content in zip(temps[len(files) :], beside.values(), strict=True):
            if isinstance(content, pd.DataFrame):
                content.to_parquet(temp, index=False)
            elif isinstance(content, str):
                temp.write_text(content)
            else:
                io.write_json(content, temp, atomic=False)
        io.write_table_files(
            table,
            table_schema(table),
            *temps[:3],
            guard_formulas,
            segments=summary,
            segment_paths=(temps[3], temps[4]) if summary is not None else None,
        )
    return published


def publish_with_aliases(
    table: pd.DataFrame,
    base: Path,
    state: Path,
    guard_formulas: bool,
    client,
    labels: dict[str, str],
    after: list[list],
    before: list[list],
    database: DatabaseSettings,
    history: dict[str, pd.DataFrame] | None = None,
    extra: dict[Path, dict | str] | None = None,
) -> dict | None:
    """Replace the scored table at ``base`` (and its copy in the ``database``, with the KPI
    ``history``, and the ``extra`` files beside it: :func:`write_table`),
    then move the registry aliases to ``after``
    (rows ``[model name, alias, version]``), behind a journal: a command stopped anywhere in
    between (even killed) leaves it to :func:`recover`, which moves them forward when the table
    in place is the new one (its model columns are ``labels``) and back to ``before``
    otherwise. Returns what the database got."""
    plan = {
        "scored": outputs.stored(base.with_suffix(".parquet"), state),
        "labels": labels,
        "after": after,
        "before": before,
    }
    io.write_json(plan, state / JOURNAL)
    try:
        faults.checkpoint("publish:journal")
        published = write_table(
            table, base, state, guard_formulas, extra=extra, database=database, history=history
        )
        faults.checkpoint("publish:table")
    finally:
        with stops.held():  # stopped or not, the aliases follow the table in place
            recover(state, client)
    return published


def recover(state: Path, client) -> str | None:
    """Finish a publication a stopped command left behind: the aliases follow the scored table
    in place (moved forward when it is the new table, back otherwise); returns what was done."""
    journal = state / JOURNAL
    if not journal.is_file():
        return None
    plan = io.read_json(journal)
    forward = _labels(outputs.located(plan["scored"], state), plan["labels"]) == plan["labels"]
    for number, (name, alias, version) in enumerate(plan["after" if forward else "before"], 1):
        registry.move_alias(client, name, alias, version)
        faults.checkpoint(f"publish:alias:{number}")
    journal.unlink()
    return "completed" if forward else "rolled back"


def _labels(scored: Path, columns: dict[str, str]) -> dict[str, str] | None:
    """The model labels of the scored table at ``scored`` (its first row), if it has them."""
    import pyarrow.parquet as pq

    try:
        first = pq.ParquetFile(scored).read_row_group(0, columns=list(columns)).slice(0, 1)
        return {c: first.column(c)[0].as_py() for c in columns}
    except Exception:  # missing, unreadable or another table: not the new one
        return None
