"""One module per DVC stage: a typed function of the settings, a catalog and a tracker that
reads, calls the pure core, writes and logs; and ``run(cfg)``, its entry point for DVC."""

from __future__ import annotations

from omegaconf import OmegaConf

from pipeline import config, outputs, tracking
from pipeline.catalog import Catalog
from pipeline.tracking import Tracker


def inputs(cfg) -> tuple[config.Settings, Catalog, Tracker]:
    """The settings, the project's catalog (after finishing or removing what a killed run left)
    and the tracker of a stage run from ``params.yaml`` (its runs are children of the pipeline
    execution's run)."""
    settings = config.Settings(cfg)
    catalog = settings.catalog
    outputs.recover(catalog.state, catalog.directories())
    params = OmegaConf.to_container(cfg, resolve=True)
    return settings, catalog, tracking.pipeline_tracker(settings.tracking, params)
