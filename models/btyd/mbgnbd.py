"""MBG/NBD model (Batislam, Denizel & Filiztekin 2007, "Empirical validation and comparison of
models for customer base analysis").

BG/NBD with one change: the customer may also drop out right after the first purchase, with the
same probability ``p ~ Beta(a, b)`` as after every repeat purchase. A one-time buyer can then be
dead (BG/NBD keeps every one-time buyer alive, P(alive) = 1), which matters on logs where many
customers buy once. The formulas are BG/NBD's with ``x + 1`` dropout coin flips
(:mod:`models.btyd.bgnbd`, ``modified=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np
from numpy.typing import ArrayLike

from models.btyd import bgnbd
from models.btyd.common import FactoredLoglik, PurchaseModel

PARAM_NAMES = bgnbd.PARAM_NAMES


def draw_dropout(
    params: Mapping[str, float], n: int, rng: np.random.Generator, shift: ArrayLike = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``n`` customers' dropout probability ``p ~ Beta(a, b exp(-shift))`` and
    lifetime: 0 for those who drop out right after the first purchase (probability ``p``),
    none otherwise (later dropouts follow repeat purchases)."""
    dropout, lifetime = bgnbd.draw_dropout(params, n, rng, shift)
    return dropout, np.where(rng.random(n) < dropout, 0.0, lifetime)


MBGNBD = PurchaseModel(
    name="mbgnbd",
    param_names=PARAM_NAMES,
    build=partial(bgnbd.build_model, modified=True),
    p_alive=partial(bgnbd.p_alive, modified=True),
    expected_purchases=partial(bgnbd.expected_purchases, modified=True),
    expected_purchases_if_alive=partial(bgnbd.expected_purchases_if_alive, modified=True),
    p_no_purchase_if_alive=bgnbd.p_no_purchase_if_alive,  # alive: exp(-lambda t), as BG/NBD
    scaled=("alpha", "b"),
    loglik_rows=partial(bgnbd.loglik_rows_pytensor, modified=True),
    factored=FactoredLoglik(
        partial(bgnbd.factor, modified=True), partial(bgnbd.loglik_and_grad, modified=True)
    ),
    # BTYDplus's MBG/NBD estimates on the CDNOW sample (weeks)
    simulation_params=(("r", 0.525), ("alpha", 6.183), ("a", 0.891), ("b", 1.614)),
    draw_dropout=draw_dropout,
    drop_after_purchase=bgnbd.drop_after_purchase,
    lifetime=None,
    purchase_dropout=partial(bgnbd.purchase_dropout, modified=True),
)
