"""Churn models read by the pipeline: :meth:`models.churn.classifier.ChurnModel.load`, with a
failure turned into a :class:`CvmError` that says what to re-run, and the feature importances
saved beside (a model saves itself: :meth:`~models.churn.classifier.ChurnModel.save`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline import io
from pipeline.errors import CvmError

# models.churn loads LightGBM: imported where a model is read, not when the CLI starts


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
