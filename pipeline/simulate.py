"""`cvm simulate`: write a synthetic transaction log with its known truth."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pydantic import ValidationError

from pipeline import config_check, io
from pipeline.errors import CvmError


def parse_covariate(text: str) -> tuple[str, float, float]:
    """``name:rate_effect:dropout_effect`` → a covariate effect tuple."""
    try:
        name, rate, dropout = text.split(":")
        return name, float(rate), float(dropout)
    except ValueError:
        raise CvmError(
            f"--covariate {text!r}: expected name:rate_effect:dropout_effect, e.g. vip:0.5:-0.3"
        ) from None


def run(out: Path, with_amounts: bool = True, **settings) -> dict:
    """Simulate and write ``transactions.parquet``, ``customers.parquet`` and ``truth.json``;
    ``with_amounts=False`` leaves the spend out of the log (an event log)."""
    from models.simulate import SimulationSettings, simulate_log

    try:
        spec = SimulationSettings(**settings)
    except ValidationError as err:
        problems = config_check.explain(err, SimulationSettings, settings)
        raise CvmError(f"cvm simulate: {'; '.join(problems)}") from None
    transactions, customers = simulate_log(spec)
    if not with_amounts:
        transactions = transactions.drop(columns=["amount"])
    io.write_parquet(transactions, out / "transactions.parquet")
    io.write_parquet(customers, out / "customers.parquet")
    truth = asdict(spec) | {
        "params": dict(spec.population),
        "spend": dict(spec.spend),
        "transactions": len(transactions),
        "alive_share": float(customers.alive.mean()),
    }
    io.write_json(truth, out / "truth.json")
    return truth
