"""Churn models on disk for the pipeline: :meth:`models.churn.classifier.ChurnModel.save` and
``load``, with a failure to load turned into a :class:`CvmError` that says what to re-run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import io
from pipeline.errors import CvmError

# models.churn loads LightGBM: imported where a model is read, not when the CLI starts


def save(model, directory: Path, extra: dict | None = None) -> None:
    """Write ``model`` into ``directory`` (created); ``extra`` is added to its metadata."""
    model.save(directory, extra)


def load(directory: Path):
    """The :class:`models.churn.classifier.ChurnModel` in ``directory``; a :class:`CvmError`
    when it is missing or unreadable."""
    from models.churn.classifier import ChurnModel

    try:
        return ChurnModel.load(directory)
    except Exception as err:  # a missing, truncated or garbage model file
        raise CvmError(
            f"{directory}: not a readable churn model ({err}); run the train_churn stage again"
        ) from None


def importance(directory: Path) -> pd.DataFrame:
    """The feature importances saved with a churn model."""
    from models.churn.classifier import FILES

    return io.read_parquet(directory / FILES["importance"])
