"""The LightGBM churn model on synthetic stacked cutoffs with a known signal."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.special import expit, logit

from models.churn import classifier, design, training
from models.churn import settings as churn_settings
from models.evaluation import metrics

FAST = churn_settings.ChurnSettings(
    n_estimators=200,
    learning_rate=0.1,
    num_leaves=7,
    min_child_samples=20,
    early_stopping_rounds=20,
    calibration="isotonic",
    num_threads=1,  # tiny data; avoids OpenMP spin-waits when the machine is busy
)
START = date(2020, 1, 1)


def cutoff_date(k: int) -> date:
    return START + timedelta(days=30 * k)


def stacked(
    cutoffs: range | list[int],
    n: int = 1500,
    seed: int = 0,
    shift: dict[int, float] | None = None,
) -> pd.DataFrame:
    """Customers at several cutoffs; churn is logistic in recency, frequency and channel.

    ``shift[k]`` adds to the logit at cutoff ``k`` (a base-rate drift between cutoffs). The
    label-side columns are deterministic functions of ``churned`` so a leak would give AUC 1.
    """
    rng = np.random.default_rng(seed)
    shift = shift or {}
    parts = []
    for k in cutoffs:
        recency = rng.integers(0, 200, n)
        frequency = rng.poisson(2.0, n)
        channel = rng.choice(["web", "phone", "store"], n)
        logit = (
            -1.0 + 0.02 * recency - 0.5 * frequency + 0.8 * (channel == "phone") + shift.get(k, 0)
        )
        churned = rng.random(n) < expit(logit)
        next_purchases = np.where(churned, 0, 1 + rng.poisson(1.0, n))
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": pd.array([f"c{k}_{i:05d}" for i in range(n)], dtype="str"),
                    "cutoff": [cutoff_date(k)] * n,
                    "recency_days": recency,
                    "frequency": frequency,
                    "channel": pd.array(channel, dtype="str"),
                    "gap_mean": np.where(frequency > 0, rng.gamma(2.0, 20.0, n), np.nan),
                    "noise": rng.normal(size=n),
                    "churned": churned,
                    "next_purchases": next_purchases,
                    "next_spend": next_purchases * 25.0,
                    "holdout_purchases": next_purchases,
                    "holdout_spend": next_purchases * 25.0,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return stacked(range(4), seed=1)


@pytest.fixture(scope="module")
def holdout() -> pd.DataFrame:
    return stacked([6], seed=2)


@pytest.fixture(scope="module")
def model(train: pd.DataFrame) -> classifier.ChurnModel:
    return training.train_churn(train, FAST)


def auc(frame: pd.DataFrame, p: np.ndarray) -> float:
    return metrics.churn_metrics(frame["churned"], p)["roc_auc"]


def test_signal_beats_noise_on_a_later_cutoff(
    model: classifier.ChurnModel, train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    signal_auc = auc(holdout, model.predict(holdout))
    noise_only = training.train_churn(train[["cutoff", "churned", "noise"]], FAST)
    noise_auc = auc(holdout, noise_only.predict(holdout))
    assert signal_auc > 0.75
    assert signal_auc > noise_auc + 0.15
    assert abs(noise_auc - 0.5) < 0.05


def test_time_split_validates_on_latest_cutoff(train: pd.DataFrame) -> None:
    shuffled = train.sample(frac=1.0, random_state=3)
    m = training.train_churn(shuffled, FAST)
    assert m.validation_cutoffs == (cutoff_date(3).isoformat(),)
    assert m.train_cutoffs == tuple(cutoff_date(k).isoformat() for k in range(3))
    assert m.n_validation == int((train["cutoff"] == cutoff_date(3)).sum())
    assert m.n_train + m.n_validation == len(train)

    m2 = training.train_churn(shuffled, replace(FAST, validation_cutoffs=2))
    assert m2.validation_cutoffs == (cutoff_date(2).isoformat(), cutoff_date(3).isoformat())
    assert m2.train_cutoffs == (cutoff_date(0).isoformat(), cutoff_date(1).isoformat())


def test_max_rows_samples_fit_and_validation_rows(
    train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    n_valid = int((train["cutoff"] == cutoff_date(3)).sum())
    capped = training.train_churn(train, replace(FAST, max_rows=1500))
    assert (capped.n_train, capped.n_validation) == (1500, min(1500, n_valid))
    assert auc(holdout, capped.predict(holdout)) > 0.75
    roomy = training.train_churn(train, replace(FAST, max_rows=10**9))
    full = training.train_churn(train, FAST)
    np.testing.assert_array_equal(roomy.predict(holdout), full.predict(holdout))


def test_split_by_cutoff_uses_time_not_position(train: pd.DataFrame) -> None:
    fit, valid, fit_cut, valid_cut = design.split_by_cutoff(train.iloc[::-1], 1)
    assert set(valid["cutoff"]) == {cutoff_date(3)}
    assert cutoff_date(3) not in set(fit["cutoff"])
    assert [c.date() for c in valid_cut] == [cutoff_date(3)]
    assert [c.date() for c in fit_cut] == [cutoff_date(k) for k in range(3)]


def test_label_side_columns_are_never_features(
    model: classifier.ChurnModel, train: pd.DataFrame, holdout: pd.DataFrame
) -> None:
    labels = set(churn_settings.LABEL_COLUMNS) | {"cutoff", "customer_id"}
    assert not labels & set(model.features)
    assert set(model.features) == {"recency_days", "frequency", "channel", "gap_mean", "noise"}
    # even when ``exclude`` forgets them, the identifiers and labels stay out
    lax = churn_settings.ChurnSettings(exclude=())
    assert design.feature_columns(train, lax) == list(model.features)
    # a leak would make the holdout perfectly separable
    assert auc(holdout, model.predict(holdout)) < 0.95


def test_calibration_reduces_ece_under_base_rate_drift() -> None:
    # training cutoffs have a much lower churn rate than the validation and later cutoffs,
    # so the raw booster under-predicts churn; the calibrator is fit on the latest cutoff
    drift = {0: -2.0, 1: -2.0, 2: -2.0}
    train = stacked(range(4), seed=4, shift=drift)
    later = stacked([5], seed=5)
    for kind in ("isotonic", "platt"):
        m = training.train_churn(train, replace(FAST, calibration=kind))
        y = later["churned"]
        raw = metrics.churn_metrics(y, m.predict_raw(later))
        cal = metrics.churn_metrics(y, m.predict(later))
        assert raw["ece"] > 0.1, kind
        assert cal["ece"] < raw["ece"] / 3, kind
        assert cal["brier"] < raw["brier"], kind
        v = m.validation_metrics
        assert v["calibrated"]["ece"] < v["raw"]["ece"], kind


def test_validation_metrics_recorded(model: classifier.ChurnModel) -> None:
    v = model.validation_metrics
    for stage in ("raw", "calibrated"):
        assert {"roc_auc", "brier", "log_loss", "ece", "base_rate"} <= set(v[stage])
        assert 0.5 < v[stage]["roc_auc"] <= 1
    # isotonic regression minimises squared error over monotone maps, the identity included
    assert v["calibrated"]["brier"] <= v["raw"]["brier"] + 1e-12
    assert 1 <= model.best_iteration <= FAST.n_estimators


def test_platt_keeps_the_ranking(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    m = training.train_churn(train, replace(FAST, calibration="platt"))
    assert m.calibrator["a"] > 0
    raw, cal = m.predict_raw(holdout), m.predict(holdout)
    assert auc(holdout, cal) == pytest.approx(auc(holdout, raw), abs=1e-12)


def test_predictions_are_probabilities_in_row_order(
    model: classifier.ChurnModel, holdout: pd.DataFrame
) -> None:
    p = model.predict(holdout)
    assert p.shape == (len(holdout),)
    assert np.all((p >= 0) & (p <= 1))
    reordered = holdout.iloc[::-1].set_index("customer_id")
    np.testing.assert_array_equal(model.predict(reordered), p[::-1])


def test_inputs_are_not_mutated(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    before_train, before_holdout = train.copy(), holdout.copy()
    m = training.train_churn(train, FAST)
    m.predict(holdout)
    pd.testing.assert_frame_equal(train, before_train)
    pd.testing.assert_frame_equal(holdout, before_holdout)
    assert holdout["channel"].dtype == "str"


def test_string_feature_is_categorical(model: classifier.ChurnModel, holdout: pd.DataFrame) -> None:
    assert model.categories == {"channel": ["phone", "store", "web"]}
    unseen = holdout.assign(channel=pd.array(["fax"] * len(holdout), dtype="str"))
    p = model.predict(unseen)
    assert np.all(np.isfinite(p))


def test_feature_importance(model: classifier.ChurnModel) -> None:
    imp = classifier.feature_importance(model)
    assert list(imp.columns) == ["feature", "gain", "split", "gain_share"]
    assert set(imp["feature"]) == set(model.features)
    assert imp["gain"].is_monotonic_decreasing
    assert imp["gain_share"].sum() == pytest.approx(1.0)
    assert imp["feature"].iloc[0] == "recency_days"
    assert imp.set_index("feature").loc["noise", "gain_share"] < 0.1


@pytest.mark.parametrize("kind", ["isotonic", "platt"])
def test_artifacts_round_trip(kind: str, train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    m = training.train_churn(train, replace(FAST, calibration=kind))
    text, meta = classifier.to_artifacts(m)
    assert isinstance(text, str) and text.startswith("tree")
    meta = json.loads(json.dumps(meta, allow_nan=False))
    back = classifier.from_artifacts(text, meta)
    np.testing.assert_array_equal(back.predict(holdout), m.predict(holdout))
    assert back.settings == m.settings
    assert back.features == m.features
    assert back.train_cutoffs == m.train_cutoffs
    assert back.validation_cutoffs == m.validation_cutoffs
    assert back.best_iteration == m.best_iteration
    assert back.validation_metrics == m.validation_metrics
    with pytest.raises(ValueError, match="format"):
        classifier.from_artifacts(text, {**meta, "format": "something else"})


def test_deterministic_with_same_seed(train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    bagged = replace(FAST, bagging_fraction=0.7, seed=11)
    a, b = training.train_churn(train, bagged), training.train_churn(train, bagged)
    assert classifier.to_artifacts(a)[0] == classifier.to_artifacts(b)[0]
    np.testing.assert_array_equal(a.predict(holdout), b.predict(holdout))


def test_single_cutoff_is_rejected(train: pd.DataFrame) -> None:
    one = train[train["cutoff"] == cutoff_date(0)]
    with pytest.raises(ValueError, match="2 or more distinct cutoffs"):
        training.train_churn(one, FAST)
    with pytest.raises(ValueError, match="leaves no training cutoff"):
        training.train_churn(train, replace(FAST, validation_cutoffs=4))


def test_single_class_is_rejected(train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="single class"):
        training.train_churn(train.assign(churned=True), FAST)


def test_missing_features_are_named(model: classifier.ChurnModel, holdout: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing feature columns \['recency_days', 'noise'\]"):
        model.predict(holdout.drop(columns=["recency_days", "noise"]))


def test_unusable_column_type_is_rejected(train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="first_seen"):
        design.feature_columns(train.assign(first_seen=pd.Timestamp("2020-01-01")))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_leaves", 1),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("n_estimators", 0),
        ("min_child_samples", 0),
        ("feature_fraction", 1.5),
        ("bagging_fraction", 0.0),
        ("bagging_freq", -1),
        ("lambda_l2", -0.1),
        ("max_depth", 0),
        ("early_stopping_rounds", 0),
        ("calibration", "beta"),
        ("validation_cutoffs", 0),
        ("seed", 1.5),
        ("exclude", "customer_id"),
        ("num_threads", 0),
        ("max_rows", 1),
    ],
)
def test_settings_validation_names_the_key(key: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        churn_settings.ChurnSettings(**{key: value})
    assert [e["loc"][0] for e in err.value.errors()] == [key]


def test_settings_from_a_mapping() -> None:
    s = churn_settings.ChurnSettings(**{"num_leaves": 31, "exclude": ["customer_id", "T"]})
    assert s.num_leaves == 31
    assert s.exclude == ("customer_id", "T")
    with pytest.raises(ValidationError, match="bogus"):
        churn_settings.ChurnSettings(**{"bogus": 1})
    params = churn_settings.ChurnSettings().lightgbm_params()
    assert params["deterministic"] is True and params["num_threads"] == 2
    assert params["objective"] == "binary" and params["verbose"] == -1


def test_the_published_candidate_follows_the_validation_evidence():
    from models.churn.calibration import select_candidate

    rng = np.random.default_rng(5)
    truth = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < truth).astype(float)
    noise = rng.uniform(0.05, 0.95, 4000)
    # the prior knows the truth, the booster nothing: the prior is published as it is
    assert select_candidate(noise, truth, y, 0.001, seed=1)["choice"] == "clv_as_is"
    # a prior that ranks right but is too sure of itself (twice the logit): recalibrated
    too_sure = expit(2 * logit(truth))
    assert select_candidate(noise, too_sure, y, 0.001, seed=1)["choice"] == "clv"
    # the other way round: the booster's score is needed; the stack, which holds it, is within
    # the margin of the booster alone and is preferred; with no margin the lowest score wins
    chosen = select_candidate(truth, noise, y, 0.001, seed=1)
    assert chosen["choice"] == "stack" and "cross-fitted" in chosen["rule"]
    assert chosen["scores"]["booster"] < chosen["scores"]["clv"] - 0.1
    strict = select_candidate(truth, noise, y, 0.0, seed=1)
    assert strict["choice"] == min(strict["scores"], key=strict["scores"].get)


def test_candidates_are_judged_at_the_level_they_are_published_with():
    """The validation window churns more than the scored one will (another season): a
    recalibration learns that level, which the shift to the purchase model's mean then
    discards. Judged as published, shifted, the prior as it is ranks and spreads as well."""
    from models.churn.calibration import select_candidate

    rng = np.random.default_rng(6)
    truth = rng.uniform(0.05, 0.95, 4000)
    y = (rng.random(4000) < expit(logit(truth) + 0.8)).astype(float)
    noise = rng.uniform(0.05, 0.95, 4000)
    unshifted = select_candidate(noise, truth, y, 0.001, seed=1)
    assert unshifted["choice"] == "clv"
    assert unshifted["scores"]["clv_as_is"] > unshifted["scores"]["clv"] + 0.01
    shifted = select_candidate(noise, truth, y, 0.001, seed=1, shifted=True)
    assert shifted["choice"] == "clv_as_is" and "shifted" in shifted["rule"]


def test_early_stopping_is_judged_on_a_window_the_booster_has_not_seen():
    """The same customers at cutoffs whose churn windows overlap share their outcome there: a
    booster that memorises customers (``memo``, one value per customer) keeps improving on the
    validation cutoff when trained on the overlapping cutoffs, and only the judge, trained on
    cutoffs whose windows end by the validation cutoff, tells that it learns nothing new."""
    rng = np.random.default_rng(11)
    n, cutoffs = 1500, range(8)
    memo, recency = rng.random(n), rng.integers(0, 200, n)
    shared = rng.normal(0.0, 2.0, n)  # the outcome in the window cutoffs 5, 6, 7 share
    parts = []
    for k in cutoffs:
        own = shared if k >= 5 else rng.normal(0.0, 2.0, n)
        churned = rng.random(n) < expit(-1.0 + 0.01 * recency + own)
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": pd.array([f"c{i:05d}" for i in range(n)], dtype="str"),
                    "cutoff": [cutoff_date(k)] * n,
                    "recency_days": recency,
                    "memo": memo,
                    "churned": churned,
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    settings = replace(FAST, n_estimators=300, calibration="platt")
    judged = training.train_churn(table, settings, horizon_days=90)  # cutoffs 0-4 judge
    overlapping = training.train_churn(table, settings)  # no horizon: no judge
    assert judged.selection["early_stopping"] == training.EARLY_STOPPING["judge"]
    assert overlapping.selection["early_stopping"] == training.EARLY_STOPPING["overlapping"]
    assert judged.booster.current_iteration() == judged.best_iteration
    assert judged.best_iteration < overlapping.best_iteration / 3
    # the judge's validation scores are honest: memorised outcomes do not flatter them
    assert (
        judged.validation_metrics["raw"]["roc_auc"]
        < overlapping.validation_metrics["raw"]["roc_auc"] - 0.02
    )


def test_a_level_model_can_be_the_prior_and_travels_with_the_model(train, holdout):
    """With a ``prior_shape`` the calibration prior is that level model's P(no purchase) of
    each row, at training, after the shift and once persisted; the prior column is unused."""
    from models.btyd.point_fit import PointFit
    from models.btyd.season import Season
    from models.churn.classifier import shifted_to

    def with_history(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        tenure = frame.recency_days + rng.integers(0, 300, len(frame))
        prior = expit(-1.0 + 0.02 * frame.recency_days - 0.5 * frame.frequency)
        return frame.assign(tenure_days=tenure, prior=prior)

    def shape(a: float) -> dict:
        fit = PointFit(
            "bgnbd", 0, {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}, Season(a, 0.0, 7.0)
        )
        return {"fit": fit.to_dict(), "horizon_days": 90.0}

    settings = replace(FAST, calibration="platt", calibration_prior="prior", exclude=("prior",))
    rows, scored = with_history(train, 1), with_history(holdout, 2)
    m = training.train_churn(rows, settings, None, shape(0.0))
    assert m.prior_shape == shape(0.0)
    scrambled = scored.assign(prior=scored.prior.sample(frac=1, random_state=0).to_numpy())
    np.testing.assert_array_equal(m.predict(scored), m.predict(scrambled))
    plain = training.train_churn(rows, settings)
    assert not np.allclose(plain.predict(scored), plain.predict(scrambled))
    # the shift puts the fit at the target's cutoff in place, and the level's mean on average
    published = shifted_to(m, scored, {"mean": 0.4, "shape": {"target": shape(0.3)}})
    assert published.prior_shape == shape(0.3)
    assert published.predict(scored).mean() == pytest.approx(0.4, abs=1e-9)

    def p_no_purchase(shape: dict) -> np.ndarray:
        return PointFit.from_dict(shape["fit"]).p_no_purchase(scored, shape["horizon_days"])

    assert not np.allclose(p_no_purchase(shape(0.3)), p_no_purchase(shape(0.0)))
    text, meta = classifier.to_artifacts(published)
    back = classifier.from_artifacts(text, json.loads(json.dumps(meta, allow_nan=False)))
    assert back.prior_shape == published.prior_shape
    np.testing.assert_array_equal(back.predict(scored), published.predict(scored))
