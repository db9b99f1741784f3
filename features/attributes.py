"""Customer attributes (time-invariant covariates): checked, encoded and matched to the log.

The attributes table has one row per customer: an id column, numeric covariates and
categorical ones. Categorical columns are one-hot encoded against a declared base level (the
base gets no column, so a coefficient is the effect of a level relative to the base). Every
covariate column of the result is named ``cov_<name>`` (``cov_<column>_<level>`` for a level),
the prefix the CLV models look for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from models.columns import COVARIATE_PREFIX as PREFIX


class AttributesError(ValueError):
    """A problem with the attributes table; the message names the file, row and column."""


@dataclass(frozen=True)
class AttributeSpec:
    """Which columns of the attributes table are what (``data.customers``).

    ``categorical`` pairs a column with its base level (compared as text).
    """

    path: str
    id: str
    covariates: tuple[str, ...] = ()
    categorical: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        return [self.id, *self.covariates, *(c for c, _ in self.categorical)]


def _where(spec: AttributeSpec, row: int, column: str) -> str:
    # row numbers as in the file: the header is line 1
    return f"{spec.path}, line {row + 2}, column {column!r}"


def encode(raw: pd.DataFrame, spec: AttributeSpec) -> pd.DataFrame:
    """``customer_id`` (text) and the ``cov_*`` columns of the attributes ``raw`` (read as text).

    Raises :class:`AttributesError` for a missing column, a repeated or empty id, a missing
    value, a non-numeric value in a numeric column, or a base level that no row has.
    """
    missing = [c for c in spec.columns if c not in raw.columns]
    if missing:
        raise AttributesError(
            f"{spec.path}: no column {missing}; the file has {', '.join(map(str, raw.columns))}"
        )
    for column in spec.columns:
        empty = raw[column].isna() | (raw[column].astype(str).str.strip() == "")
        if empty.any():
            row = int(empty.to_numpy().argmax())
            raise AttributesError(f"{_where(spec, row, column)}: missing value")
    ids = raw[spec.id].astype(str).str.strip()
    repeated = ids.duplicated()
    if repeated.any():
        row = int(repeated.to_numpy().argmax())
        raise AttributesError(f"{_where(spec, row, spec.id)}: customer {ids.iloc[row]!r} again")
    out = {"customer_id": ids.to_numpy()}
    for column in spec.covariates:
        values = pd.to_numeric(raw[column].astype(str).str.strip(), errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise AttributesError(
                f"{_where(spec, row, column)}: {raw[column].iloc[row]!r} is not a number"
            )
        out[f"{PREFIX}{column}"] = values.to_numpy(dtype=float)
    for column, base in spec.categorical:
        levels = raw[column].astype(str).str.strip()
        if not (levels == str(base)).any():
            found = ", ".join(sorted(levels.unique())[:10])
            raise AttributesError(
                f"{spec.path}, column {column!r}: no row has the base level {base!r} (levels: "
                f"{found})"
            )
        for level in sorted(set(levels) - {str(base)}):
            out[f"{PREFIX}{column}_{level}"] = (levels == level).to_numpy(dtype=float)
    return pd.DataFrame(out)


def match(customers: Sequence[str], attributes: pd.DataFrame, path: str) -> dict[str, int]:
    """Counts of the attributes rows matched to the log's ``customers`` and of those that are
    not (ignored); an :class:`AttributesError` naming how many of the log's customers have no
    attributes, with examples (the models need every customer's covariates)."""
    known = pd.Index(attributes["customer_id"])
    in_log = pd.Index(pd.unique(pd.Series(customers, dtype=str)))
    lacking = in_log.difference(known)
    if len(lacking):
        examples = ", ".join(map(repr, lacking[:5]))
        raise AttributesError(
            f"{path}: {len(lacking):,} of the log's {len(in_log):,} customers have no attributes "
            f"(e.g. {examples}); add a row for each"
        )
    matched = int(known.isin(in_log).sum())
    return {"attribute_rows": len(known), "matched": matched, "unknown": len(known) - matched}
