"""The notebooks run top to bottom on the pipeline's outputs of the bundled data, and keep their
figures: every cell that draws leaves exactly one PNG in its outputs."""

import re

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

pytestmark = pytest.mark.notebooks

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# a cell that draws: a pyplot figure of its own, or one of models.evaluation.plots
DRAWS = re.compile(r"\bplt\.subplots\(|\bplots\.\w+\(")


def test_there_are_two_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["diagnose_models.ipynb", "explore_transactions.ipynb"]


def images(cell) -> int:
    return sum("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_and_keeps_its_figures(path, pipeline_outputs, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    drawing = [
        i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and DRAWS.search(c.source)
    ]
    assert drawing, "no cell draws: the pattern no longer matches the notebook"
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(pipeline_outputs)}},
    )
    client.execute()
    nbformat.write(notebook, tmp_path / path.name)  # the executed copy, figures included
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    counts = {i: images(notebook.cells[i]) for i in drawing}
    assert counts == dict.fromkeys(drawing, 1), f"PNG outputs per drawing cell: {counts}"
