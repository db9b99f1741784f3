"""The README's experiment example, run on this checkout and written into README.md.

From a clean checkout of main whose pipeline outputs are up to date (`make run`):

    .venv/bin/python docs/experiment_example.py

runs the commands the README prints (`dvc exp run -n leaves15 -S churn.num_leaves=15`, then
`dvc exp show` and `dvc exp diff`), puts their output in its place in README.md, and gives the
workspace back (`git checkout .`, `dvc checkout`, the experiment removed). A test checks that
the baseline's figures there are the committed run's (tests/test_readme_figures.py).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = "dvc exp run -n leaves15 -S churn.num_leaves=15"
SHOW = (
    "dvc exp show --drop '.*' --keep "
    "'Experiment|churn\\.num_leaves|churn\\.churn_model\\.(roc_auc|brier)|^total_clv'"
)
DIFF = "dvc exp diff main leaves15 --no-path"
PLOTS = "cvm plots main leaves15"
COMMENTS = {
    RUN: "# train_churn, evaluate, score, report",
    DIFF: "# every metric and parameter that changed",
    PLOTS: "# dvc_plots/index.html: both runs' curves, offline",
}
KEPT_METRICS = ("churn.churn_model.brier", "churn.churn_model.roc_auc")


def sh(command: str) -> str:
    done = subprocess.run(
        shlex.split(command), cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout


def prompt(command: str) -> str:
    comment = COMMENTS.get(command)
    return f"$ {command}" + (f"{' ' * max(1, 52 - len(command))}{comment}" if comment else "")


def diff_excerpt(text: str) -> list[str]:
    """The header, the churn model's Brier and ROC-AUC rows (aligned as a table of their own:
    DVC's is as wide as its widest cell), and the parameters' table."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    params = next(i for i, line in enumerate(lines) if line.startswith("Param"))
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[:params]]
    rows = [rows[0], *(row for row in rows[1:] if row[0] in KEPT_METRICS)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return [*table, "...", *lines[params:]]


def block() -> str:
    """The example as the README prints it, from the commands' output on this checkout."""
    sh(RUN)
    try:
        show = [line.rstrip() for line in sh(SHOW).splitlines() if line.strip()]
        table = [line for line in show if not set(line) <= set("─━┃│┏┓┗┛┡┩┠┨ ")]
        diff = diff_excerpt(sh(DIFF))
    finally:
        sh("git checkout .")
        sh("dvc checkout")
        sh("dvc exp remove leaves15")
    lines = [prompt(RUN), prompt(SHOW), *table, prompt(DIFF), *diff, prompt(PLOTS)]
    return "\n".join(lines) + "\n"


def write(readme: Path = REPO / "README.md") -> None:
    text = readme.read_text()
    start = text.index(f"$ {RUN}")
    end = text.index("\n", text.index(f"$ {PLOTS}")) + 1
    readme.write_text(text[:start] + block() + text[end:])


if __name__ == "__main__":
    write()
