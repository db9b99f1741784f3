"""`cvm retrain`: the scheduled run. Fit a challenger on the log as of a date, compare it with the
champion on the most recent labelled window, promote it if it is not worse, re-score everyone.

One run, in order (every stage writes into a staging catalog; nothing the project or a
downstream team reads changes before the last step):

1. take the lock; stop with "nothing to do" if this as-of date, log (content hash) and config
   were already processed (:mod:`.feed`);
2. snapshot and ingest the log; a broken feed stops the run: too many quarantined rows, a log
   that ends long before the as-of date, or one that lost rows the champion was trained on;
3. cut the clean log at the as-of date and build the feature tables with the calibration
   cutoff at as-of minus the churn horizon: the window after it is the most recent one whose
   churn labels are complete;
4. drift: population stability of the key features and of the champion's scores, today against
   the champion's training data (:mod:`.compare`);
5. fit the challenger: an evaluation pair up to the calibration cutoff, a production pair on
   everything up to the as-of date, registered (:mod:`.challenger`);
6. evaluate the challenger's and the champion's evaluation pairs on that window and decide;
7. score every customer with the models that are champions after the decision; then move the
   registry aliases and publish the scored table, together (:mod:`.publish`).

Every run is one MLflow run ``retrain`` whose children are the stage runs, and a summary JSON
(:mod:`.record`). Each registered version carries its *release*: the artifacts of the run that
fit it (both pairs) and the profile of its training data, which later runs compare against.
"""

from __future__ import annotations

import shutil
import traceback
from datetime import date
from pathlib import Path

from models.scoring import value_totals
from pipeline import config, io, lock, outputs, publication, registry, staging
from pipeline.errors import CvmError
from pipeline.retrain import challenger, compare, feed, publish
from pipeline.retrain.record import (
    EXIT_ERROR,
    EXIT_LOCKED,
    EXIT_NOTHING_TO_DO,
    EXIT_REFUSED,
    EXIT_REJECTED,
    EXIT_SUCCESS,
    RetrainRun,
    now,
)
from pipeline.stops import exit_code

__all__ = ["EXIT_ERROR", "EXIT_LOCKED", "EXIT_NOTHING_TO_DO", "EXIT_REFUSED", "EXIT_SUCCESS", "run"]


def run(
    cfg, log_path: Path | None = None, as_of: date | None = None, wait: float = 0.0
) -> tuple[int, dict]:
    """One retraining run; returns the exit code and the run summary.

    Raises :class:`pipeline.lock.LockHeld` when another run holds the lock and
    :class:`CvmError` for an unusable ``retrain`` config; every other failure is recorded in the
    summary and MLflow and returned as its exit code.
    """
    retrain = staging.RetrainSettings.from_cfg(cfg)
    settings = config.Settings(cfg)
    source = Path(log_path or settings.source)
    with lock.exclusive(retrain.lock_file, "cvm retrain", wait):
        # the published table's folder too: a killed publication leaves its temporaries there
        published = settings.catalog.directories() | {retrain.scored.parent}
        outputs.recover(settings.catalog.state, published)
        publication.recover(settings.catalog.state, registry.connect(settings.tracking))
        state = RetrainRun(
            settings=settings,
            retrain=retrain,
            config_sha=staging.config_sha256(cfg),
            source=source,
            as_of_requested=as_of,
            names=registry.model_names(settings.tracking),
            root=retrain.work_dir / "staging",
            summary={
                "command": "cvm retrain",
                "started": now(),
                "as_of_requested": as_of.isoformat() if as_of else None,
                "log": {"path": str(source)},
            },
        )
        return execute(state), state.summary


def execute(state: RetrainRun) -> int:
    """Run the steps; a failure is recorded and turned into its exit code."""
    try:
        if feed.already_done(state):
            return EXIT_NOTHING_TO_DO
        state.start_tracking(state.summary["log"]["sha256"])
        return retrain(state)
    except CvmError as err:
        return state.failed(err, EXIT_REJECTED)
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: 130, 143
        return state.failed(err, exit_code(err))
    except Exception as err:
        return state.failed(err, EXIT_ERROR, traceback.format_exc())


def retrain(state: RetrainRun) -> int:
    shutil.rmtree(state.root, ignore_errors=True)
    checked = feed.ingest_and_check(state)
    champion = compare.find_champion(state, checked.as_of)
    if champion:
        feed.check_history(state, checked, champion)
    current = feed.build_features(state, checked)

    state.begin("drift")
    champion_table = None
    if champion:
        champion_table = publish.score_with(state, current, champion["versions"], checked.as_of)
    drift = compare.drift(state, champion, current, champion_table, checked.as_of)

    challenger.fit_challenger(state, checked)
    challenger_eval, champion_eval = compare.evaluate_both(state, checked, champion)
    promoted = compare.decide(state, champion, challenger_eval, champion_eval, drift)["promoted"]

    state.begin("score")
    winners = state.challenger if promoted else champion["versions"]
    table = (
        publish.score_with(state, current, winners, checked.as_of) if promoted else champion_table
    )
    labels = {f"{k}_model": f"{state.names[k]}/{winners[k]}" for k in registry.KINDS}
    publication.check_table(table, len(current), labels)
    publish.log_release(state, checked, current, table if promoted else None)
    publish.publish(state, table, promoted)
    scored = state.retrain.scored.with_suffix(".parquet")
    state.summary["champion_after"] = dict(winners)
    state.summary["scored"] = {
        "path": str(scored),
        "rows": len(table),
        "sha256": io.file_sha256(scored),
        **labels,
        **value_totals(table),
    }
    code = EXIT_SUCCESS if promoted else EXIT_REFUSED
    state.summary |= {"status": "promoted" if promoted else "kept", "exit_code": code}
    state.finish(code)
    shutil.rmtree(state.root / "log", ignore_errors=True)  # the snapshot; the rest stays
    return code
