"""Where every artifact lives: declared once (``paths`` in ``conf/config.yaml``), resolved for a
working directory.

The stages read and write through a :class:`Catalog`, never by spelling a file name, so the same
stage runs in the project, in a retraining staging folder or in a backtest scratch folder: only
the catalog it is given differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Catalog:
    """Every artifact's path. The ``clv_*`` and ``churn_*`` models are directories (see
    :mod:`pipeline.clv_store`, :mod:`pipeline.churn_store`); ``scored`` is the base path of the
    scored table (``.parquet``, ``.csv`` and ``.schema.json`` beside each other), ``segments``
    that of its segment summary (``.parquet`` and ``.csv``)."""

    clean: Path
    quarantine: Path
    ingest_report: Path
    ingest_metrics: Path
    features_calibration: Path
    features_scoring: Path
    features_train_calibration: Path
    features_train_scoring: Path
    features_repeats: Path
    features_report: Path
    features_metrics: Path
    clv_calibration: Path
    clv_scoring: Path
    fit_report: Path
    fit_metrics: Path
    churn_calibration: Path
    churn_scoring: Path
    train_report: Path
    train_metrics: Path
    evaluation: Path
    evaluation_metrics: Path
    plots: Path
    scored: Path
    segments: Path
    score_summary: Path
    report: Path
    state: Path  # bookkeeping of the writes in progress (see pipeline.io.atomic_outputs)

    @classmethod
    def from_paths(cls, paths: Mapping[str, str], root: Path | None = None) -> Catalog:
        """The catalog of the ``paths`` config section; relative paths are taken from ``root``
        (default: the working directory)."""
        names = [f.name for f in dataclasses.fields(cls)]
        base = root or Path()
        return cls(**{n: base / Path(str(paths[n])) for n in names})

    def under(self, root: Path) -> Catalog:
        """The same layout inside ``root`` (absolute entries too): a private working copy."""
        return Catalog(**{name: _inside(root, path) for name, path in self.entries().items()})

    def replace(self, **entries: Path) -> Catalog:
        """This catalog with some entries pointing elsewhere."""
        return dataclasses.replace(self, **{k: Path(v) for k, v in entries.items()})

    def entries(self) -> dict[str, Path]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def features(self, table: str) -> Path:
        """A feature table: ``calibration``, ``scoring``, ``train_calibration``,
        ``train_scoring`` or ``repeats``."""
        return getattr(self, f"features_{table}")

    def clv(self, fit: str) -> Path:
        """The CLV model of a fit: ``calibration`` or ``scoring``."""
        return getattr(self, f"clv_{fit}")

    def churn(self, fit: str) -> Path:
        """The churn model of a fit: ``calibration`` or ``scoring``."""
        return getattr(self, f"churn_{fit}")

    def directories(self) -> set[Path]:
        """The directories the artifacts are written in (where temporaries may be left)."""
        return {path.parent for path in self.entries().values()}

    def scored_files(self) -> dict[str, Path]:
        """The scored table's three files by suffix."""
        return scored_files(self.scored)

    def segment_files(self) -> dict[str, Path]:
        """The segment summary's two files by suffix."""
        return segment_files(self.segments)


def segments_beside(scored: Path) -> Path:
    """The base path of the segment summary written beside the scored table at ``scored``
    (``<base>_segments``): where ``cvm score`` and ``cvm retrain`` put it, and the default of
    ``paths.segments``."""
    return scored.with_name(f"{scored.name}_segments")


def scored_files(base: Path) -> dict[str, Path]:
    """The three files of a scored table published at ``base``, by suffix."""
    return {s: base.with_suffix(s) for s in (".parquet", ".csv", ".schema.json")}


def segment_files(base: Path) -> dict[str, Path]:
    """The two files of a segment summary written at ``base``, by suffix."""
    return {s: base.with_suffix(s) for s in (".parquet", ".csv")}


def _inside(root: Path, path: Path) -> Path:
    return root.joinpath(*[p for p in path.parts if p not in (path.anchor, "..", ".")])
