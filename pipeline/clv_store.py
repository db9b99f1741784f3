"""Fitted CLV models on disk: one directory per model, its file names owned here.

The directory holds the purchase posterior and, unless the pair is purchase-only, the spend
posterior, as ArviZ netCDF; the model kind, settings and MAP point travel in the files'
attributes and are read back from them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import CvmError

FILES = {"purchase": "transactions.nc", "spend": "spend.nc"}


def save(model, directory: Path) -> None:
    """Write a :class:`models.btyd.clv.FittedClv` into ``directory`` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    for part, tree in model.to_trees().items():
        for node in tree.subtree:
            node.attrs.pop("created_at", None)  # the same fit, the same bytes
        tree.to_netcdf(directory / FILES[part])


def load(directory: Path):
    """The :class:`models.btyd.clv.FittedClv` in ``directory``; a :class:`CvmError` naming the
    file and what to re-run when it is missing or unreadable."""
    import xarray as xr

    from models.btyd.clv import FittedClv

    purchase = directory / FILES["purchase"]
    spend = directory / FILES["spend"]
    try:
        trees = [xr.load_datatree(p) if p.is_file() else None for p in (purchase, spend)]
        if trees[0] is None:
            raise FileNotFoundError(f"{purchase} not found")
        return FittedClv.from_trees(*trees)
    except Exception as err:  # truncated or foreign files fail in many ways inside netCDF
        raise CvmError(
            f"{directory}: not a readable CLV model ({err}); run the fit_clv stage again"
        ) from None
