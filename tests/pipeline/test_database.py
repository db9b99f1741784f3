"""Publishing to the database downstream teams read: a real PostgreSQL server that the suite
starts itself (``pgserver``, listening on a Unix socket only) and the DuckDB file of the default.
A publication killed half-way leaves the previous tables readable and whole."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys

import pandas as pd
import pytest

from pipeline import faults
from pipeline.database import DatabaseSettings, publish, read
from pipeline.errors import CvmError
from tests.conftest import REPO, readme_query

TABLES = {"customers": "customers", "segments": "customer_segments"}


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path, monkeypatch) -> DatabaseSettings:
    monkeypatch.chdir(tmp_path)
    if request.param == "duckdb":
        return DatabaseSettings("duckdb:///data/published/customers.duckdb", "cvm", TABLES)
    # one schema per test: the server is shared by the session
    return DatabaseSettings(request.getfixturevalue("postgres"), tmp_path.name[-40:], TABLES)


def scored(clv: float, rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "clv": [clv] * (rows - 1) + [None],
            "frequency": list(range(rows)),
            "value_tier": pd.Categorical(["gold"] * rows),
            "as_of_date": pd.to_datetime(["2024-06-30"] * rows),
            "clv_model": ["cvm-clv/3"] * rows,
        }
    )


def test_a_publication_replaces_both_tables(database):
    assert publish({"customers": scored(1.0), "segments": scored(1.0, 2)}, database) == {
        "customers": 3,
        "segments": 2,
    }
    publish({"customers": scored(2.5, 4), "segments": scored(2.5, 1)}, database)
    customers = read(database, "customers").sort_values("customer_id", ignore_index=True)
    assert customers.customer_id.tolist() == ["c0", "c1", "c2", "c3"]
    assert customers.clv.tolist()[:3] == [2.5, 2.5, 2.5] and pd.isna(customers.clv.iloc[3])
    assert customers.frequency.tolist() == [0, 1, 2, 3]
    assert (customers.value_tier == "gold").all() and (customers.clv_model == "cvm-clv/3").all()
    assert pd.Timestamp(customers.as_of_date.iloc[0]) == pd.Timestamp("2024-06-30")
    assert len(read(database, "segments")) == 1


def test_a_publication_killed_before_the_swap_leaves_the_previous_tables(database):
    publish({"customers": scored(1.0), "segments": scored(1.0, 2)}, database)
    script = (
        "import sys, pandas as pd\n"
        "from pipeline.database import DatabaseSettings, publish\n"
        "from tests.pipeline.test_database import TABLES, scored\n"
        f"settings = DatabaseSettings({database.url!r}, {database.schema!r}, TABLES)\n"
        "publish({'customers': scored(9.0, 5), 'segments': scored(9.0, 5)}, settings)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), faults.VARIABLE: "database:written"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    # what a reader sees: the previous tables, whole
    assert read(database, "customers").clv.max() == 1.0
    assert len(read(database, "segments")) == 2
    # the next publication drops the killed one's temporary tables and swaps in its own
    publish({"customers": scored(3.0), "segments": scored(3.0)}, database)
    assert read(database, "customers").clv.max() == 3.0
    assert tables(database) == {"customers", "customer_segments"}


def tables(database: DatabaseSettings) -> set[str]:
    """The tables of the publication's schema, from the database's own catalog."""
    query = "SELECT table_name FROM information_schema.tables WHERE table_schema = "
    if database.url.startswith("duckdb"):
        import duckdb

        with duckdb.connect(database.url.removeprefix("duckdb:///")) as con:
            return {r[0] for r in con.execute(query + "?", [database.schema]).fetchall()}
    import psycopg

    with psycopg.connect(database.url) as con:
        return {r[0] for r in con.execute(query + "%s", [database.schema]).fetchall()}


def test_the_tables_carry_dates_and_the_column_docs_readers_see(database):
    """Readers found a TIMESTAMP for a day and no column comments; on the default DuckDB file
    the documented query ``cvm.customers`` was ambiguous (its catalog was named cvm too)."""
    from pipeline.database import staged

    with staged(
        {"customers": scored(1.0)}, database, {"customers": {"clv": "The customer's value."}}
    ):
        pass
    if database.url.startswith("duckdb"):
        import duckdb

        with duckdb.connect("data/published/customers.duckdb", read_only=True) as con:
            assert con.execute("select count(*) from cvm.customers").fetchone() == (3,)
            found = con.execute(
                "select column_name, data_type, comment from duckdb_columns() "
                "where schema_name = 'cvm' and table_name = 'customers'"
            ).fetchall()
        # the README's command, as printed
        (command,) = re.findall(
            r"```sh\n(\.venv/bin/python -c .*?)\n```", (REPO / "README.md").read_text()
        )
        shown = subprocess.run(
            [sys.executable, *shlex.split(command)[1:]], capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr
        assert "customer_id" in shown.stdout and shown.stdout.count("c0") == 1
    else:
        import psycopg

        with psycopg.connect(database.url) as con:
            found = con.execute(
                "select a.attname, format_type(a.atttypid, a.atttypmod), "
                "col_description(a.attrelid, a.attnum) from pg_attribute a "
                "where a.attrelid = %s::regclass and a.attnum > 0",
                [f'"{database.schema}".customers'],
            ).fetchall()
    columns = {name: (kind.upper(), comment) for name, kind, comment in found}
    assert columns["as_of_date"][0] == "DATE"
    assert columns["clv"][1] == "The customer's value."
    assert read(database, "customers").as_of_date.astype(str).tolist() == ["2024-06-30"] * 3


def test_a_bad_url_is_named():
    settings = DatabaseSettings("mysql://db/cvm", "cvm", TABLES)
    with pytest.raises(CvmError, match="export.database.url is 'mysql://db/cvm'; expected"):
        publish({"customers": scored(1.0)}, settings)


def test_the_score_stage_publishes_only_when_asked_and_beside_the_teams_tables(
    pipeline_outputs, tmp_path, monkeypatch
):
    """`dvc repro` leaves the database alone unless export.database.from_pipeline is set; then
    the stage writes tables of its own (pipeline_customers...) beside those `cvm score` and
    `cvm retrain` publish, never in their place, and the README's comparison query runs."""
    import shutil

    import duckdb
    import yaml

    from pipeline.cli import main

    project = tmp_path / "copy"
    shutil.copytree(pipeline_outputs, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    monkeypatch.chdir(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    file = project / "data/published/customers.duckdb"
    database = DatabaseSettings.from_config(params["export"]["database"])
    scored = pd.read_parquet(project / "data/scored/customers.parquet")
    for from_pipeline in (False, True):
        params["export"]["database"]["from_pipeline"] = from_pipeline
        (project / "local.yaml").write_text(yaml.safe_dump(params))
        assert main(["stage", "score", "--params", "local.yaml"]) == 0
        assert file.exists() == from_pipeline
        if not from_pipeline:  # the teams' table, as `cvm score` published it the week before
            champion = scored.assign(
                recommended_action=scored.recommended_action.where(
                    scored.index % 7 > 0, "phone them"
                )
            )
            publish({"customers": champion}, database)
    published = read(database.for_pipeline(), "customers").sort_values("customer_id")
    assert published.customer_id.tolist() == sorted(scored.customer_id)
    assert published.clv.sum() == pytest.approx(scored.clv.sum())
    assert len(read(database.for_pipeline(), "segments")) > 0
    assert read(database, "customers").recommended_action.eq("phone them").sum() == len(scored[::7])

    query = readme_query("-- customers whose recommended action differs")
    with duckdb.connect(str(file), read_only=True) as con:
        found = con.sql(query).df()
    changed = scored.iloc[::7]
    changed = changed[changed.recommended_action != "phone them"]
    assert sorted(found.customer_id) == sorted(changed.customer_id)
    assert (found.recommended_action == "phone them").all()


@pytest.mark.parametrize("refusal", ["duckdb_locked_by_a_reader", "postgresql_down"])
def test_a_database_that_refuses_the_tables_leaves_the_files_as_they_were(
    pipeline_outputs, tmp_path, monkeypatch, capsys, refusal
):
    """Files and database are published together or not at all: the score stage stages the
    tables first, so a database that refuses them (another process holding DuckDB's lock, a
    PostgreSQL server that does not answer) fails the command before any file is replaced."""
    import shutil
    import subprocess
    import sys

    import yaml

    from pipeline.cli import main

    project = tmp_path / "copy"
    shutil.copytree(pipeline_outputs, project, ignore=shutil.ignore_patterns("mlflow.db", "mlruns"))
    monkeypatch.chdir(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    params["export"]["database"]["from_pipeline"] = True
    holder = None
    if refusal == "postgresql_down":
        params["export"]["database"]["url"] = "postgresql://cvm@/cvm?host=/nonexistent/socket"
    else:
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_DUCKDB, "data/published/customers.duckdb"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline() == "holding\n"
    (project / "local.yaml").write_text(yaml.safe_dump(params))
    scored = sorted((project / "data/scored").glob("customers*"))
    before = {p: (p.stat().st_ino, p.read_bytes()) for p in scored}
    try:
        assert main(["stage", "score", "--params", "local.yaml"]) == 2
    finally:
        if holder:
            holder.kill()
            holder.wait()
    err = capsys.readouterr().err
    assert "cvm: error:" in err and "cannot write the new tables" in err, err
    assert {p: (p.stat().st_ino, p.read_bytes()) for p in scored} == before
    assert not [p for p in (project / "data/scored").iterdir() if p.name.startswith(".")]


HOLD_DUCKDB = """
import sys, time
from pathlib import Path
import duckdb
Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(600)
"""


@pytest.mark.postgres
def test_the_readme_queries_run_on_postgresql_as_printed(pipeline_outputs, postgres):
    """The README's SQL, as printed, on the tables as `cvm score`, `cvm retrain` and the
    pipeline publish them to PostgreSQL (schema ``cvm``): the KPI history's retention per tier
    and the customers whose recommended action differs from the pipeline's."""
    import psycopg

    from models.kpis import snapshot

    table = pd.read_parquet(pipeline_outputs / "data/scored/customers.parquet")
    week_before = table.assign(as_of_date=table.as_of_date - pd.Timedelta(days=7))
    champion = table.assign(
        recommended_action=table.recommended_action.where(table.index % 7 > 0, "phone them")
    )
    tables = {"customers": "customers", "kpis": "kpi_history"}
    settings = DatabaseSettings(postgres, "cvm", tables)
    history = pd.concat([snapshot(week_before), snapshot(table, week_before)], ignore_index=True)
    publish({"customers": champion, "kpis": history}, settings)
    publish({"customers": table}, settings.for_pipeline())

    with psycopg.connect(postgres) as con:
        retention = con.execute(readme_query("-- the realised weekly retention per value tier"))
        rows = retention.fetchall()
        differs = con.execute(readme_query("-- customers whose recommended action differs"))
        changed = pd.DataFrame(differs.fetchall(), columns=[d[0] for d in differs.description])
    # one row per tier of the second week, the share of last week's tier that bought since
    expected = snapshot(table, week_before).query("dimension == 'value_tier'")
    assert [(r[1], r[2]) for r in rows] == list(
        zip(expected.group, expected.previous_customers, strict=True)
    )
    assert [r[3] for r in rows] == pytest.approx(expected.retention_rate.tolist())
    want = table.iloc[::7]
    want = want[want.recommended_action != "phone them"]
    assert sorted(changed.customer_id) == sorted(want.customer_id)
    assert (changed.recommended_action == "phone them").all()
    assert changed.clv.is_monotonic_decreasing  # ORDER BY c.clv DESC
