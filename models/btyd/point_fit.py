"""A purchase model of the family at its MAP point, on its clock, as plain data.

What a churn prior keeps of a fit (:mod:`models.churn.level`) and travels with the churn model
into the registered scorer: the model's name and regularity, its parameters and its yearly
season (none: ``a = b = 0``, the calendar's clock). It gives each customer's P(no purchase) in
a window of days after their own cutoff, from the customer's dates alone
(:data:`SUMMARY_COLUMNS`), so a stacked table of several cutoffs is scored in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.btyd.family import purchase_model
from models.btyd.season import Customers, Season

if TYPE_CHECKING:
    from models.btyd.clv import FittedClv

SUMMARY_COLUMNS = ("cutoff", "frequency", "tenure_days", "recency_days")  # what it reads
CHUNK = 100_000  # customers per pass: bounded memory


@dataclass(frozen=True)
class PointFit:
    """``model`` (a family name) at ``regularity`` (0: its default) with ``params``, on the
    clock of ``season`` (``a = b = 0``: the calendar's, in its ``unit_days``)."""

    model: str
    regularity: int
    params: dict[str, float]
    season: Season

    @classmethod
    def of(cls, fit: FittedClv, unit_days: float) -> PointFit:
        """A fit without covariates at its MAP point; ``unit_days``: its summaries' unit."""
        season = fit.season or Season(0.0, 0.0, float(unit_days))
        return cls(fit.purchase.name, fit.purchase.regularity, fit.point, season)

    @property
    def seasonal(self) -> bool:
        return self.season.amplitude > 0

    def p_no_purchase(self, frame: pd.DataFrame, horizon_days: float) -> np.ndarray:
        """Each row's P(no purchase in the ``horizon_days`` after its own ``cutoff``)."""
        c, season = Customers.from_table(frame), self.season
        t_x, T = c.on_clock(season.a, season.b, season.unit_days)
        horizon = season.clock(c.cutoff + horizon_days) - season.clock(c.cutoff)
        model = purchase_model(self.model, self.regularity)
        out = np.empty(len(c.x))
        for part in (slice(i, i + CHUNK) for i in range(0, len(c.x), CHUNK)):
            with np.errstate(all="ignore"):
                p = model.p_no_purchase(self.params, *(v[part] for v in (horizon, c.x, t_x, T)))
            out[part] = np.clip(p, 0, 1)
        return out

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "regularity": self.regularity,
            "params": dict(self.params),
            "season": self.season.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> PointFit:
        params = {k: float(v) for k, v in d["params"].items()}
        return cls(d["model"], int(d["regularity"]), params, Season.from_dict(d["season"]))
