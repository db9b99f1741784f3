"""A forecast learnt from the log's own past: boosted trees on stacked past cutoffs.

Each training row is a customer at a past cutoff whose window (the churn horizon after it) ends
by the fit's cutoff: the features at that cutoff, the purchase model's own forecast of that
window (fit at that cutoff alone: :func:`models.btyd.churn_features.add_btyd_features_by_cutoff`)
and, as targets, the purchases and the spend made in the window. LightGBM learns the purchases
with a Poisson loss and the spend with a Tweedie one, so that each forecast is an expected value
(the mean, not the median, which is 0 for most customers). The trees start from the purchase
model's forecast (their offset), so they learn a correction of it: where the purchase model
errs the same way at every cutoff (a dropout rising with age, a spend it does not know), the
trees learn it; where nothing carries, none is the purchase model itself.

Rounds are set out of time, as the churn booster's are: a booster trained on the cutoffs whose
windows end by the latest stacked cutoff (the judge) is stopped early on the latest cutoff's
customers; the forecast, trained on every stacked cutoff, keeps its rounds. Where those
cutoffs hold less than :data:`JUDGE_MIN_SHARE` of the rows (a short log, a cohort still
joining) no trees are grown and the forecast is the purchase model's own: trees stopped on
windows that overlap the latest one's, or judged by a few hundred young customers, learnt
corrections of 15 % that did not hold after the cutoff.

Intervals are split-conformal: the judge's errors on the latest cutoff's customers, each
divided by ``sqrt(forecast + m)`` (the spread of a count grows with its mean; ``m``, the mean
forecast there, keeps the customers forecast near 0 from dominating), give the quantile ``q``
of the interval's level; a customer's interval is ``forecast ± q sqrt(forecast + m)``, cut at
0. It covers the level on average over customers whose future is exchangeable with the latest
cutoff's, which a trend or a season breaks: the backtest measures the coverage on the window
after the cutoff (:mod:`pipeline.backtest`).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.columns import IDENTIFIERS, LABEL_COLUMNS

TARGETS = {"purchases": "next_purchases", "spend": "next_spend"}

SHRINK_DAYS = 1.0
# the purchase model's forecast is floored here, and the trees' correction of it is at most
# this factor either way: a fit at an early cutoff that leaves a quarter of its customers at
# 1e-7 purchases, some of whom buy, drove one leaf of the judge to exp(151)
FLOOR = 1e-3
MAX_CORRECTION = 10.0
JUDGE_MIN_SHARE = 0.25  # of the stacked rows, at the cutoffs whose windows end by the latest


@dataclass(frozen=True)
class StackedSettings:
    """The boosters' settings (both targets alike) and the intervals' level."""

    num_leaves: int = 15
    learning_rate: float = 0.05
    min_child_samples: int = 100
    max_rounds: int = 1000
    early_stopping_rounds: int = 50
    interval: float = 0.9
    seed: int = 0
    num_threads: int = 2

    def params(self, part: str) -> dict:
        objective = (
            {"objective": "poisson"}
            if part == "purchases"
            # spend: a point mass at 0 and a continuous part (1.5, the default, stopped early
            # on logs whose forecast ran a third short, far from the mean)
            else {"objective": "tweedie", "tweedie_variance_power": 1.3}
        )
        return objective | {
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": 0.9,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.num_threads,
            "verbose": -1,
        }


@dataclass(frozen=True)
class StackedPart:
    """One target's booster (its model text; none with no rounds), the features it reads, its
    rounds, and its conformal quantile with the scale the errors were divided by."""

    part: str
    booster: str
    features: tuple[str, ...]
    rounds: int
    quantile: float
    scale: float

    def spread(self, expected: np.ndarray) -> np.ndarray:
        """Half the interval around ``expected``."""
        return self.quantile * np.sqrt(expected + self.scale)

    def predict(self, table: pd.DataFrame) -> np.ndarray:
        base = _offset(table, self.part)
        if not self.rounds:
            return np.exp(base)
        booster = lgb.Booster(model_str=self.booster)
        raw = booster.predict(_design(table, self.features), raw_score=True)
        return np.exp(base + _bounded(raw))


@dataclass(frozen=True)
class StackedForecast:
    """The boosters of the window's purchases (and spend, with amounts), how they were judged
    (``judge``: the split the rounds and the intervals come from, and whether trees were
    grown) and the intervals' level."""

    parts: dict[str, StackedPart]
    judge: dict
    interval: float

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Each customer's expected purchases (and spend) in the window after ``table``'s
        cutoff, with the interval: ``expected_<part>``, ``<part>_low``, ``<part>_high``."""
        out = {}
        for part, model in self.parts.items():
            expected = model.predict(table)
            spread = model.spread(expected)
            out[f"expected_{part}"] = expected
            out[f"{part}_low"] = np.maximum(expected - spread, 0.0)
            out[f"{part}_high"] = expected + spread
        return pd.DataFrame(out, index=table.index)


def feature_names(table: pd.DataFrame) -> tuple[str, ...]:
    """The numeric (and boolean) columns of ``table`` but the identifiers and the outcomes."""
    return tuple(
        str(c)
        for c in table.columns
        if c not in IDENTIFIERS + LABEL_COLUMNS
        and (pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c]))
    )


def fit_stacked(
    rows: pd.DataFrame, horizon_days: int, settings: StackedSettings = StackedSettings()
) -> StackedForecast:
    """The forecast of the window after a cutoff, learnt on ``rows``: customers at stacked past
    cutoffs (``cutoff``), their features, the purchase model's forecast of the window
    (``btyd_*``) and the outcomes ``next_purchases`` (and ``next_spend``: a spend forecast
    where any was made). ``horizon_days``: the window's length.

    Raises ``ValueError`` with fewer than two cutoffs: nothing to learn the rounds on.
    """
    cutoffs = pd.to_datetime(rows["cutoff"])
    if cutoffs.nunique() < 2:
        raise ValueError("the stacked forecast needs at least two training cutoffs")
    latest = cutoffs.max()
    valid = (cutoffs == latest).to_numpy()
    ended = (cutoffs <= latest - pd.Timedelta(days=horizon_days)).to_numpy()
    grow = ended.sum() >= JUDGE_MIN_SHARE * len(rows)
    judge = {
        "validation_cutoff": latest.date().isoformat(),
        "validation_rows": int(valid.sum()),
        "training_rows": int(ended.sum()),
        "trees": bool(grow),
    }
    features = feature_names(rows)
    parts = {}
    for part, target in TARGETS.items():
        if target not in rows or not rows[target].sum() > 0:
            continue
        params, base = settings.params(part), _offset(rows, part)
        y = rows[target].to_numpy(dtype=float)
        booster, rounds, judged = "", 0, np.exp(base[valid])
        if grow:
            train = lgb.Dataset(
                _design(rows[ended], features), y[ended], init_score=base[ended], params=params
            )
            check = lgb.Dataset(
                _design(rows[valid], features), y[valid], init_score=base[valid], reference=train
            )
            stop = lgb.early_stopping(settings.early_stopping_rounds, verbose=False)
            judge_booster = lgb.train(
                params, train, settings.max_rounds, valid_sets=[check], callbacks=[stop]
            )
            rounds = int(judge_booster.best_iteration) or judge_booster.current_iteration()
            raw = judge_booster.predict(
                _design(rows[valid], features), num_iteration=rounds, raw_score=True
            )
            judged = np.exp(base[valid] + _bounded(raw))
            everything = lgb.Dataset(_design(rows, features), y, init_score=base, params=params)
            booster = lgb.train(params, everything, rounds).model_to_string()
        scale = float(judged.mean())
        scores = np.abs(y[valid] - judged) / np.sqrt(judged + scale)
        quantile = _conformal_quantile(scores, settings.interval)
        parts[part] = StackedPart(part, booster, features, rounds, quantile, scale)
    return StackedForecast(parts, judge, settings.interval)


def _conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) level)``-th smallest score."""
    n = len(scores)
    rank = min(int(np.ceil((n + 1) * level)), n)
    return float(np.sort(scores)[rank - 1])


def _offset(table: pd.DataFrame, part: str) -> np.ndarray:
    """What the trees start from, on the log scale: the purchase model's forecast of the
    window's purchases, times for spend the customer's spend per purchase day shrunk toward
    the customers' (as if by :data:`SHRINK_DAYS` more days at the mean)."""
    purchases = np.maximum(table["btyd_expected_purchases"].to_numpy(dtype=float), FLOOR)
    if part == "purchases":
        return np.log(purchases)
    spend = table["total_spend"].to_numpy(dtype=float)
    days = table["purchase_days"].to_numpy(dtype=float)
    mean = spend.sum() / max(days.sum(), 1.0)
    per_day = (spend + SHRINK_DAYS * mean) / (days + SHRINK_DAYS)
    return np.log(purchases * np.maximum(per_day, 1e-6))


def _bounded(raw: np.ndarray) -> np.ndarray:
    """The trees' correction on the log scale, within a factor :data:`MAX_CORRECTION`."""
    return np.clip(raw, -np.log(MAX_CORRECTION), np.log(MAX_CORRECTION))


def _design(table: pd.DataFrame, features: tuple[str, ...]) -> np.ndarray:
    return table[list(features)].to_numpy(dtype=float)
