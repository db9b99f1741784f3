"""Chunked, collapsed per-customer predictions with credible intervals."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.btyd import bgnbd, gamma_gamma, pareto_nbd
from models.btyd.bgnbd import BGNBD
from models.btyd.pareto_nbd import PARETO_NBD
from models.btyd.predict import CHUNK_DRAWS, QUANTITIES, PredictionSettings, predict_customers

BG = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
PNBD = {"r": 0.5533, "alpha": 10.5776, "s": 0.6063, "beta": 11.6696}
GG = {"p": 6.2488, "q": 3.7446, "gamma": 15.4477}


def _draws(point: dict, n: int, seed: int, spread: float = 0.05) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: v * np.exp(spread * rng.standard_normal(n)) for k, v in point.items()}


@pytest.mark.parametrize(("model", "point"), [(BGNBD, BG), (PARETO_NBD, PNBD)])
def test_chunked_equals_unchunked(cdnow: pd.DataFrame, model, point: dict) -> None:
    tx, gg = _draws(point, 40, 1), _draws(GG, 40, 2)
    full = predict_customers(tx, gg, cdnow, model, PredictionSettings(chunk_size=10**6))
    chunked = predict_customers(tx, gg, cdnow, model, PredictionSettings(chunk_size=97))
    pd.testing.assert_frame_equal(full, chunked)
    assert list(full.index) == list(cdnow.index)
    expected_cols = [f"{q}{s}" for q in QUANTITIES for s in ("", "_lower", "_upper")]
    assert list(full.columns) == expected_cols
    for q in QUANTITIES:
        assert (full[f"{q}_lower"] <= full[q] + 1e-12).all()
        assert (full[q] <= full[f"{q}_upper"] + 1e-12).all()


def test_identical_summaries_identical_rows(cdnow: pd.DataFrame) -> None:
    out = predict_customers(_draws(BG, 20, 3), _draws(GG, 20, 4), cdnow, BGNBD)
    key = cdnow[["frequency", "recency", "T", "monetary_value"]]
    dup = key.duplicated(keep=False)
    grouped = out[dup].groupby([key[dup][c] for c in key.columns]).nunique()
    assert (grouped == 1).all().all()


def test_map_point_matches_closed_forms(cdnow: pd.DataFrame) -> None:
    settings = PredictionSettings(horizon=39.0, clv_periods=12, discount_rate=0.01, margin=0.3)
    point = {k: np.array([v]) for k, v in BG.items()}
    out = predict_customers(
        point, {k: np.array([v]) for k, v in GG.items()}, cdnow, BGNBD, settings
    )
    x, t_x, T = cdnow.frequency, cdnow.recency, cdnow["T"]
    np.testing.assert_allclose(out.p_alive, bgnbd.p_alive(BG, x, t_x, T), rtol=1e-12)
    np.testing.assert_allclose(
        out.expected_purchases,
        BGNBD.conditional_expected_purchases(BG, 39.0, x, t_x, T),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        out.p_no_purchase, BGNBD.p_no_purchase(BG, 39.0, x, t_x, T), rtol=1e-12
    )
    spend = gamma_gamma.conditional_expected_spend(GG, x, cdnow.monetary_value)
    np.testing.assert_allclose(out.expected_spend, spend, rtol=1e-12)
    assert (out.clv_lower == out.clv).all() and (out.clv_upper == out.clv).all()
    # lifetimes-style CLV: monthly increments of the conditional expectation, discounted
    f = settings.time_units_per_period
    months = np.arange(1, 13)
    cum = np.stack([BGNBD.conditional_expected_purchases(BG, m * f, x, t_x, T) for m in months])
    incr = np.diff(np.vstack([np.zeros(len(x)), cum]), axis=0)
    clv = 0.3 * spend * (incr / 1.01 ** months[:, None]).sum(axis=0)
    np.testing.assert_allclose(out.clv, clv, rtol=1e-10)


def test_interval_width_and_broadcast_single_spend_draw(cdnow: pd.DataFrame) -> None:
    tx = _draws(PNBD, 200, 5, spread=0.2)
    gg_point = {k: np.array([v]) for k, v in GG.items()}
    narrow = predict_customers(
        tx, gg_point, cdnow.iloc[:300], PARETO_NBD, PredictionSettings(interval=0.5)
    )
    wide = predict_customers(
        tx, gg_point, cdnow.iloc[:300], PARETO_NBD, PredictionSettings(interval=0.95)
    )
    np.testing.assert_allclose(narrow.clv, wide.clv)
    assert (
        (wide.clv_upper - wide.clv_lower) >= (narrow.clv_upper - narrow.clv_lower) - 1e-12
    ).all()
    assert ((wide.p_alive_upper - wide.p_alive_lower) > 0).mean() > 0.9  # t_x == T: alive for sure
    # spend is a single point: its interval collapses
    np.testing.assert_allclose(wide.expected_spend_lower, wide.expected_spend_upper)
    expected = pareto_nbd.p_alive(
        {k: v[:, None] for k, v in tx.items()},
        cdnow.frequency.iloc[:300].to_numpy(),
        cdnow.recency.iloc[:300].to_numpy(),
        cdnow["T"].iloc[:300].to_numpy(),
    ).mean(axis=0)
    np.testing.assert_allclose(wide.p_alive, expected, rtol=1e-12)


def test_without_spend_and_bad_inputs(cdnow: pd.DataFrame) -> None:
    out = predict_customers(_draws(BG, 5, 6), None, cdnow.iloc[:20], BGNBD)
    assert "clv" not in out.columns and "p_no_purchase_upper" in out.columns
    with pytest.raises(ValueError, match="cannot be paired"):
        predict_customers(_draws(BG, 5, 6), _draws(GG, 4, 6), cdnow.iloc[:20], BGNBD)
    with pytest.raises(KeyError):
        predict_customers(_draws(PNBD, 5, 6), None, cdnow.iloc[:20], BGNBD)
    with pytest.raises(ValueError):
        PredictionSettings(interval=1.5)


def test_memory_is_bounded_by_chunk(cdnow: pd.DataFrame) -> None:
    """No array handled by the model functions has more than chunk_size * CHUNK_DRAWS elements
    (chunk_size units at CHUNK_DRAWS draws or more; with fewer draws, more units at once)."""
    largest = []
    original = bgnbd.p_alive

    def spy(params, x, t_x, T):
        out = original(params, x, t_x, T)
        largest.append(out.size)
        return out

    spied = replace(BGNBD, p_alive=spy)
    predict_customers(
        _draws(BG, 30, 7), _draws(GG, 30, 8), cdnow, spied, PredictionSettings(chunk_size=50)
    )
    assert 30 * 50 < max(largest) <= 50 * CHUNK_DRAWS


def test_progress_reported_after_every_chunk(cdnow: pd.DataFrame) -> None:
    calls: list[tuple[int, int]] = []
    settings = PredictionSettings(chunk_size=1)  # 200 units a chunk at 5 draws
    tx, gg = _draws(BG, 5, 1), _draws(GG, 5, 2)
    predict_customers(tx, gg, cdnow, BGNBD, settings, progress=lambda *a: calls.append(a))
    done = [d for d, _ in calls]
    total = calls[-1][1]
    assert done == sorted(done) and done[-1] == total == len(cdnow) and len(calls) > 1
