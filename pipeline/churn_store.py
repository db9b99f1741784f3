"""Fitted churn models on disk: one directory per model, its file names owned here.

The directory holds the LightGBM text model, its metadata (calibrator, features, settings) and
the feature importances.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.errors import CvmError

MODEL, META, IMPORTANCE = "model.txt", "meta.json", "importance.parquet"


def save(model, directory: Path, extra: dict | None = None) -> None:
    """Write a :class:`models.churn.classifier.ChurnModel` into ``directory`` (created);
    ``extra`` is added to its metadata."""
    from models.churn.classifier import feature_importance, to_artifacts

    directory.mkdir(parents=True, exist_ok=True)
    text, meta = to_artifacts(model)
    (directory / MODEL).write_text(text)
    (directory / META).write_text(json.dumps(meta | (extra or {}), indent=2, sort_keys=True))
    feature_importance(model).to_parquet(directory / IMPORTANCE, index=False)


def load(directory: Path):
    """The churn model in ``directory``; a :class:`CvmError` when it is missing or unreadable."""
    from models.churn.classifier import from_artifacts

    try:
        meta = json.loads((directory / META).read_text())
        return from_artifacts((directory / MODEL).read_text(), meta)
    except Exception as err:  # a missing, truncated or garbage model file
        raise CvmError(
            f"{directory}: not a readable churn model ({err}); run the train_churn stage again"
        ) from None


def importance(directory: Path):
    """The feature importances saved with a churn model."""
    from pipeline import io

    return io.read_parquet(directory / IMPORTANCE)
