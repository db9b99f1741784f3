"""The purchase model chosen out of time: a season where the log has one, the simplest model
where nothing beats it beyond the noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.btyd import choice as choice_module
from models.btyd.choice import Candidate, candidates, choose, poisson_deviance
from models.btyd.clv import ClvSettings, DegenerateData
from models.btyd.point_fit import PointFit
from tests.models.test_season import UNIT, _actual, _log, _repeats, _table

HORIZON_DAYS = 120
MODELS = ("bgnbd", "mbgnbd", "weibull_nbd")


def _validation(log: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    table = _table(log, cutoff)
    cut = pd.Timestamp(cutoff)
    window = log[(log.day > cut) & (log.day <= cut + pd.Timedelta(days=HORIZON_DAYS))]
    counts = window.groupby("customer_id").size()
    return table.assign(next_purchases=table.customer_id.map(counts).fillna(0).astype(float))


def _choose(log, cutoff, season="auto") -> dict:
    table = _validation(log, cutoff)
    return choose(
        table,
        "next_purchases",
        HORIZON_DAYS / UNIT,
        candidates(MODELS, season),
        ClvSettings(),
        _repeats(log),
        UNIT,
    )


def test_the_candidates_run_from_the_simplest():
    names = [c.name for c in candidates(("bgnbd", "weibull_nbd"), "auto")]
    assert names == ["bgnbd", "weibull_nbd", "bgnbd+season", "weibull_nbd+season"]
    assert candidates(("bgnbd",), True) == [Candidate("bgnbd", True)]
    assert candidates(("bgnbd",), False) == [Candidate("bgnbd", False)]


@pytest.mark.slow  # six candidates fit
def test_a_seasonal_log_gets_a_season_and_its_scores_are_the_forecasts():
    log = _log(0.5, seed=23)
    cutoff = "2025-07-31"
    choice = _choose(log, cutoff)
    assert choice["season"] is True and choice["choice"].endswith("+season")
    scores = choice["scores"]
    assert set(scores) == {c.name for c in candidates(MODELS, "auto")}
    # every candidate's fit, for the churn level at the same cutoff: the chosen one seasonal
    fits = {name: PointFit.from_dict(fit) for name, fit in choice["fits"].items()}
    assert set(fits) == set(scores) and fits[choice["choice"]].seasonal
    assert not fits["bgnbd"].seasonal and fits["bgnbd"].model == "bgnbd"
    actual = _actual(log, _table(log, cutoff), cutoff, HORIZON_DAYS)
    for score in scores.values():
        assert score["actual"] == actual
        assert score["aggregate_error_pct"] == pytest.approx(
            100 * (score["predicted"] / actual - 1)
        )
    assert scores["bgnbd"]["aggregate_error_pct"] > 20  # the stationary model, quiet months
    assert abs(scores[choice["choice"]]["aggregate_error_pct"]) < 8
    assert scores[choice["choice"]]["deviance"] < (
        scores["bgnbd"]["deviance"] - choice["noise"]["bgnbd"]
    )


@pytest.mark.slow  # six candidates fit
def test_a_log_without_a_season_gets_none_and_the_rule_is_kept():
    choice = _choose(_log(0.0, seed=24), "2025-06-30")
    assert choice["season"] is False
    scores, noise = choice["scores"], choice["noise"]
    lowest = min(score["deviance"] for score in scores.values())
    names = list(scores)
    # the first candidate within the noise of the lowest deviance: every simpler one is beyond
    assert scores[choice["choice"]]["deviance"] - lowest <= noise[choice["choice"]]
    for simpler in names[: names.index(choice["choice"])]:
        assert scores[simpler]["deviance"] - lowest > noise[simpler]


def test_the_deviance_is_the_poisson_deviance_and_lowest_at_the_mean():
    actual = np.array([0.0, 0.0, 1.0, 3.0])
    forecast = np.array([0.5, 0.2, 1.0, 2.0])
    expected = 2 * np.array([0.5, 0.2, 0.0, 3 * np.log(1.5) - 1.0])
    np.testing.assert_allclose(poisson_deviance(actual, forecast), expected)
    # Poisson counts of mean 0.3: most are 0 (the MAE's optimum), the deviance's is the mean
    counts = np.random.default_rng(0).poisson(0.3, 200_000).astype(float)
    levels = np.linspace(0.05, 0.6, 12)
    deviances = [poisson_deviance(counts, np.full_like(counts, m)).mean() for m in levels]
    assert levels[np.argmin(deviances)] == pytest.approx(0.3, abs=0.03)
    assert levels[np.argmin([np.abs(counts - m).mean() for m in levels])] == levels[0]


def test_a_season_is_no_candidate_before_a_year_of_history():
    log = _log(0.5, seed=23)
    choice = _choose(log, "2024-10-31")
    assert set(choice["scores"]) == set(MODELS)
    assert set(choice["left_out"]) == {f"{m}+season" for m in MODELS}
    assert "365 days" in choice["left_out"]["bgnbd+season"]


def test_without_seasonal_candidates_no_repeat_purchases_are_needed():
    log = _log(0.0, seed=24)
    table = _validation(log, "2025-06-30")
    choice = choose(
        table,
        "next_purchases",
        HORIZON_DAYS / UNIT,
        candidates(MODELS, False),
        ClvSettings(),
        None,
        UNIT,
    )
    assert set(choice["scores"]) == set(MODELS) and choice["left_out"] == {}


def test_a_lifetime_that_ran_along_its_ridge_is_left_out_and_the_others_compete(monkeypatch):
    """A Weibull shape beyond ``MAX_SHAPE`` is a fit that stopped somewhere along the ridge k
    -> inf, s -> 0: left out with the reason, never the lowest the others are held to. (The
    bound is lowered here so that the log's own Weibull/NBD fit passes it.)"""
    log = _log(0.0, seed=24)
    monkeypatch.setattr(choice_module, "MAX_SHAPE", 0.0)
    choice = _choose(log, "2025-06-30", season=False)
    assert set(choice["scores"]) == {"bgnbd", "mbgnbd"} == set(choice["fits"])
    assert list(choice["left_out"]) == ["weibull_nbd"]
    assert "the lifetime's Weibull shape ran to k =" in choice["left_out"]["weibull_nbd"]
    assert choice["choice"] in ("bgnbd", "mbgnbd")
    with pytest.raises(DegenerateData, match="no candidate can be fit: weibull_nbd: the"):
        choose(
            _validation(log, "2025-06-30"),
            "next_purchases",
            HORIZON_DAYS / UNIT,
            candidates(("weibull_nbd",), False),
            ClvSettings(),
            _repeats(log),
            UNIT,
        )
