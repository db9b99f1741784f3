"""Outputs are written whole or not at all."""

import json

import pandas as pd
import pytest

from pipeline import io
from pipeline.publication import write_table


def test_an_interrupted_export_leaves_the_previous_table(tmp_path, monkeypatch):
    base = tmp_path / "scored" / "customers"
    old = pd.DataFrame({"customer_id": ["a", "b"], "clv": [1.0, 2.0]})
    state = tmp_path / "state"
    write_table(old, base, state)
    new = pd.DataFrame({"customer_id": ["c"], "clv": [3.0]})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_table(new, base, state)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_parquet(base.with_suffix(".parquet")), old)
    assert pd.read_csv(base.with_suffix(".csv")).customer_id.tolist() == ["a", "b"]
    assert json.loads(base.with_suffix(".schema.json").read_text())["rows"] == 2
    assert sorted(p.name for p in base.parent.iterdir()) == [
        "customers.csv",
        "customers.parquet",
        "customers.schema.json",
    ]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    io.write_json({"a": 1}, target)

    def fail(tmp):
        tmp.write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        io.write_atomic(target, fail)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_reports_are_valid_json_without_nan(tmp_path):
    target = tmp_path / "report.json"
    io.write_json({"r_hat": float("nan"), "ess": [1.0, float("inf")], "ok": 2.5}, target)
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"r_hat": None, "ess": [1.0, None], "ok": 2.5}


def test_a_report_s_metrics_are_its_numbers_alone(tmp_path):
    from pipeline.io import write_report

    report = {
        "rows": 12,
        "share": 0.25,
        "as_of": "2024-06-30",
        "model_id": "1c17ffccd29a",
        "beats": True,
        "cutoffs": ["2024-01-31"],
        "largest": None,
        "nothing": float("nan"),
        "fit": {"model": "bgnbd", "loglik": -95.5, "season": []},
        "texts": {"rule": "the simpler model within noise"},
    }
    write_report(report, tmp_path / "report.json", tmp_path / "metrics.json")
    assert json.loads((tmp_path / "report.json").read_text())["model_id"] == "1c17ffccd29a"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics == {"rows": 12, "share": 0.25, "beats": 1, "fit": {"loglik": -95.5}}
