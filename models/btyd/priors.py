"""Prior specification shared by the CLV models."""

from __future__ import annotations

from typing import Annotated, Literal

from models.settings import NOT_CONFIG, Number, PositiveNumber, settings

PriorKind = Literal["weakly_informative", "flat"]


@settings
class Priors:
    """Priors on the positive model parameters.

    Parameters
    ----------
    kind : {"weakly_informative", "flat"}
        ``"weakly_informative"``: every positive parameter ``theta`` is log-normal,
        ``log(theta) ~ Normal(log_mu, log_sigma)``;
        with the default ``sigma = 2.5`` the central 95% spans about ``exp(+-5)`` which covers
        every published CDNOW value in weeks and dollars while ruling out absurd scales.
        ``"flat"``: flat prior on every ``log(theta)``, so the MAP is the maximum-likelihood
        estimate; use it to reproduce published fits (the posterior may be improper: do not
        sample it).
    log_mu, log_sigma : float
        Location and scale of the log-normal priors.
    overrides : tuple of (name, log_mu, log_sigma)
        Per-parameter log-normal settings that replace the defaults (``weakly_informative`` only).
    """

    kind: PriorKind = "weakly_informative"
    log_mu: Number = 0.0
    log_sigma: PositiveNumber = 2.5
    overrides: Annotated[tuple[tuple[str, float, float], ...], NOT_CONFIG] = ()

    def positive(self, name: str):
        """Create the positive parameter ``name`` inside the current ``pm.Model`` context.

        The free variable is ``log_<name>`` (``Flat`` or ``Normal(log_mu, log_sigma)``) and
        ``name = exp(log_<name>)`` is a ``Deterministic``. Parameterising on the log scale
        without a transform means the MAP is the posterior mode of the log-parameters, so the
        flat-prior MAP is exactly the maximum-likelihood estimate and the weakly informative
        MAP is not pulled towards zero by a ``1/theta`` density factor.
        """
        import pymc as pm  # the settings are read where PyMC is not needed
        import pytensor.tensor as pt

        if self.kind == "flat":
            log_theta = pm.Flat(f"log_{name}")
        else:
            mu, sigma = self.normal(name)
            log_theta = pm.Normal(f"log_{name}", mu=mu, sigma=sigma)
        return pm.Deterministic(name, pt.exp(log_theta))

    def normal(self, name: str) -> tuple[float, float]:
        """``(mu, sigma)`` of the normal prior on ``log(name)`` (``weakly_informative``)."""
        for o_name, o_mu, o_sigma in self.overrides:
            if o_name == name:
                return o_mu, o_sigma
        return self.log_mu, self.log_sigma
