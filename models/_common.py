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


def levels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``values`` (sorted) and, for every element, the position of its value among them.

    Likelihood terms that depend on one summary column only are computed once per distinct
    value and gathered back, so costly functions (logs, log-gammas) run on a few hundred values
    instead of one per row.
    """
    distinct, position = np.unique(values, return_inverse=True)
    return distinct, position.reshape(-1).astype(np.int64)


def model_data(**arrays: ArrayLike) -> list[pt.TensorVariable]:
    """The ``arrays`` as ``pm.Data`` of the current model, in the order given.

    Data kept out of the graph's constants leaves a graph that does not change with the data,
    so its compiled code (nutpie's numba functions in particular) is reused from the cache
    instead of being rebuilt, and no large array is embedded in compiled code.
    """
    return [pm.Data(name, np.asarray(values)) for name, values in arrays.items()]


def weighted_model(
    names: Sequence[str], priors: Priors, total_loglik: Callable[..., pt.TensorVariable]
) -> pm.Model:
    """A model with positive parameters ``names`` and ``total_loglik(*params)`` as potential."""
    with pm.Model() as model:
        params = [priors.positive(n) for n in names]
        pm.Potential("loglik", total_loglik(*params))
    return model
