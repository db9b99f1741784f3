"""`cvm simulate` writes a log the pipeline ingests, with the truth beside it."""

import json

import pandas as pd

from pipeline.cli import main


def test_simulate_writes_log_customers_and_truth(tmp_path, capsys):
    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--customers", "3000", "--seed", "9"]
    assert main([*args, "--covariate", "vip:0.5:-0.2"]) == 0
    transactions = pd.read_parquet(out / "transactions.parquet")
    customers = pd.read_parquet(out / "customers.parquet")
    truth = json.loads((out / "truth.json").read_text())
    assert customers.customer_id.nunique() == 3000 == transactions.customer_id.nunique()
    assert truth["transactions"] == len(transactions)
    assert truth["params"] == {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert "vip" in customers.columns
    assert "3000 customers" in capsys.readouterr().out.replace(",", "")


def test_bad_simulation_arguments_are_named(tmp_path, capsys):
    assert main(["simulate", "--out", str(tmp_path), "--covariate", "vip"]) == 2
    assert "--covariate 'vip'" in capsys.readouterr().err
    assert main(["simulate", "--out", str(tmp_path), "--params", "r=1,alpha=2"]) == 2
    assert "needs parameters" in capsys.readouterr().err
