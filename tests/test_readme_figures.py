"""The README's experiment figures are the committed run's: `docs/experiment_example.py` wrote
them from the commands it prints (the probe: the baseline's Brier and ROC-AUC printed there were
0.15011 and 0.76875; the committed run's are 0.15061 and 0.76967)."""

from __future__ import annotations

import json
import re

import yaml

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def example() -> list[str]:
    start = README.index("$ dvc exp run -n leaves15")
    return README[start : README.index("$ cvm plots", start)].splitlines()


def committed() -> list[str]:
    """The baseline's churn Brier, ROC-AUC, total CLV and num_leaves as `dvc exp show` prints
    them (five significant digits)."""
    churn = json.loads((REPO / "reports/evaluation.json").read_text())["churn"]["churn_model"]
    summary = json.loads((REPO / "reports/score_summary.json").read_text())
    leaves = yaml.safe_load((REPO / "params.yaml").read_text())["churn"]["num_leaves"]
    figures = (churn["brier"], churn["roc_auc"], summary["total_clv"])
    return [f"{x:.5g}" for x in figures] + [str(leaves)]


def test_the_experiment_example_s_baseline_is_the_committed_run():
    lines = example()
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ")}
    assert rows["main"] == committed()
    (experiment,) = [line.split() for line in lines if "[leaves15]" in line]
    assert rows["workspace"] == experiment[-4:]  # the experiment left in the workspace
    assert experiment[-1] == "15"
    diff = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("churn.")}
    assert diff["churn.churn_model.brier"][:2] == [committed()[0], experiment[-4]]
    assert diff["churn.churn_model.roc_auc"][:2] == [committed()[1], experiment[-3]]
    assert diff["churn.num_leaves"] == [committed()[3], "15", str(15 - int(committed()[3]))]
    for name in ("churn.churn_model.brier", "churn.churn_model.roc_auc"):
        old, new, change = (float(x) for x in diff[name])
        assert abs(new - old - change) < 1e-5, name
    assert re.search(r"^\$ dvc exp show ", "\n".join(lines), re.M)
