"""Import the big-data platform's daily tag drop.

Waits (rescheduling, not holding a worker slot) for `tags_YYYYMMDD.csv.gz` (or `.csv`)
of the run's day in the drop folder — Airflow Variable `touchwave_tag_drop_dir`, else
`TOUCHWAVE_TAG_DROP_DIR` — then imports it as the current tag snapshot. A drop that
breaks the catalog fails the task with the lines and columns at fault, and yesterday's
tags stay. A successful import updates the asset `touchwave://tags`, which starts
`touchwave_refresh_segments`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, PokeReturnValue, Variable, dag, task

from touchwave.config import Settings

TAGS = Asset("touchwave://tags")
#: the platform drops the file in the operator's morning, in the operator's time zone
TIMEZONE = Settings.from_env().timezone


@dag(
    schedule="0 6 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    tags=["touchwave"],
    doc_md=__doc__,
)
def touchwave_import_tags():
    @task.sensor(poke_interval=300, timeout=8 * 3600, mode="reschedule")
    def wait_for_drop(logical_date=None) -> PokeReturnValue:
        from touchwave.scheduled import drop_for

        folder = Variable.get("touchwave_tag_drop_dir", default=str(Settings.from_env().tag_drop_dir))
        path = drop_for(folder, logical_date.in_timezone(TIMEZONE).date())
        return PokeReturnValue(is_done=path is not None, xcom_value=str(path) if path else None)

    @task(outlets=[TAGS])
    def import_drop(path: str) -> dict:
        from touchwave.scheduled import import_tags

        return import_tags(Settings.from_env(), path)

    import_drop(wait_for_drop())


touchwave_import_tags()
