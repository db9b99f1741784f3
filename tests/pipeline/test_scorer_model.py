"""The registered models as a downstream team uses them: `cvm-scorer` loaded where cvm is not
importable and served over HTTP, `cvm-clv` and `cvm-churn` called with what a caller has.

The suite's `cvm run` on the CDNOW sample (MAP fits, `tracking.register=true`; the
``pipeline_outputs`` fixture); every model comes from its MLflow registry.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from pipeline import config

pytestmark = pytest.mark.serving

LABELS = ["clv_model", "churn_model"]  # registry versions here, content hashes in the table
# what a one-time buyer has no value for: gaps between purchases
NO_GAPS = {"gap_max": None, "gap_mean": None, "gap_std": None, "overdue_ratio": None}


@pytest.fixture
def project(pipeline_outputs) -> Path:
    """The run's project, its models registered (read-only: shared with other tests)."""
    settings = config.Settings(config.load_params(pipeline_outputs / "params.yaml"))
    assert settings.tracking["register"]
    return pipeline_outputs


@pytest.fixture
def registry(project):
    uri = f"sqlite:///{project}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return mlflow.MlflowClient(uri, registry_uri=uri)


def features(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / "data/features/scoring.parquet")


def scored(project: Path) -> pd.DataFrame:
    return pd.read_parquet(project / "data/scored/customers.parquet")


def as_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Every integer column (the counts) as floats, as a caller's frame may hold them."""
    return frame.astype({c: "float64" for c in frame.columns if frame[c].dtype.kind == "i"})


def assert_rows_match(got: pd.DataFrame, table: pd.DataFrame) -> None:
    """``got`` holds the scored table's rows of its customers, every column, the same values
    (floats within 1e-9); the model labels name registry versions. The retention priority ranks
    the customers scored together (1, 2, … without gaps), in the table's order."""
    assert list(got.columns) == list(table.columns)
    assert (got.clv_model == "cvm-clv/1").all() and (got.churn_model == "cvm-churn/1").all()
    got = got.set_index("customer_id")
    expected = table.set_index("customer_id").loc[got.index]
    ranked = [c for c in ("retention_priority",) if c in expected.columns]
    for name in ranked:
        assert sorted(got[name].astype(int)) == list(range(1, len(got) + 1)), name
        assert got[name].astype(int).tolist() == expected[name].rank().astype(int).tolist(), name
    for name in expected.columns.drop(LABELS + ranked):
        want, have = expected[name], got[name]
        if want.dtype.kind == "f":
            np.testing.assert_allclose(have.astype(float), want, rtol=0, atol=1e-9, err_msg=name)
        elif want.dtype.kind == "M":
            assert (pd.to_datetime(have) == want).all(), name
        else:
            assert have.astype(str).tolist() == want.astype(str).tolist(), name


CALLER = """
import sys
from pathlib import Path

# no checkout of cvm on the path (the project is installed in editable mode: its .pth file
# puts the repository there), and not the working directory
sys.path = [
    p for p in sys.path if p not in ("", ".") and not Path(p, "pipeline", "__init__.py").is_file()
]
try:
    import pipeline
except ModuleNotFoundError:
    pass
else:
    raise SystemExit(f"cvm is importable: {pipeline.__file__}")

import mlflow
import pandas as pd

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_registry_uri(sys.argv[1])
model = mlflow.pyfunc.load_model("models:/cvm-scorer/1")
frame = pd.read_parquet(sys.argv[2])
model.predict(frame).to_parquet(sys.argv[3])
print(sorted(name for name in sys.modules if name.split(".")[0] == "pipeline"))
"""


def test_the_scorer_loads_and_scores_without_cvm(project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    frame = as_floats(features(project))
    frame.to_parquet(elsewhere / "features.parquet")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(CALLER),
            f"sqlite:///{project}/mlflow.db",
            str(elsewhere / "features.parquet"),
            str(elsewhere / "scored.parquet"),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # only the serving module travels with the model, nothing else of the pipeline
    assert result.stdout.strip().splitlines()[-1] == "['pipeline', 'pipeline.serving']"
    got, table = pd.read_parquet(elsewhere / "scored.parquet"), scored(project)
    assert got.customer_id.tolist() == table.customer_id.tolist()  # same order: by CLV
    assert_rows_match(got, table)


def test_a_batch_of_one_time_buyers_scores_as_in_the_table(project, registry):
    model = mlflow.pyfunc.load_model("models:/cvm-scorer/1")
    table = scored(project)
    once = features(project).query("frequency == 0").head(8)
    assert len(once) == 8
    got = model.predict(once.drop(columns="cutoff").assign(**NO_GAPS))  # nulls, as JSON sends
    assert_rows_match(got, table)
    # the as-of date: the fit date by default, else the param, else a column per row
    assert (got.as_of_date == table.as_of_date.iloc[0]).all()
    later = model.predict(once, params={"as_of_date": "1998-08-01"})
    assert (later.as_of_date == pd.Timestamp("1998-08-01")).all()
    days = pd.to_datetime(["1998-08-01"] * 4 + ["1998-09-01"] * 4)
    mixed = model.predict(once.assign(as_of_date=days))
    assert sorted(mixed.as_of_date.value_counts().tolist()) == [4, 4]
    # the scorer's settings are the pipeline's, saved with it and rebuilt
    settings = config.Settings(config.load_params(project / "params.yaml"))
    assert model.unwrap_python_model().settings == settings.scoring


def test_a_bad_request_names_what_is_missing_without_echoing_its_rows(project, registry, caplog):
    """MLflow's own check quoted the request's rows (customer data) in its error; the scorer
    checks its columns itself and names only them. A request without an as-of date is scored
    as of the fit date, with a warning saying so."""
    model = mlflow.pyfunc.load_model("models:/cvm-scorer/1")
    rows = features(project).head(3).drop(columns="cutoff")
    with pytest.raises(Exception, match="lacks the column.s. recency_days") as err:
        model.predict(rows.drop(columns=["recency_days"]))
    assert not any(str(c) in str(err.value) for c in rows.customer_id), str(err.value)
    with caplog.at_level("WARNING", logger="cvm.scorer"):
        model.predict(rows)
    assert "no as_of_date column or param: the rows are scored as of 1998-06-30" in caplog.text


def test_the_churn_model_takes_one_time_buyers_and_has_a_signature(project, registry):
    from pipeline import clv_store

    model = mlflow.pyfunc.load_model("models:/cvm-churn/1")
    signature = model.metadata.signature
    assert signature is not None and "btyd_p_alive" in signature.inputs.input_names()
    settings = config.Settings(config.load_params(project / "params.yaml"))
    clv = clv_store.load(project / "artifacts/clv/scoring")
    once = features(project).query("frequency == 0").head(8).assign(**NO_GAPS)
    frame = as_floats(clv.churn_features(once, settings.churn_horizon))
    got = model.predict(frame)
    table = scored(project).set_index("customer_id")
    want = table.loc[once.customer_id, "churn_probability"].to_numpy()
    np.testing.assert_allclose(got.to_numpy(), want, rtol=0, atol=1e-9)


def test_a_churn_model_whose_prior_is_a_level_model_registers_and_scores(project, tmp_path):
    """With a ``prior_shape`` the churn model reads the customer's dates besides its features:
    its registered signature asks for them, and scoring fills the cutoff from the as-of date
    when the caller's features have none."""
    from dataclasses import replace

    from models.btyd.point_fit import SUMMARY_COLUMNS, PointFit
    from models.btyd.season import Season
    from models.scoring import score_customers
    from pipeline import churn_store, clv_store, tracking
    from pipeline import registry as cvm_registry

    # registering writes to the store: a copy of the shared project's, repointed to the copy
    store = tmp_path / "store"
    shutil.copytree(project, store, ignore=shutil.ignore_patterns("data", "reports"))
    tracking.connect({"uri": f"sqlite:///{store}/mlflow.db"})
    settings = config.Settings(config.load_params(project / "params.yaml"))
    params = {"r": 0.25, "alpha": 4.0, "s": 0.6, "beta": 10.0, "k": 1.3}
    fit = PointFit("weibull_nbd", 0, params, Season(0.1, 0.05, 7.0))
    model = churn_store.load(project / "artifacts/churn/scoring")
    shaped = replace(model, prior_shape={"fit": fit.to_dict(), "horizon_days": 180.0})
    assert set(SUMMARY_COLUMNS) <= set(shaped.inputs)
    shaped.save(tmp_path / "churn")
    clv = clv_store.load(project / "artifacts/clv/scoring")
    table = features(project)
    frame = clv.churn_features(table, settings.churn_horizon)
    names = settings.tracking | {"churn_model_name": "cvm-churn-shaped"}
    version = cvm_registry.register_churn(tmp_path / "churn", frame, names)
    loaded = mlflow.pyfunc.load_model(f"models:/cvm-churn-shaped/{version}")
    assert "cutoff" in loaded.metadata.signature.inputs.input_names()
    rows = frame.head(50)
    np.testing.assert_allclose(loaded.predict(rows).to_numpy(), shaped.predict(rows), atol=1e-12)
    # the level model's prior moves the scores: it is used, not ignored
    assert not np.allclose(shaped.predict(rows), model.predict(rows))
    as_of = pd.Timestamp(table.cutoff.iloc[0]).date()
    without = score_customers(
        table.drop(columns="cutoff").head(50), clv, shaped, settings.scoring, {}, as_of
    )
    got = without.set_index("customer_id").loc[rows.customer_id, "churn_probability"]
    np.testing.assert_allclose(got.to_numpy(), shaped.predict(rows), atol=1e-12)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_scorer_served_over_http(project, tmp_path):
    port = free_port()
    uri = f"sqlite:///{project}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    command = ["mlflow", "models", "serve", "-m", "models:/cvm-scorer/1"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / command[0]), *command[1:]],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server never answered /ping"
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        frame = features(project).drop(columns="cutoff")
        few = pd.concat(
            [frame.query("frequency > 2").head(3), frame.query("frequency == 0").head(2)]
        )
        body = {"dataframe_split": json.loads(few.to_json(orient="split", index=False))}
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            predictions = json.loads(answer.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    got = pd.DataFrame(predictions)
    assert len(got) == 5
    assert_rows_match(got, scored(project))


def test_the_clv_model_predicts_with_the_pipeline_settings(project, registry):
    model = mlflow.pyfunc.load_model("models:/cvm-clv/1")
    settings = config.Settings(config.load_params(project / "params.yaml"))
    defaults = {p.name: p.default for p in model.metadata.signature.params.params}
    assert defaults["horizon"] == pytest.approx(settings.prediction.horizon)
    assert defaults["discount_rate"] == pytest.approx(settings.prediction.discount_rate)
    frame = as_floats(features(project).head(200))
    assert frame.frequency.dtype == "float64"
    got = model.predict(frame)
    table = scored(project).set_index("customer_id").loc[frame.customer_id]
    for name in ("expected_purchases", "p_alive", "clv"):
        np.testing.assert_allclose(got[name], table[name], rtol=0, atol=1e-9, err_msg=name)
    with pytest.raises(Exception, match="whole numbers"):
        model.predict(frame.assign(frequency=frame.frequency + 0.5))
