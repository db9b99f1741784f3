"""The project's choices: the overrides `cvm params` was given, kept in ``conf/`` so that every
composition of it reads them, DVC's included.

`dvc exp run` composes ``params.yaml`` again from ``conf/config.yaml`` (with its ``-S``
overrides) and knows nothing of the overrides `cvm params` composed the workspace's with: a
project set to its own log would silently run an experiment on the default one. `cvm params
KEY=VALUE...` therefore writes its overrides as ``conf/project/choices.yaml``, the last entry of
``conf/config.yaml``'s defaults (optional: absent, nothing changes), and in a project with a
``conf/``, a command that reads ``params.yaml`` stops when the log it names is not the
project's, the one ``conf/`` composes to (:func:`log_mismatch`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import CvmError

FILE = Path("project") / "choices.yaml"  # under conf/
HEADER = """\
# @package _global_
# This project's choices: `cvm params`, `dvc repro`, `dvc exp run`, `cvm run` and `cvm retrain`
# all compose conf/ with them. Written by
#   cvm params {args}
# rewritten by the next `cvm params` with choices, removed by `cvm params` without any.
"""


@contextmanager
def set_aside(conf_dir: Path) -> Iterator[None]:
    """The project's choices out of the way for the block (which composes ``conf/`` without
    them and writes new ones); put back if it fails."""
    path = conf_dir / FILE
    previous = path.read_bytes() if path.is_file() else None
    path.unlink(missing_ok=True)
    try:
        yield
    except BaseException:
        if previous is not None:
            path.write_bytes(previous)
        raise


def write(overrides: list[str], conf_dir: Path) -> None:
    """``conf_dir/project/choices.yaml`` holding ``overrides`` (Hydra's ``key=value`` syntax): a
    config group's choice as an ``override`` in its defaults, any other value at its key; no file
    without overrides."""
    if not overrides:
        return
    defaults, values = _split(overrides, conf_dir)
    body: dict[str, Any] = {"defaults": defaults} if defaults else {}
    path = conf_dir / FILE
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = HEADER.format(args=" ".join(overrides)) + yaml.safe_dump(body | values, sort_keys=False)
    tmp.write_text(text)
    os.replace(tmp, path)


def _split(overrides: list[str], conf_dir: Path) -> tuple[list[dict[str, str]], dict[str, Any]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise CvmError(f"cvm params: {err}") from None
    defaults: list[dict[str, str]] = []
    values: dict[str, Any] = {}
    for override, text in zip(parsed, overrides, strict=True):
        key = override.key_or_group
        if override.is_delete():
            raise CvmError(
                f"cvm params {text}: a key cannot be removed from the project's choices; "
                "remove it from conf/ instead"
            )
        if (conf_dir / key.replace(".", "/")).is_dir():
            defaults.append({f"override /{key.replace('.', '/')}": override.value()})
            continue
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = override.value()
    return defaults, values


def log_mismatch(params: dict[str, Any], project: dict[str, Any], params_file: Path) -> None:
    """Stop when ``params`` (the loaded ``params.yaml``) reads another log than ``project`` (the
    composition of ``conf/`` with the project's choices): a `dvc exp run -S data=...` or an edited
    ``params.yaml`` would otherwise run, and be compared in `dvc exp show`, on another log."""
    ran, own = (_log(tree) for tree in (params, project))
    if ran != own:
        raise CvmError(
            f"{params_file} reads the log {ran[0]} ({ran[1]}), but this project's log is "
            f"{own[0]} ({own[1]}), the one conf/ composes to. To work on another "
            f"log, make it the project's: `cvm params data={ran[0]} ...`, then `dvc repro` or "
            "`dvc exp run` (whose -S options change anything but the log)"
        )


def _log(tree: dict[str, Any]) -> tuple[str, str]:
    data = tree.get("data") or {}
    return str(data.get("name")), str(data.get("path"))
