"""cvm on Airflow: the weekly retraining and the daily scoring of one project, as two DAGs.

Copy this file into the DAGs folder of an Airflow 2.7+ or 3 installation on the machine that
holds the project, and set ``CVM_PROJECT`` (default ``/srv/cvm``) in the scheduler's
environment. Each task runs the project's own ``cvm`` (its ``.venv``), which holds the project's
lock, so a scoring that starts while a retraining runs waits for it (``--wait``).

Exit codes (docs/operations.md): 3 (nothing to do) shows the task as skipped; 4 (promotion
refused, champions kept, table re-scored) counts as success; 2 (bad config or broken feed) and
5 (another run still holds the lock after the wait) fail the task. A health check outside
Airflow runs ``cvm status`` (docs/operations.md).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

PROJECT = os.environ.get("CVM_PROJECT", "/srv/cvm")
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "PYTENSOR_FLAGS": "blas__ldflags="}
# the day before the end of the run's data interval: the last full day of data
AS_OF = "{{ macros.ds_add(data_interval_end | ds, -1) }}"
CVM = 'cd "$CVM_PROJECT" && .venv/bin/cvm'
RETRAIN = (
    f"{CVM} retrain --as-of {AS_OF} --wait 3600 --quiet --log-file logs/retrain.log; "
    'code=$?; [ "$code" -eq 4 ] && exit 0; exit "$code"'
)
SCORE = f"{CVM} score --as-of {AS_OF} --wait 7200 --quiet --log-file logs/score.log"
SCHEDULES = {"cvm_retrain": "0 3 * * 1", "cvm_score": "0 6 * * *"}


def _dag(dag_id: str, command: str, task_id: str) -> DAG:
    with DAG(
        dag_id,
        schedule=SCHEDULES[dag_id],
        start_date=datetime(2026, 1, 5),
        catchup=False,
        max_active_runs=1,
        tags=["cvm"],
    ) as dag:
        BashOperator(
            task_id=task_id,
            bash_command=command,
            env=ENV | {"CVM_PROJECT": PROJECT},
            append_env=True,
            skip_on_exit_code=[3],
        )
    return dag


retrain_dag = _dag("cvm_retrain", RETRAIN, "retrain")
score_dag = _dag("cvm_score", SCORE, "score")
