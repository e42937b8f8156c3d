"""Bring running campaigns' audiences up to date after the segments were refreshed.

Scheduled on the asset `touchwave://segments`. For each running or paused campaign, the
subscribers its segment (or inline rule) selects now and who are not members join as a
new cohort, which the campaign's workflow — told by one `cohort_added` signal per
campaign — runs from the plan's first step; members who left are stopped or finish, as
the template's `on_leave` says. Temporal is at `TOUCHWAVE_TEMPORAL_ADDRESS`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

SEGMENTS = Asset("touchwave://segments")


@dag(
    schedule=[SEGMENTS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["touchwave"],
    doc_md=__doc__,
)
def touchwave_sync_audiences():
    @task
    def sync_running_campaigns() -> list[dict]:
        from touchwave.config import Settings
        from touchwave.scheduled import sync

        return sync(Settings.from_env())

    sync_running_campaigns()


touchwave_sync_audiences()
