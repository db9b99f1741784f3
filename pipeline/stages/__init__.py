"""One module per DVC stage: a typed function of the settings, a catalog and a tracker that
reads, calls the pure core, writes and logs; and ``run(cfg)``, its entry point for DVC."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from pipeline import config, io, outputs, tracking
from pipeline.catalog import Catalog
from pipeline.tracking import Tracker

if TYPE_CHECKING:
    from models.btyd.season import Repeats


def inputs(cfg) -> tuple[config.Settings, Catalog, Tracker]:
    """The settings, the project's catalog (after finishing or removing what a killed run left)
    and the tracker of a stage run from ``params.yaml`` (its runs are children of the pipeline
    execution's run)."""
    settings = config.Settings(cfg)
    catalog = settings.catalog
    outputs.recover(catalog.state, catalog.directories())
    params = OmegaConf.to_container(cfg, resolve=True)
    return settings, catalog, tracking.pipeline_tracker(settings.tracking, params)


def repeats(settings: config.Settings, catalog: Catalog) -> Repeats:
    """The log's repeat purchases per period (the features stage's ``repeats``), from its
    first day: what a season is estimated from."""
    from models.btyd.season import Repeats  # PyMC: loaded by the stages that fit

    first_day = date.fromisoformat(io.read_json(catalog.features_report)["first_day"])
    table = io.read_parquet(catalog.features_repeats)
    return Repeats.from_table(table, first_day, settings.features.unit_days)
