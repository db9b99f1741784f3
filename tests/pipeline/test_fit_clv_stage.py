"""fit_clv on the full CDNOW log: NUTS converges near the MAP; posteriors saved and registered.
The stages before it read the whole master log."""

import json
from dataclasses import replace

import mlflow
import numpy as np
import pytest

from pipeline import clv_store, config, io
from pipeline.cli import main
from tests.conftest import CDNOW_MASTER

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fit_clv_master")]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    from tests.conftest import REPO, input_roots

    tmp = tmp_path_factory.mktemp("fit")
    cfg = config.compose(
        [
            input_roots(tmp),
            f"data.path={CDNOW_MASTER}",
            "clv=bgnbd",  # BG/NBD by NUTS, against its published fit of the whole cohort
            f"tracking.uri=sqlite:///{tmp}/mlflow.db",
            "tracking.register=true",
        ],
        REPO / "conf",
    )
    config.write_params(cfg, tmp / "params.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        for stage in ("ingest", "features", "fit_clv"):
            assert main(["stage", stage, "--params", str(tmp / "params.yaml")]) == 0
        yield tmp


def test_the_master_log_is_ingested_whole(fitted):
    report = json.loads((fitted / "data/interim/ingest_report.json").read_text())
    assert report["rows_read"] == 69659 == report["rows_kept"] + report["rows_quarantined"]
    assert report["customers"] == 23570


def test_nuts_converges_on_the_full_calibration_data(fitted):
    report = json.loads((fitted / "artifacts/clv/fit_report.json").read_text())
    assert report["calibration"]["counts"]["customers"] == 23570
    assert report["calibration"]["convergence_problems"] == []
    assert report["scoring"]["convergence_problems"] == []
    model = clv_store.load(fitted / "artifacts/clv/calibration")
    stats = model.purchase_posterior["sample_stats"].to_dataset()
    assert int(stats["diverging"].sum()) == 0
    draws = model.purchase_draws()
    assert len(draws["r"]) == 2 * 1000
    for name, values in draws.items():
        map_value = report["calibration"]["map"]["purchase"][name]
        assert values.mean() == pytest.approx(map_value, rel=0.03), name
    # the full cohort's maximum-likelihood fit (weakly informative priors barely move it)
    assert report["calibration"]["map"]["purchase"]["r"] == pytest.approx(0.2516, rel=0.01)
    assert report["calibration"]["map"]["purchase"]["a"] == pytest.approx(0.7234, rel=0.02)


def test_the_scoring_pair_is_registered_and_predicts(fitted):
    uri = f"sqlite:///{fitted}/mlflow.db"
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    versions = client.search_model_versions("name='cvm-clv'")
    assert [int(v.version) for v in versions] == [1]
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    loaded = mlflow.pyfunc.load_model("models:/cvm-clv/1")
    customers = io.read_parquet(fitted / "data/features/scoring.parquet").head(50)
    settings = {"horizon": 52.0, "chunk_size": 7}
    via_registry = loaded.predict(customers, params=settings)
    model = clv_store.load(fitted / "artifacts/clv/scoring")
    # the other settings are the pipeline's, registered with the model
    pipeline = config.Settings(config.load_params(fitted / "params.yaml"))
    prediction = replace(pipeline.prediction, **settings)
    direct = model.predict(customers, prediction, pipeline.max_draws)
    np.testing.assert_allclose(via_registry.to_numpy(), direct.to_numpy())
    assert (direct.clv_lower <= direct.clv).all() and (direct.clv <= direct.clv_upper).all()


def test_a_posterior_that_does_not_converge_fails_the_stage(make_params, capsys):
    from tests.conftest import CDNOW_SAMPLE

    params = make_params(
        "data=cdnow_sample",
        f"data.path={CDNOW_SAMPLE}",
        "tracking.enabled=false",
        "clv.sampler.draws=30",
        "clv.sampler.tune=30",
    )
    for stage in ("ingest", "features"):
        assert main(["stage", stage, "--params", str(params)]) == 0
    assert main(["stage", "fit_clv", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert "did not converge" in err and "ESS of" in err and "(< 400)" in err
    assert "clv.convergence.on_failure=warn" in err
    assert not (params.parent / "artifacts/clv/fit_report.json").exists()


def test_the_posterior_file_carries_its_config(fitted):
    model = clv_store.load(fitted / "artifacts/clv/scoring")
    assert model.purchase.name == "bgnbd" and model.settings.method == "nuts"
    assert model.settings.sampler.draws == 1000
    report = json.loads((fitted / "artifacts/clv/fit_report.json").read_text())
    assert report["calibration"]["diagnostics"]["transactions_max_rhat"] <= 1.01
    assert report["calibration"]["diagnostics"]["transactions_divergences"] == 0
