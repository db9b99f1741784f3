"""All-or-nothing outputs: the files (or directories) a step writes appear together or not at all,
even when the process is killed half-way.

Each output is written under a temporary name beside its target. Once every one is complete, a
journal listing the renames is written (the commit point) and the renames follow. A run killed
before the commit point leaves only temporaries, which the next run removes; one killed during
the renames leaves a journal, which the next run finishes (:func:`recover`), so the previous set
or the new one is in place, never a mixture once recovery ran.

Names and journals carry the writer's process identity (pid and start time, see
:mod:`pipeline.processes`). A journal holds its paths relative to its own folder when they lie in
the project (the folder holding the journals' folder), so a project moved or copied after a
kill finishes its own writes; recovery refuses a journal naming files outside the folders it is
given instead of touching them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import faults, processes, stops
from pipeline.errors import CvmError

_MARK = ".cvm-"


def _tag() -> str:
    return f"{processes.identity()}-{time.time_ns()}"


def _aside(target: Path, tag: str, kind: str) -> Path:
    return target.with_name(f".{target.name}{_MARK}{tag}.{kind}")


@contextmanager
def atomic_outputs(*targets: Path, state: Path) -> Iterator[list[Path]]:
    """Temporary paths for ``targets`` that replace them together if the block succeeds.

    The block creates each temporary path as a file or a directory. ``state`` is the directory
    of the journals (the catalog's ``state`` entry).
    """
    tag = _tag()
    temps = [_aside(t, tag, "tmp") for t in targets]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield temps
        missing = [str(t) for t, tmp in zip(targets, temps, strict=True) if not tmp.exists()]
        if missing:
            raise RuntimeError(f"outputs not written: {', '.join(missing)}")
        for target, tmp in zip(targets, temps, strict=True):
            if target.exists() and target.is_dir() != tmp.is_dir():
                kind = "a directory" if target.is_dir() else "a file"
                raise OSError(f"{target} is {kind}; it cannot be replaced by the new output")
        faults.checkpoint(f"outputs:before_commit:{_label(targets[0])}")
    except BaseException:  # an error, or a stop (Ctrl-C, SIGTERM) before the commit
        for tmp in temps:
            _remove(tmp)
        raise
    with stops.held():  # a stop during the commit waits for its end
        state.mkdir(parents=True, exist_ok=True)
        journal = state / f"commit{_MARK}{tag}.json"
        moves = [
            [stored(tmp, state), stored(t, state)] for tmp, t in zip(temps, targets, strict=True)
        ]
        pending = journal.with_suffix(".pending")
        pending.write_text(json.dumps({"moves": moves}))
        os.replace(pending, journal)
        _finish(journal, _moves(journal))


@contextmanager
def scratch(parent: Path, label: str) -> Iterator[Path]:
    """A working directory in ``parent``, removed on exit; named so that :func:`recover`
    removes it when a killed run leaves it behind."""
    path = parent / f".{label}{_MARK}{_tag()}.tmp"
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        _remove(path)


def temporary(target: Path) -> Path:
    """A temporary name beside ``target`` that :func:`recover` removes once its process died."""
    return _aside(target, _tag(), "tmp")


def stored(path: Path, state: Path) -> str:
    """``path`` as a journal in the folder ``state`` holds it: relative to ``state`` when it
    lies in the project with it (see :func:`_projects`), absolute otherwise (a declared output
    root)."""
    path = Path(os.path.abspath(path))
    if any(project in path.parents for project in _projects(state)):
        return os.path.relpath(path, os.path.abspath(state))
    return str(path)


def _projects(state: Path) -> list[Path]:
    """The folders that move with the journals' folder ``state``: its parent, and the working
    directory (the project a command runs in) when it holds ``state``."""
    state, here = Path(os.path.abspath(state)), Path.cwd()
    return [state.parent, *([here] if here in state.parents else [])]


def located(text: str, state: Path) -> Path:
    """The path a journal in ``state`` names with ``text`` (see :func:`stored`)."""
    return Path(os.path.normpath(Path(os.path.abspath(state)) / text))


def _moves(journal: Path) -> list[tuple[Path, Path]]:
    moves = json.loads(journal.read_text())["moves"]
    return [tuple(located(path, journal.parent) for path in move) for move in moves]


def _finish(journal: Path, moves: list[tuple[Path, Path]]) -> None:
    """Carry out (or complete) the renames of a journal, then drop what they replaced."""
    olds = [tmp.with_suffix(".old") for tmp, _ in moves]
    for number, ((tmp, target), old) in enumerate(zip(moves, olds, strict=True), start=1):
        if not tmp.exists():
            continue  # renamed before the kill
        if target.is_dir() and not target.is_symlink():
            os.replace(target, old)
        os.replace(tmp, target)
        faults.checkpoint(f"outputs:renamed:{number}:{_label(target)}")
    for old in olds:
        _remove(old)
    journal.unlink(missing_ok=True)


def recover(state: Path, directories: Iterable[Path]) -> list[str]:
    """Finish the commits of killed runs and remove their temporaries; returns what was done.

    Only what a process that no longer runs left behind is touched, so a concurrent run's
    outputs in progress are safe; and only in the project (:func:`_projects`) or
    ``directories``: a journal naming a file elsewhere (a copy's journal naming the original's
    files) is refused with a :class:`CvmError`.
    """
    done = []
    folders = {Path(os.path.abspath(d)) for d in directories}
    if state.is_dir():
        for journal in sorted(state.glob(f"commit{_MARK}*.json")):
            if not _alive(journal.name):
                moves = _moves(journal)
                _refuse_outside(journal, moves, state, folders)
                _finish(journal, moves)
                done.append(f"completed {journal.name}")
        for pending in state.glob(f"commit{_MARK}*.pending"):
            if not _alive(pending.name):
                pending.unlink(missing_ok=True)
    for directory in {d for d in folders if d.is_dir()}:
        for path in directory.glob(f".*{_MARK}*"):
            if path.suffix in (".tmp", ".old") and not _alive(path.name):
                _remove(path)
                done.append(f"removed {path}")
    return done


def _refuse_outside(
    journal: Path, moves: list[tuple[Path, Path]], state: Path, folders: set[Path]
) -> None:
    projects = _projects(state)
    for path in (p for move in moves for p in move):
        if not any(p in path.parents for p in projects) and path.parent not in folders:
            raise CvmError(
                f"{journal} is the journal of a write a stopped command left unfinished; it "
                f"names {path}, which is not among this project's outputs (a copy of another "
                "project's journal?): nothing was changed; remove the journal if its write "
                "belongs to another project, or finish it there"
            )


def _alive(name: str) -> bool:
    """Whether the process whose tag (identity and time) is in ``name`` still runs."""
    tag = name.split(_MARK, 1)[1] if _MARK in name else ""
    return processes.running(tag.rsplit("-", 1)[0])


def _label(target: Path) -> str:
    """``clv/calibration``: how fault points name an output."""
    return f"{target.parent.name}/{target.name}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
