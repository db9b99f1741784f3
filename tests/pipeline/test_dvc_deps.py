"""Every DVC stage depends on the code that computes it, so a change to it reruns the stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

COMPUTATION = ("features", "models")  # the pure code a stage's outputs come from
LOADERS = ("pipeline/clv_store.py", "pipeline/churn_store.py")  # bring model code with models


def _imports(path: Path) -> set[Path]:
    """The project modules ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {m for n in names if (m := REPO / (n.replace(".", "/") + ".py")).is_file()}
    return found


def computation_of(stage_module: Path) -> set[str]:
    """The ``features/`` and ``models/`` modules the stage module reaches through its imports
    and theirs (shared pipeline plumbing such as config or I/O is not followed, the model store
    is: loading a model brings in the code that predicts from it)."""
    seen, todo = set(), [stage_module]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        relative = path.relative_to(REPO)
        if path == stage_module or relative.parts[0] in COMPUTATION or str(relative) in LOADERS:
            todo.extend(_imports(path))
    relative = (p.relative_to(REPO) for p in seen)
    return {p.as_posix() for p in relative if p.parts[0] in COMPUTATION}


STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_depends_on_every_module_it_computes_with(name: str) -> None:
    module = REPO / "pipeline" / "stages" / f"{name}.py"
    needed = computation_of(module)
    assert needed, f"{module} reaches no features/ or models/ module"
    deps = STAGES[name]["deps"]
    missing = sorted(m for m in needed if not any(m == d or m.startswith(f"{d}/") for d in deps))
    assert not missing, f"dvc.yaml stage {name} lacks deps {missing}"
