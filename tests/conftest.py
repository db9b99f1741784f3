"""Shared fixtures: the repository, the bundled data and a params.yaml for a temp directory."""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from tests.cvm_forks import REPO, run_cvm

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")

FIXTURES = REPO / "tests" / "fixtures"
CDNOW_SAMPLE = REPO / "data" / "raw" / "cdnow" / "CDNOW_sample.txt"
CDNOW_MASTER = REPO / "data" / "raw" / "cdnow" / "CDNOW_master.txt"

# the mapping and rules of the small CSV logs the ingest tests write
CSV_MAPPING = (
    "data.format=csv",
    "data.mapping.customer_id=cust",
    "data.mapping.timestamp=when",
    "data.mapping.timestamp_format=%Y-%m-%d",
    "data.mapping.amount=value",
    "data.mapping.quantity=qty",
    "data.rules.start=2024-01-01",
    "data.rules.end=2024-12-31",
    "data.calibration_end=2024-06-30",
    "data.holdout_end=2024-12-31",
    "data.scoring_date=2024-12-31",
    "data.rules.duplicates=quarantine",
    "tracking.enabled=false",
)


# the marks of long tests, longest first: they start first, so that under pytest-xdist the
# short ones fill the gaps at the end instead of one worker finishing a long test alone. The
# DVC group, which needs no other fixture, goes first: one worker runs it while the other builds
# the sample run the fault tests start from, instead of waiting for it
LONG_FIRST = ("dvc", "faults", "spark", "e2e", "slow")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that reads the suite's complete run is an end-to-end test, one that uses the
    PostgreSQL server a PostgreSQL test (``make test-fast`` leaves both out). Long tests first
    (the order is the same in every worker: xdist requires it)."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pipeline_outputs" in names:
            item.add_marker(pytest.mark.e2e)
        if "postgres" in names:
            item.add_marker(pytest.mark.postgres)

    def rank(item: pytest.Item) -> int:
        marks = {m.name for m in item.iter_markers()}
        return next((i for i, name in enumerate(LONG_FIRST) if name in marks), len(LONG_FIRST))

    items.sort(key=rank)


def input_roots(project: Path) -> str:
    """The override declaring where the tests' logs lie outside their ``project``: the bundled
    data, the test fixtures and the folder holding the project (the test's temporary one)."""
    roots = (REPO / "data" / "raw", FIXTURES, project.parent)
    return f"paths.input_roots=[{','.join(repr(str(r)) for r in roots)}]"


def write_params(project: Path, *overrides: str, new_store: bool = False) -> dict:
    """``conf/`` composed with ``overrides`` into ``project/params.yaml``; returns the config.
    The project's MLflow store starts as a copy of an empty one (:func:`seed_store`) unless
    ``new_store``: then MLflow creates it when the project first runs."""
    from pipeline import config

    project.mkdir(parents=True, exist_ok=True)
    cfg = config.compose([input_roots(project), *overrides], REPO / "conf")
    config.write_params(cfg, project / "params.yaml")
    if not new_store:
        seed_store(project, cfg)
    return cfg


def readme_query(first_line: str) -> str:
    """The README's SQL block that starts with the comment ``first_line``, as printed."""
    blocks = re.findall(r"```sql\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    (query,) = [b for b in blocks if b.startswith(first_line)]
    return query


def seed_store(project: Path, cfg: dict) -> None:
    """With tracking on and the MLflow store a SQLite file in ``project`` that does not exist
    yet, that file as MLflow creates it (its tables, the default experiment), copied from one it
    created once in this process: MLflow spends about 2 s migrating a new store's schema."""
    tracking = cfg["tracking"]
    if not tracking["enabled"] or not tracking["uri"].startswith("sqlite:///"):
        return
    store = project / tracking["uri"].removeprefix("sqlite:///")
    if store.parent.resolve() == project.resolve() and not store.exists():
        shutil.copyfile(_empty_store(), store)


@functools.cache
def _empty_store() -> Path:
    import mlflow

    folder = Path(tempfile.mkdtemp(prefix="cvm-tests-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    uri = f"sqlite:///{folder}/mlflow.db"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    client.search_experiments()  # the tracking store's tables
    client.search_registered_models()  # the registry's
    return folder / "mlflow.db"


def read_raw(path: Path, fmt: str, columns: list[str], **options):
    """A small raw log as the ingest stage reads it (``io.raw_table`` on DuckDB, with its
    ``options``), in pandas."""
    from pipeline import engine, io

    with engine.session({"name": "duckdb", "threads": 2}) as con:
        table, _ = io.raw_table(con, path, fmt, columns, **options)
        return table.order_by("source_row").execute()


@pytest.fixture(scope="session")
def reference_values() -> dict:
    return json.loads((FIXTURES / "reference_values.json").read_text())


@pytest.fixture
def make_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Compose conf/ with Hydra overrides into ``tmp_path/params.yaml`` and chdir there.

    Outputs and the MLflow store land in ``tmp_path``. The config is not validated here: a
    test of a bad value sees the command that loads it refuse it.
    """
    from pipeline import config

    def make(*overrides: str) -> Path:
        cfg = config.compose(
            [input_roots(tmp_path), f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", *overrides],
            REPO / "conf",
            validate=False,
        )
        path = tmp_path / "params.yaml"
        config.write_params(cfg, path)
        seed_store(tmp_path, cfg)
        monkeypatch.chdir(tmp_path)
        return path

    return make


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The directory ``build(directory)`` filled, built once per test session however many
    pytest-xdist workers ask for it: the first builds it under a file lock, the others wait for
    it and share it. Whoever uses it only reads it (a test that changes something works on a
    copy). A build that failed fails every test that asks for it, with the first error.

    Fixtures that need another built directory ask for it as a fixture argument, so no lock is
    ever held while waiting for another one.
    """
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker has a basetemp of its own inside the session's
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "built"
    root.mkdir(parents=True, exist_ok=True)
    directory, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with FileLock(root / f"{name}.lock"):
        if failed.exists():
            pytest.fail(f"building {name} failed:\n{failed.read_text()}", pytrace=False)
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            try:
                build(directory)
            except BaseException:
                failed.write_text(traceback.format_exc())
                raise
            done.touch()
    return directory


SAMPLE_RUN = ("data=cdnow_sample", f"data.path={CDNOW_SAMPLE}", "clv.method=map")


@pytest.fixture(scope="session")
def pipeline_outputs(tmp_path_factory) -> Path:
    """`cvm run` on the CDNOW sample (MAP fits, models registered) in a project directory of
    its own, whose MLflow store is the project's (``sqlite:///mlflow.db``, the default), created
    by the run itself.

    One run serves every test that reads a complete run's outputs, its MLflow records or its
    registered models. Read-only: a test that writes copies it first (``shutil.copytree``; the
    copy finds its own runs and models, see ``pipeline/relocate.py``).
    """

    def build(project: Path) -> None:
        write_params(project, *SAMPLE_RUN, "tracking.register=true", new_store=True)
        done = run_cvm(project, "run")
        assert done.returncode == 0, done.stderr[-3000:]

    return built_once(tmp_path_factory, "sample_run", build)


@pytest.fixture(scope="session")
def cdnow_sample_clean():
    """The CDNOW sample's clean log (pandas), read and validated as the ingest stage does."""
    import ibis

    from features.cleaning import classify, clean_rows
    from features.spec import ColumnMapping, IngestRules

    mapping = ColumnMapping(
        customer_id="customer_id",
        timestamp="date",
        timestamp_format="%Y%m%d",
        amount="dollar_value",
        quantity="number_of_cds",
    )
    names = ["master_id", "customer_id", "date", "number_of_cds", "dollar_value"]
    raw = read_raw(CDNOW_SAMPLE, "whitespace", mapping.source_columns(), header=False, names=names)
    rules = IngestRules(duplicates="keep")
    return clean_rows(classify(ibis.memtable(raw), mapping, rules)).execute()


@pytest.fixture(scope="session")
def postgres() -> str:
    """A real PostgreSQL server for the session, from the ``pgserver`` package: it listens on a
    Unix socket in a temporary folder (no TCP port) and stops at the end. Yields its URL.

    The folder is not under pytest's temporary root: run as root, the server runs as a user of
    its own, and any pytest session that starts meanwhile makes that root private again (0700),
    so the server's next checkpoint would fail."""
    import tempfile

    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="cvm-tests-postgres-"))
    server = pgserver.get_server(folder, cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)
