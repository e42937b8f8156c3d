"""Runs touchwave's DAGs with `dag.test()` in a process of its own (Airflow sets up its
logging and ORM at import, which the test process should not inherit).

    python tests/airflow_runner.py DAGS_FOLDER [DAG_ID ...]

Prints one line `RESULT {json}`: import errors, the DAG ids found, and each run's state
and task states. Stops at the first run that does not succeed.
"""

from __future__ import annotations

import json
import sys


def main(folder: str, dag_ids: list[str]) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    result: dict = {"errors": {path: str(error) for path, error in bag.import_errors.items()},
                    "dags": sorted(bag.dag_ids), "runs": {}}
    for dag_id in dag_ids:
        run = bag.get_dag(dag_id).test()
        tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        result["runs"][dag_id] = {"state": str(run.state), "tasks": tasks}
        if str(run.state) != "success":
            break
    return result


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(sys.argv[1], sys.argv[2:])))
