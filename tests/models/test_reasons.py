"""Reasons per customer: the churn score's parts add up to it, and each customer's reasons are
the parts that moved it most, phrased with the customer's own values."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from models.churn import training
from models.churn.calibration import fit_calibrator
from models.churn.classifier import PRIOR_PART
from models.churn.reasons import REASON_COLUMNS, churn_reasons, phrase_of, prior_phrase
from tests.models.test_churn import FAST, stacked

PLATT = replace(FAST, calibration="platt", calibration_prior="prior", exclude=("prior",))


def with_prior(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A purchase model's P(no purchase) that knows recency but not the channel."""
    noise = np.random.default_rng(seed).normal(0, 0.3, len(frame))
    return frame.assign(prior=expit(-1.0 + 0.02 * frame.recency_days + noise))


@pytest.fixture(scope="module")
def model():
    return training.train_churn(with_prior(stacked(range(4), seed=1), 1), PLATT)


@pytest.fixture(scope="module")
def scored() -> pd.DataFrame:
    return with_prior(stacked([6], seed=2), 2)


@pytest.mark.parametrize("candidate", ["booster", "clv", "stack", "clv_as_is"])
def test_the_base_and_the_parts_give_the_published_score(model, scored, candidate):
    raw, prior = model.predict_raw(scored), scored.prior.to_numpy()
    calibrator = fit_calibrator("platt", raw, scored.churned.to_numpy(float), prior, candidate)
    published = replace(model, calibrator=calibrator | {"shift": 0.37})
    base, parts = published.contributions(scored)
    assert list(parts.columns[: len(model.features)]) == list(model.features)
    assert (PRIOR_PART in parts.columns) == (calibrator.get("c", 0) != 0)
    np.testing.assert_allclose(
        expit(base + parts.sum(axis=1).to_numpy()), published.predict(scored), rtol=0, atol=1e-12
    )
    assert np.ptp(base) == 0  # one base value for every customer


def test_with_isotonic_calibration_the_parts_give_the_booster_s_score(scored):
    isotonic = training.train_churn(with_prior(stacked(range(4), seed=1), 1), FAST)
    base, parts = isotonic.contributions(scored)
    assert PRIOR_PART not in parts.columns
    np.testing.assert_allclose(
        expit(base + parts.sum(axis=1).to_numpy()), isotonic.predict_raw(scored), atol=1e-12
    )


def test_a_customer_s_reasons_are_the_parts_that_moved_the_score_most(model, scored):
    reasons = churn_reasons(model, scored)
    assert list(reasons.columns) == list(REASON_COLUMNS) and len(reasons) == len(scored)
    _, parts = model.contributions(scored)
    moved = parts.to_numpy() * np.sign(parts.sum(axis=1).to_numpy())[:, None]
    rows = scored.reset_index(drop=True).assign(**{PRIOR_PART: scored.prior.to_numpy()})
    for i in np.random.default_rng(0).choice(len(scored), 50, replace=False):
        order = np.argsort(-moved[i], kind="stable")[: len(REASON_COLUMNS)]
        expected = [
            phrase_of(parts.columns[j])(rows.iloc[[i]])[0] if moved[i, j] > 1e-6 else None
            for j in order
        ]
        assert [None if pd.isna(r) else r for r in reasons.iloc[i]] == expected


def test_reasons_read_the_customer_s_own_values(model, scored):
    """Churn rises with recency and the phone channel in the simulated log: the riskiest
    customers' reasons name how long they have been silent, in their own days."""
    reasons = churn_reasons(model, scored)
    risk = model.predict(scored)
    top = np.argsort(-risk)[:20]
    for i in top:
        days = f"last purchase {scored.recency_days.iloc[i]:,.0f} days ago"
        assert days in set(reasons.iloc[i]), reasons.iloc[i].tolist()
    assert reasons.churn_reason_1.notna().all()
    phone = scored.channel.to_numpy() == "phone"
    assert reasons[phone].apply(lambda r: "channel: phone" in set(r), axis=1).mean() > 0.3
    assert not reasons[~phone].apply(lambda r: "channel: phone" in set(r), axis=1).any()


def test_the_prior_alone_gives_one_reason(model, scored):
    """Published as the purchase model's own probability, the score has one part: the prior."""
    as_is = replace(model, calibrator={"a": 0.0, "b": 0.0, "c": 1.0, "candidate": "clv_as_is"})
    reasons = churn_reasons(as_is, scored)
    window = "chance of no purchase in the churn window"
    assert reasons.churn_reason_1.tolist() == [
        f"purchase model: {p:.0%} {window}" for p in scored.prior
    ]
    assert reasons[["churn_reason_2", "churn_reason_3"]].isna().all().all()


def test_a_prior_that_is_a_feature_too_is_one_reason(scored):
    """The purchase model's P(no purchase) is both a feature and the calibration prior (as in
    the pipeline): its two parts are one reason, phrased once."""
    rows = with_prior(stacked(range(4), seed=1), 1)
    both = training.train_churn(rows, replace(PLATT, exclude=()))
    assert "prior" in both.features
    stack = replace(both, calibrator={"a": 1.0, "b": 0.0, "c": 0.5, "candidate": "stack"})
    reasons = churn_reasons(stack, scored)
    texts = reasons.stack()
    assert texts.str.startswith("prior: ").any()
    assert not texts.str.startswith("purchase model").any()
    assert not reasons.apply(lambda r: r.dropna().duplicated().any(), axis=1).any()


@pytest.mark.parametrize(
    ("name", "row", "text"),
    [
        ("gap_mean", {"gap_mean": np.nan}, "no repeat purchase yet"),
        ("gap_mean", {"gap_mean": 44.6}, "usually 45 days between purchases"),
        ("purchases_90d", {"purchases_90d": 3.0}, "3 purchases in the last 90 days"),
        ("spend_365d", {"spend_365d": 1234.5}, "1,234.50 spent in the last 365 days"),
        (
            "recency",
            {"recency_days": 10, "tenure_days": 400},
            "390 days from first to last purchase",
        ),
        ("purchase_rate", {"purchase_rate": 0.1}, "3.04 purchase days a month"),
        ("cov_age", {"cov_age": 0.5}, "cov_age: 0.5"),
        ("segment", {"segment": "b2b"}, "segment: b2b"),
    ],
)
def test_each_feature_is_phrased_with_the_value(name, row, text):
    assert phrase_of(name)(pd.DataFrame([row])) == [text]


@pytest.mark.parametrize(
    ("model", "regularity", "season", "label"),
    [
        ("weibull_nbd", 0, [0.0, 0.0], "ageing"),
        ("bgnbd", 0, [0.2, -0.1], "seasonal"),
        ("bgnbd_weibull", 0, [0.2, -0.1], "ageing and seasonal"),
        ("mbgcnbd", 3, [0.0, 0.0], "regular"),
        ("mbgcnbd", 1, [0.0, 0.0], "mbgcnbd"),
        ("pareto_nbd", 0, [0.0, 0.0], "pareto_nbd"),
    ],
)
def test_another_models_prior_reads_apart_from_the_clv_models_probability(
    model, regularity, season, label
):
    # the score's prior is another purchase model's P(no purchase) (models/churn/level.py):
    # beside the CLV model's own at the same value, the two reasons must not read alike
    rows = pd.DataFrame({PRIOR_PART: [0.953], "btyd_p_no_purchase": [0.951]})
    a, b = season
    fit = {"model": model, "regularity": regularity, "season": {"a": a, "b": b, "unit_days": 7.0}}
    shape = {"fit": fit}
    (level,) = prior_phrase(shape)(rows)
    (clv,) = phrase_of("btyd_p_no_purchase")(rows)
    assert level == f"{label} purchase model: 95% chance of no purchase in the churn window"
    assert clv == "purchase model: 95% chance of no purchase in the churn window"
    assert prior_phrase(None)(rows) == [clv]  # the CLV model's own prior reads as itself
