"""NUTS on the CDNOW calibration summary and the convergence diagnostics."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from models.btyd import bgnbd
from models.btyd.inference import convergence_problems, fit_map, sample_posterior
from models.btyd.priors import Priors


@pytest.mark.slow
def test_bgnbd_nuts_converges_and_agrees_with_map(cdnow: pd.DataFrame) -> None:
    model = bgnbd.build_model(cdnow, Priors())
    point = fit_map(model, seed=0)
    start = time.perf_counter()
    idata = sample_posterior(model, draws=500, tune=500, chains=2, cores=2, seed=1)
    elapsed = time.perf_counter() - start
    problems = convergence_problems(idata, max_rhat=1.01, min_ess=400, max_divergences=0)
    assert problems == []
    post = idata["posterior"]
    for name in bgnbd.PARAM_NAMES:
        draws = np.asarray(post[name].values)
        assert draws.shape == (2, 500)
        # the posterior is right-skewed for the weakly identified a, b: compare on the
        # log scale, where the model is parameterised
        log_mean = np.log(draws).mean()
        assert np.exp(log_mean) == pytest.approx(point[name], rel=0.05), name
        assert draws.mean() == pytest.approx(point[name], rel=0.10), name
    assert elapsed < 120


@pytest.mark.slow
def test_too_short_chain_is_reported(cdnow: pd.DataFrame) -> None:
    model = bgnbd.build_model(cdnow, Priors())
    idata = sample_posterior(model, draws=30, tune=15, chains=2, cores=2, seed=3)
    problems = convergence_problems(idata)
    assert problems
    assert any(p.startswith("bulk ESS of ") and "(< 400)" in p for p in problems)


@pytest.mark.slow
def test_ctrl_c_while_sampling_is_an_interruption_not_a_failed_fit(cdnow: pd.DataFrame) -> None:
    """nutpie catches Ctrl-C and returns the draws made so far; a fit must not then report
    that too few draws did not converge ("sample longer"): the interruption goes on."""
    import signal
    import threading

    import nutpie  # noqa: F401  (imported before the timer starts: it takes seconds)

    model = bgnbd.build_model(cdnow, Priors())
    # Ctrl-C as Python handles it (a library of this process, Spark, may have installed its own)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    ctrl_c = threading.Timer(
        3.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt, match=r"sampling interrupted after \d+ of 10000000"):
            sample_posterior(model, draws=10_000_000, tune=1000, chains=2, cores=2, seed=1)
    finally:
        ctrl_c.cancel()
        signal.signal(signal.SIGINT, previous)
