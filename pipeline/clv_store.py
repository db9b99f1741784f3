"""Fitted CLV pairs read by the pipeline: :meth:`models.btyd.clv.FittedClv.load`, with a
failure turned into a :class:`CvmError` that says what to re-run (a pair saves itself:
:meth:`~models.btyd.clv.FittedClv.save`)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import CvmError

# models.btyd.clv loads PyMC: imported where a pair is read, not when the CLI starts


def load(directory: Path):
    """The :class:`models.btyd.clv.FittedClv` in ``directory``; a :class:`CvmError` naming it
    and what to re-run when it is missing or unreadable."""
    from models.btyd.clv import FittedClv

    try:
        return FittedClv.load(directory)
    except Exception as err:  # truncated or foreign files fail in many ways inside netCDF
        raise CvmError(
            f"{directory}: not a readable CLV model ({err}); run the fit_clv stage again"
        ) from None
