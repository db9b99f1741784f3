"""The purchase models cvm has: the one registry of them.

Each name maps to the module and attribute of its :class:`~models.btyd.common.PurchaseModel`,
which carries everything the rest of cvm knows about the model (fitting, predictions,
covariates, simulation, the churn ceiling). Fitting, ``clv.model``, ``cvm simulate --model``,
the simulator and the churn ceiling all read this registry, so a new purchase model is its
module (exposing one ``PurchaseModel``), its line here, ``conf/clv/<name>.yaml`` and its tests.

The names are importable without importing the models (and PyMC): config validation and the
command line read them at start-up; :func:`purchase_model` imports a model's module when it is
first asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.btyd.common import PurchaseModel

# name -> (module, attribute of its PurchaseModel)
MODULES: dict[str, tuple[str, str]] = {
    "bgnbd": ("models.btyd.bgnbd", "BGNBD"),
    "bgnbd_weibull": ("models.btyd.bgnbd_weibull", "BGNBD_WEIBULL"),
    "mbgnbd": ("models.btyd.mbgnbd", "MBGNBD"),
    "mbgcnbd": ("models.btyd.mbgcnbd", "MBGCNBD"),
    "pareto_nbd": ("models.btyd.pareto_nbd", "PARETO_NBD"),
    "weibull_nbd": ("models.btyd.weibull_nbd", "WEIBULL_NBD"),
}
NAMES: tuple[str, ...] = tuple(MODULES)  # the allowed values of clv.model and cvm simulate --model
# the models whose lifetimes may wear out with age (a dropout that rises with it)
AGEING: tuple[str, ...] = ("weibull_nbd", "bgnbd_weibull")


def purchase_model(name: str, regularity: int = 0) -> PurchaseModel:
    """The purchase model called ``name``; at ``regularity`` ``k`` (Erlang-k times between
    purchases) for a model whose regularity is chosen in the fit (its module's
    ``at_regularity``), its registry default otherwise.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`NAMES`.
    """
    if name not in MODULES:
        raise ValueError(f"unknown purchase model {name!r}; expected one of {', '.join(NAMES)}")
    module, attribute = MODULES[name]
    if regularity:
        return import_module(module).at_regularity(regularity)
    return getattr(import_module(module), attribute)
