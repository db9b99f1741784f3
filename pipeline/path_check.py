"""Outputs kept clear of what they could destroy, checked before anything is written.

Every file or folder cvm writes (the catalog's ``paths``, the ``retrain`` files, the tracking
store, the export database, ``cvm score --out``) must not equal or contain an input (the log,
the customer table), another output or cvm's code and the project's config; the catalog's and
the retrain outputs must also lie inside the project folder or under ``paths.output_roots``.
A folder output is replaced whole (the plots, the models), so pointing one at the log's folder
would delete the log: :func:`problems` names both keys of every such clash.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path

import features
import models
import pipeline
from pipeline.catalog import Catalog, scored_files, segment_files, segments_beside
from pipeline.config_model import Config

# what a project holds beside its data: the config and the DVC and git bookkeeping
PROJECT_FILES = ("conf", "params.yaml", "dvc.yaml", "dvc.lock", ".dvc", ".git", "pyproject.toml")
# the retrain folder holds the retrain's own files (its lock, runs, history, staging area)
FOLDERS_OF_THEIR_OWN = {"retrain.work_dir"}
# the catalog's and the retrain outputs stay inside the project; the stores named by a URL and
# a table named on the command line may lie anywhere clear of the inputs and the code
IN_PROJECT = ("paths.", "retrain.")


def problems(
    config: Config,
    root: Path,
    inputs: Mapping[str, Path | None] = {},
    outputs: Mapping[str, Path] = {},
) -> list[str]:
    """Every clash, each naming both keys, of ``config``'s outputs in the project folder
    ``root`` with the inputs, each other, the code and the project's config. A command adds the
    ``inputs`` and ``outputs`` its options name (``--log``, ``--out``: see
    :func:`scored_outputs`); an ``--out`` table replaces ``retrain.scored``."""
    root = _real(Path(root))
    sources = _inputs(config) | {k: v for k, v in inputs.items() if v is not None}
    placed = _outputs(config)
    if outputs:
        placed = {k: v for k, v in placed.items() if not k.startswith("retrain.scored")}
    placed |= outputs
    allowed = [root, *(_at(root, Path(p)) for p in config.paths.output_roots)]
    real = {key: _at(root, path) for key, path in placed.items()}
    readable = [root, *(_at(root, Path(p)) for p in config.paths.input_roots)]
    found = [
        f"{name} is '{source}'; expected a log inside the project folder ({root}) or under "
        "paths.input_roots (add the folder it lies in)"
        for name, source in sources.items()
        if not any(_within(_at(root, source), r) for r in readable)
    ]
    for key, path in placed.items():
        found += _misplaced(key, path, real[key], root, allowed)
        if real[key] != root:  # the project folder holds everything: one message is enough
            found += _over_inputs(key, path, real[key], root, sources)
    return found + _shared(placed, real)


def _misplaced(key: str, path: Path, where: Path, root: Path, allowed: list[Path]) -> list[str]:
    """An output outside the allowed folders, the project folder itself, or on the code or
    the project's config."""
    if where == root:
        return [f"{key} is '{path}'; expected a path inside the project folder, not it"]
    found = []
    if key.startswith(IN_PROJECT) and not any(_within(where, r) for r in allowed):
        found.append(
            f"{key} is '{path}'; expected a path inside the project folder ({root}) or "
            "under paths.output_roots"
        )
    for name, guarded in _guarded(root):
        if _within(guarded, where):
            found.append(f"{key} is '{path}'; it {_clash(where, guarded)} {name} ('{guarded}')")
        elif _within(where, guarded):
            found.append(f"{key} is '{path}'; it lies inside {name} ('{guarded}')")
    return found


def _over_inputs(
    key: str, path: Path, where: Path, root: Path, sources: Mapping[str, Path]
) -> list[str]:
    """An output that equals or contains an input."""
    return [
        f"{key} is '{path}'; it {_clash(where, _at(root, source))} the input {name} "
        f"('{source}'): an output may not equal or contain an input"
        for name, source in sources.items()
        if _within(_at(root, source), where)
    ]


def _shared(placed: Mapping[str, Path], real: Mapping[str, Path]) -> list[str]:
    """Two outputs on one path, or one inside the other (but a folder's own files)."""
    found = []
    keys = list(placed)
    for i, key in enumerate(keys):
        for other in keys[i + 1 :]:
            outer, inner = (key, other) if _within(real[other], real[key]) else (other, key)
            if not _within(real[inner], real[outer]) or _owns(outer, real[outer], real[inner]):
                continue
            found.append(
                f"{outer} is '{placed[outer]}'; it {_clash(real[outer], real[inner])} {inner} "
                f"('{placed[inner]}'): two outputs may not share a path"
            )
    return found


def _inputs(config: Config) -> dict[str, Path]:
    found = {"data.path": Path(config.data.path)}
    if config.data.customers is not None:
        found["data.customers.path"] = Path(config.data.customers.path)
    return found


def _outputs(config: Config) -> dict[str, Path]:
    """Every output's path by key (the scored tables' files each under their own key)."""
    paths = config.paths
    found = {}
    for f in fields(Catalog):  # the artifacts (the ``*_dir`` keys are only what they build on)
        if f.name not in ("scored", "segments"):
            found[f"paths.{f.name}"] = Path(getattr(paths, f.name))
    found |= _keyed("paths.scored", scored_files(Path(paths.scored)))
    found |= _keyed("paths.segments", segment_files(Path(paths.segments)))
    retrain = config.retrain
    for key in ("work_dir", "lock_file", "summary"):
        found[f"retrain.{key}"] = Path(getattr(retrain, key))
    if retrain.scored is not None and Path(retrain.scored) != Path(paths.scored):
        found |= scored_outputs(Path(retrain.scored), "retrain.scored")
    for key, url in (
        ("tracking.uri", config.tracking.uri),
        ("tracking.registry_uri", config.tracking.registry_uri),
        ("export.database.url", config.export.database.url),
    ):
        file = _database_file(url)
        if file is not None:
            found[f"{key} (its file)"] = file
    return found


def scored_outputs(base: Path, key: str = "--out") -> dict[str, Path]:
    """The files of a table published at ``base`` (``cvm score --out``, ``retrain.scored``) by
    key: its three and its segment summary's two beside it."""
    segments = segment_files(segments_beside(base))
    return _keyed(key, scored_files(base)) | _keyed(f"{key} segments", segments)


def _keyed(key: str, files: dict[str, Path]) -> dict[str, Path]:
    return {f"{key} ({suffix})": path for suffix, path in files.items()}


def _database_file(url: str | None) -> Path | None:
    """The file of a ``sqlite:///`` or ``duckdb:///`` URL (``None`` for a server)."""
    for scheme in ("sqlite:///", "duckdb:///"):
        if url and url.startswith(scheme):
            return Path(url[len(scheme) :].split("?", 1)[0])
    return None


def _owns(key: str, folder: Path, path: Path) -> bool:
    """``key`` is a folder of its own files and ``path`` one of them."""
    return key in FOLDERS_OF_THEIR_OWN and path != folder


def _guarded(root: Path) -> Iterator[tuple[str, Path]]:
    for package in (features, models, pipeline):
        yield f"cvm's code ({package.__name__}/)", _real(Path(package.__file__).parent)
    for name in PROJECT_FILES:
        yield f"the project's {name}", root / name


def _clash(outer: Path, inner: Path) -> str:
    return "equals" if outer == inner else "contains"


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _at(root: Path, path: Path) -> Path:
    return _real(path if path.is_absolute() else root / path)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path.expanduser()))
