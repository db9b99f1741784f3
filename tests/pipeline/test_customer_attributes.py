"""Customer attributes: checked, one-hot encoded, joined at the features stage, modelled."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from features.attributes import AttributesError, AttributeSpec, encode, match
from models.churn.design import feature_columns
from models.simulate import SimulationSettings, simulate_log
from pipeline.cli import main

SPEC = AttributeSpec("attrs.csv", "id", ("age",), (("channel", "web"),))


def _raw(**changes) -> pd.DataFrame:
    raw = pd.DataFrame({"id": ["1", "2", "3"], "age": ["30", "41", "25"]})
    raw["channel"] = ["web", "shop", "phone"]
    return raw.assign(**changes)


def test_categorical_columns_are_one_hot_against_their_base() -> None:
    out = encode(_raw(), SPEC)
    assert list(out.columns) == ["customer_id", "cov_age", "cov_channel_phone", "cov_channel_shop"]
    assert out.cov_channel_shop.tolist() == [0.0, 1.0, 0.0]
    assert out.cov_age.tolist() == [30.0, 41.0, 25.0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"age": ["30", "forty", "25"]},
            "attrs.csv, line 3, column 'age': 'forty' is not a number",
        ),
        ({"channel": ["web", None, "shop"]}, "attrs.csv, line 3, column 'channel': missing value"),
        ({"id": ["1", "2", "1"]}, "line 4, column 'id': customer '1' again"),
        ({"channel": ["shop"] * 3}, "no row has the base level 'web'"),
    ],
)
def test_bad_attributes_name_the_file_line_and_column(changes, message) -> None:
    with pytest.raises(AttributesError, match=message):
        encode(_raw(**changes), SPEC)


def test_customers_without_attributes_are_an_error_and_unknown_ones_counted() -> None:
    attrs = encode(_raw(), SPEC)
    assert match(["1", "2"], attrs, "attrs.csv") == {
        "attribute_rows": 3,
        "matched": 2,
        "unknown": 1,
    }
    with pytest.raises(AttributesError, match=r"2 of the log's 3 customers have no attributes"):
        match(["1", "8", "9"], attrs, "attrs.csv")


@pytest.mark.slow
def test_the_stages_carry_the_covariates(make_params, tmp_path) -> None:
    settings = SimulationSettings(
        customers=3000,
        covariate_effects=(("vip", 0.6, -0.5),),
        binary_covariates=True,
        seed=4,
    )
    log, truth = simulate_log(settings)
    log.to_csv(tmp_path / "log.csv", index=False)
    attrs = truth[["customer_id", "vip"]].assign(vip=truth.vip.map({0.0: "no", 1.0: "yes"}))
    extra = pd.DataFrame({"customer_id": ["x1", "x2"], "vip": ["no", "yes"]})
    pd.concat([attrs, extra]).to_csv(tmp_path / "attrs.csv", index=False)
    make_params(
        "data=simulated",
        "data.format=csv",
        f"data.path={tmp_path}/log.csv",
        "data.calibration_end=2024-09-29",
        "data.customers={path: attrs.csv, id: customer_id, covariates: [], "
        "categorical: [{column: vip, base: 'no'}]}",
        "clv.method=map",
        "features.train_cutoffs=2",
        "churn.n_estimators=50",
    )
    for stage in ("ingest", "features", "fit_clv", "train_churn"):
        assert main(["stage", stage]) == 0, stage
    report = json.loads((tmp_path / "data/features/report.json").read_text())
    assert report["customer_attributes"] == {
        "attribute_rows": 3002,
        "matched": 3000,
        "unknown": 2,
        "covariates": ["cov_vip_yes"],
    }
    scoring = pd.read_parquet(tmp_path / "data/features/scoring.parquet")
    assert scoring.cov_vip_yes.sum() == pytest.approx(truth.vip.sum(), abs=0)
    # the churn model takes the covariates as features (outcomes never)
    train = pd.read_parquet(tmp_path / "data/features/train_scoring.parquet")
    assert "cov_vip_yes" in feature_columns(train)
    fit = json.loads((tmp_path / "artifacts/clv/fit_report.json").read_text())
    point = fit["calibration"]["map"]["purchase"]
    assert point["trans_vip_yes"] > 0.2 and point["life_vip_yes"] < 0
