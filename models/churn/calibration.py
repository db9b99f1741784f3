"""Calibration of the churn score: Platt or isotonic calibrators, the choice among the
candidate scores on the validation cutoff, and the logit shift that sets a level."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import optimize, special
from sklearn.isotonic import IsotonicRegression

from models.evaluation.metrics import log_losses

PROB_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    return special.logit(np.clip(p, PROB_EPS, 1 - PROB_EPS))


# ties are broken in this order: the candidates with the purchase model's probability first,
# since it extrapolates with age where trees cannot, and the validation customers are younger;
# the purchase model's probability as it is before any recalibration of it
CANDIDATES = ("clv_as_is", "clv", "stack", "booster")
FOLDS = 5


def fit_calibrator(
    kind: str,
    raw: np.ndarray,
    y: np.ndarray,
    prior: np.ndarray | None = None,
    candidate: str = "stack",
) -> dict[str, Any]:
    """Isotonic regression on the raw score, or Platt scaling: a logistic regression of ``y``
    on the logits of the candidate's inputs (``booster``: the raw score; ``clv``: the prior;
    ``stack``: both) with an intercept. ``clv_as_is`` fits nothing: the prior itself."""
    if kind == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(raw, y)
        return {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    if prior is None:
        candidate = "booster"
    if candidate == "clv_as_is":
        return {"a": 0.0, "c": 1.0, "b": 0.0, "candidate": candidate}
    columns = {"booster": [logit(raw)], "clv": [logit(prior)] if prior is not None else []}
    columns["stack"] = columns["booster"] + columns["clv"]
    z = np.column_stack(columns[candidate])
    design = np.column_stack([z, np.ones(len(z))])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        eta = design @ theta
        # log(1 + exp(eta)) - y * eta, and its gradient
        value = np.mean(np.logaddexp(0.0, eta) - y * eta)
        resid = special.expit(eta) - y
        return float(value), design.T @ resid / len(y)

    start = np.zeros(design.shape[1])
    start[0] = 1.0
    res = optimize.minimize(loss, start, jac=True, method="BFGS")
    coef = {"booster": ["a"], "clv": ["c"], "stack": ["a", "c"]}[candidate]
    out = {"a": 0.0} | dict(zip(coef, map(float, res.x[:-1]), strict=True))
    return out | {"b": float(res.x[-1]), "candidate": candidate}


def select_candidate(
    raw: np.ndarray,
    prior: np.ndarray,
    y: np.ndarray,
    margin: float,
    seed: int,
    shifted: bool = False,
) -> dict[str, Any]:
    """Which calibrated score to publish, chosen on the validation rows alone.

    Each candidate's calibrator is fit on four fifths of the validation rows and scored (log
    loss) on the fifth left out, five times over; the rule: the lowest cross-fitted log loss,
    except that a candidate earlier in :data:`CANDIDATES` within ``margin`` of the best is
    preferred (``clv_as_is``, ``clv``, then ``stack``: the validation customers are younger
    than those scored, and only the purchase model extrapolates with age).

    ``shifted``: each candidate is judged as it will be published, its level set by
    :func:`shifted_to`: the held-out predictions are shifted to the mean of the prior over
    them. Only their shape is then compared; the level a calibrator learns on the validation
    window (another season, younger customers) counts for nothing it will not be used for.
    """
    folds = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    scores = {}
    for candidate in CANDIDATES:
        held_out = np.empty(len(y))
        for k in range(FOLDS):
            fit, out = folds != k, folds == k
            params = fit_calibrator("platt", raw[fit], y[fit], prior[fit], candidate)
            held_out[out] = apply_calibrator("platt", params, raw[out], prior[out])
            if shifted:
                held_out[out] = at_mean(held_out[out], prior[out].mean())
        scores[candidate] = float(np.mean(log_losses(y, held_out)))
    best = min(scores.values())
    choice = next(c for c in CANDIDATES if scores[c] <= best + margin)
    reason = f"{choice}: cross-fitted validation log loss {scores[choice]:.5f}, " + (
        "the lowest"
        if scores[choice] == best
        else f"within {margin} of the lowest ({best:.5f}) and ahead in the preference order"
    )
    judged = ", each candidate shifted to the purchase model's mean, as published"
    rule = (
        f"lowest {FOLDS}-fold cross-fitted log loss on the validation cutoff"
        f"{judged if shifted else ''}; within churn.selection_margin={margin} of the best, "
        "clv_as_is is preferred, then clv, then stack, then booster"
    )
    return {"choice": choice, "scores": scores, "rule": rule, "reason": reason}


def apply_calibrator(
    kind: str, params: Mapping[str, Any], raw: np.ndarray, prior: np.ndarray | None = None
) -> np.ndarray:
    if kind == "isotonic":
        x = np.asarray(params["x"], dtype=float)
        y = np.asarray(params["y"], dtype=float)
        # IsotonicRegression.predict: linear interpolation, clipped outside [x[0], x[-1]]
        return np.interp(raw, x, y)
    eta = params["a"] * logit(raw) + params["b"] + params.get("shift", 0.0)
    if "c" in params and params["c"] != 0:
        eta = eta + params["c"] * logit(prior)
    return special.expit(eta)


def at_mean(p: np.ndarray, goal: float) -> np.ndarray:
    """``p`` shifted on the logit scale so that its mean is ``goal``."""
    z = logit(p)
    return special.expit(z + shift_to_mean(z, goal))


def shift_to_mean(logit: np.ndarray, goal: float) -> float:
    """The constant that, added to ``logit``, makes the mean probability ``goal``."""
    goal = float(np.clip(goal, PROB_EPS, 1 - PROB_EPS))
    return float(optimize.brentq(lambda d: special.expit(logit + d).mean() - goal, -20.0, 20.0))
