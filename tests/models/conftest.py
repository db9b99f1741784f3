"""Fixtures for the model tests: the CDNOW calibration summary and published reference values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="session")
def cdnow() -> pd.DataFrame:
    """2,357 CDNOW customers: frequency, recency, T (weeks), monetary_value (mean repeat spend)."""
    raw = pd.read_csv(FIXTURES / "cdnow_summary.csv")
    return raw.rename(
        columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"}
    ).set_index("ID")


@pytest.fixture(scope="session")
def reference() -> dict:
    """Published CDNOW figures (see the ``source`` entries in the JSON)."""
    with open(FIXTURES / "reference_values.json") as fh:
        return json.load(fh)
