"""Small helpers shared by the model modules."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from numpy.typing import ArrayLike

from models.priors import Priors
from models.sufficient import collapse


def param_arrays(params: Mapping[str, ArrayLike], names: Sequence[str]) -> list[np.ndarray]:
    """Return ``params[name]`` as float arrays, in the order of ``names``.

    Raises
    ------
    KeyError
        If a parameter is missing.
    """
    missing = [n for n in names if n not in params]
    if missing:
        raise KeyError(f"missing parameters {missing}; expected {list(names)}")
    return [np.asarray(params[n], dtype=float) for n in names]


def weighted_rows(
    data: pd.DataFrame, columns: Sequence[str], weights: ArrayLike | None, collapse_rows: bool
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows and weights to put in a likelihood.

    With explicit ``weights`` the rows are used as given; otherwise identical rows are
    collapsed (``collapse_rows=True``) or every row gets weight one.
    """
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != (len(data),):
            raise ValueError(f"weights must have shape ({len(data)},), got {w.shape}")
        return data[list(columns)].reset_index(drop=True), w
    if collapse_rows:
        col = collapse(data, columns)
        return col.unique, col.weights.astype(float)
    return data[list(columns)].reset_index(drop=True), np.ones(len(data))


def weighted_model(
    names: Sequence[str], priors: Priors, loglik: Callable[..., pt.TensorVariable], w: np.ndarray
) -> pm.Model:
    """A model with positive parameters ``names`` and ``sum(w * loglik(*params))`` as potential."""
    with pm.Model() as model:
        params = [priors.positive(n) for n in names]
        pm.Potential("loglik", pt.sum(pt.as_tensor_variable(w) * loglik(*params)))
    return model
