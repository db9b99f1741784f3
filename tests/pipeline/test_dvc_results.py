"""Metrics and plots DVC can show and compare: a real `dvc repro` on the CDNOW sample, committed,
then an experiment; `dvc exp show`, `dvc metrics diff`, `dvc exp diff` and `dvc plots diff` read
both, and each plot is drawn once, the churn plots with a line per score."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.browser import render
from tests.conftest import REPO
from tests.pipeline.test_dvc import sample_experiment, sh

pytestmark = [pytest.mark.dvc, pytest.mark.xdist_group("dvc")]

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
METRICS = sorted(
    PARAMS["paths"][entry.strip("${}").removeprefix("paths.")]
    for stage in DVC["stages"].values()
    for metric in stage.get("metrics", [])
    for entry in metric
)
# the stages' reports (numbers, dates and texts), committed beside their metrics
REPORTS = sorted(
    PARAMS["paths"][name.strip("${}").removeprefix("paths.")]
    for stage in DVC["stages"].values()
    for out in stage.get("outs", [])
    if isinstance(out, dict)
    for name, options in out.items()
    if options.get("cache") is False and name != "${paths.plots}"
)
PLOTS = {name: spec for plot in DVC["plots"] for name, spec in plot.items()}
# a file per line: the churn scores (the model, the CLV probability, recency), the customers
SCORES = {"churn_roc": 3, "churn_calibration": 2, "p_alive_paths": 3}
DENSITIES = ("purchase_rate_density", "dropout_density")  # one line per revision


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """The project on the CDNOW sample (MAP fits): `dvc repro` committed, then
    `dvc exp run -S churn.num_leaves=15` (named ``leaves15``) left in the workspace; the DVC
    tests' one build of it."""
    return sample_experiment(tmp_path_factory)


def dvc_json(root: Path, *args: str):
    """The JSON a dvc command prints, after checking it loaded every revision's files."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["dvc", *args, "--json"], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "failed to load" not in done.stderr.lower(), done.stderr
    return json.loads(done.stdout)


def test_the_metrics_and_plot_data_are_committed_and_nothing_else(experiment):
    tracked = set(sh(experiment, "git", "ls-files", "data", "artifacts", "reports").split())
    plot_files = {
        p.replace("${paths.plots}", PARAMS["paths"]["plots"])
        for spec in PLOTS.values()
        for p in spec["y"]
    }
    raw = {p for p in tracked if p.startswith("data/raw/")}
    assert tracked - raw == set(METRICS) | set(REPORTS) | plot_files
    assert len(METRICS) == 6 and len(REPORTS) == 5
    assert sum((experiment / p).stat().st_size for p in plot_files) < 100_000


def test_the_metric_files_hold_numbers_only(experiment):
    """Texts, dates, hashes and lists stay in the reports: `dvc metrics diff` and `dvc exp show`
    compare numbers (the probe: 38 texts and lists in train_report.json, model_id hashes)."""

    def leaves(node):
        if isinstance(node, dict):
            for value in node.values():
                yield from leaves(value)
        else:
            yield node

    for path in METRICS:
        values = list(leaves(json.loads((experiment / path).read_text())))
        assert values and all(type(v) in (int, float) for v in values), path
    train = json.loads((experiment / "artifacts/churn/train_report.json").read_text())
    assert isinstance(train["scoring"]["selection"]["reason"], str)  # kept in the report


def test_exp_show_has_numbers_for_the_baseline_and_the_experiment(experiment):
    rows = dvc_json(experiment, "exp", "show")
    baseline = next(r for r in rows if r["rev"] != "workspace")
    leaves15 = next(e["revs"][0] for e in baseline["experiments"] if e["name"] == "leaves15")
    for row in (baseline, leaves15):
        metrics = row["data"]["metrics"]
        assert sorted(metrics) == METRICS, row["name"]
        assert not [m for m, v in metrics.items() if "error" in v], metrics
        auc = metrics["reports/evaluation_metrics.json"]["data"]["churn"]["churn_model"]["roc_auc"]
        assert 0.5 < auc < 1.0
    params = leaves15["data"]["params"]["params.yaml"]["data"]
    assert params["churn"]["num_leaves"] == 15


def test_metrics_diff_shows_what_the_experiment_changed(experiment):
    diff = dvc_json(experiment, "metrics", "diff")  # HEAD against the experiment's workspace
    churn = diff["artifacts/churn/train_metrics.json"]  # num_leaves changes the churn model
    assert churn and all(isinstance(v["diff"], int | float) for v in churn.values())
    assert [k for k in diff["reports/score_summary.json"] if k.startswith("lifecycle.")]
    assert "data/interim/ingest_report.json" not in diff  # upstream of the churn model


def test_exp_diff_compares_the_experiment_with_its_baseline(experiment):
    diff = dvc_json(experiment, "exp", "diff", "HEAD", "leaves15")
    leaves = diff["params"]["params.yaml"]["churn.num_leaves"]
    assert (leaves["old"], leaves["new"]) == (PARAMS["churn"]["num_leaves"], 15)
    shift = diff["metrics"]["artifacts/churn/train_metrics.json"]["scoring.selection.shift"]
    assert shift["old"] != shift["new"]


def test_plots_diff_draws_each_plot_once_and_a_line_per_score(experiment):
    rendered = dvc_json(experiment, "plots", "diff", "HEAD")["data"]
    assert sorted(rendered) == sorted(PLOTS), "a plot missing, or drawn twice"
    for name, renders in rendered.items():
        assert len(renders) == 1, name
        content = renders[0]["content"]
        assert content["title"]["text"] == PLOTS[name]["title"]
        assert sorted(renders[0]["revisions"]) == ["HEAD", "workspace"], name
        # the axes are titled in words, never by a column name such as "x" or "y"
        titles = axis_titles(content)
        assert titles == {PLOTS[name]["x_label"], PLOTS[name]["y_label"]}, (name, titles)
        if name in DENSITIES:
            assert {p["rev"] for p in content["data"]["values"]} == {"HEAD", "workspace"}
            continue
        # DVC tells the lines of a revision apart by dash: the file, or the column of one file
        dash = content["encoding"]["strokeDash"]["field"]
        lines = {(p["rev"], p[dash]) for p in content["data"]["values"]}
        if name in SCORES:
            assert dash == "filename", name
            assert len(lines) == 2 * SCORES[name], (name, lines)
        else:
            assert (dash, len(lines)) == ("field", 4), name  # actual and predicted


def axis_titles(spec) -> set[str]:
    """Every title of an x or y encoding in a rendered plot's Vega-Lite spec."""
    if isinstance(spec, list):
        return set().union(*(axis_titles(v) for v in spec))
    if not isinstance(spec, dict):
        return set()
    own = {
        v["title"]
        for k, v in spec.items()
        if k in ("x", "y") and isinstance(v, dict) and "title" in v
    }
    return own.union(*(axis_titles(v) for v in spec.values()))


@pytest.mark.browser
def test_cvm_plots_draws_both_revisions_offline_with_a_colour_per_line(experiment, tmp_path):
    """`cvm plots HEAD` (against the workspace, as `dvc plots diff HEAD`): every plot as SVG in
    one page with no script; it opens offline with no console message. The churn scores, told
    apart by DVC only by dash, get a colour each and the revisions the dashes."""
    from pipeline import plots

    out = tmp_path / "plots.html"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["cvm", "plots", "HEAD", "--out", str(out)],
        cwd=experiment,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.count("<svg") == len(PLOTS) and "<script" not in page
    assert (
        "<h1>Plots of HEAD, workspace</h1>" in page or "<h1>Plots of workspace, HEAD</h1>" in page
    )
    for spec in PLOTS.values():
        assert html.escape(spec["title"]) in page
    assert render(out, "plots_diff.png") == {"console": [], "fetched": []}
    roc = plots.distinguishable(
        dvc_json(experiment, "plots", "diff", "HEAD")["data"]["churn_roc"][0]["content"]
    )
    encoding = roc["encoding"]
    assert (
        encoding["color"]["field"] == "filename" and len(encoding["color"]["scale"]["domain"]) == 3
    )
    assert sorted(encoding["strokeDash"]["scale"]["domain"]) == ["HEAD", "workspace"]
