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
