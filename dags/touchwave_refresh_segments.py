"""Recompute every segment a live campaign targets, after each tag import.

Scheduled on the asset `touchwave://tags` (updated by `touchwave_import_tags`); each
refresh records who joined and who left. Updates `touchwave://segments`, which starts
`touchwave_sync_audiences`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

TAGS = Asset("touchwave://tags")
SEGMENTS = Asset("touchwave://segments")


@dag(
    schedule=[TAGS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["touchwave"],
    doc_md=__doc__,
)
def touchwave_refresh_segments():
    @task(outlets=[SEGMENTS])
    def refresh_segments_in_use() -> list[dict]:
        from touchwave.config import Settings
        from touchwave.scheduled import refresh

        return refresh(Settings.from_env())

    refresh_segments_in_use()


touchwave_refresh_segments()
