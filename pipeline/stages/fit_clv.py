"""fit_clv: CLV posteriors for evaluation (calibration summary) and scoring (all history)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline import config, io, registry, tracking
from pipeline.errors import CvmError

FITS = ("calibration", "scoring")
log = logging.getLogger(__name__)


def run(cfg) -> dict:
    """Fit both model pairs, write their posteriors and a fit report, register the scoring pair."""
    from models.clv import ConvergenceError, fit_clv

    settings = config.clv_settings(cfg)
    paths = config.get(cfg, "paths")
    features_dir, out = Path(paths["features_dir"]), Path(paths["clv_dir"])
    tables = {name: io.read_parquet(features_dir / f"{name}.parquet") for name in FITS}
    report: dict = {"model": settings.model, "method": settings.method}
    fits = {}
    for name, table in tables.items():
        log.info("fit_clv: fitting the %s pair on %d customers", name, len(table))
        try:
            fit = fits[name] = fit_clv(table, settings)
        except ConvergenceError as err:
            raise CvmError(
                f"fit_clv ({name} fit): {err}. Sample longer (clv.sampler.draws/tune) or set "
                "clv.convergence.on_failure=warn"
            ) from None
        for problem in fit.problems:
            log.warning("fit_clv (%s): %s", name, problem)
    # written only once both pairs are fitted: a failed fit leaves the previous posteriors
    for name, fit in fits.items():
        for tree in (fit.transactions, fit.spend):
            tree.attrs["cvm_clv_config"] = json.dumps(config.get(cfg, "clv"))
            tree.attrs["cvm_fit"] = name
        io.write_netcdf(fit.transactions, out / name / "transactions.nc")
        io.write_netcdf(fit.spend, out / name / "spend.nc")
        report[name] = {
            "map": fit.map_point,
            "seconds": fit.seconds,
            "counts": fit.counts,
            "diagnostics": fit.diagnostics,
            "convergence_problems": fit.problems,
            "model_id": io.content_id(out / name),
        }
    with tracking.stage_run(config.get(cfg, "tracking"), "fit_clv", config.get(cfg, "clv")):
        tracking.log_metrics(
            {
                f"{name}.{group}.{key}": value
                for name in FITS
                for group in ("map", "seconds", "diagnostics")
                for key, value in report[name][group].items()
            }
        )
        tracking.log_artifacts(out, "clv")
        report["scoring"]["registry_version"] = registry.register_clv(
            fits["scoring"], out / "scoring", tables["scoring"].head(5), config.get(cfg, "tracking")
        )
        tracking.log_dict(report, "fit_report.json")
    io.write_json(report, out / "fit_report.json")
    return report
