"""Refit the CPC model (customer–channel, customer–product, product–channel) from the
contact ledger and the answers: every morning, and within the hour after a campaign
finishes or is cancelled (the hourly run refits only when one has since the last fit).

Best-channel splits of campaigns starting afterwards route by the new fit.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Asset, dag, task

CPC = Asset("touchwave://cpc")


@dag(
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["touchwave"],
    doc_md=__doc__,
)
def touchwave_refresh_cpc():
    @task(outlets=[CPC])
    def refit_cpc_model() -> dict:
        from touchwave.config import Settings
        from touchwave.scheduled import refit_cpc

        return refit_cpc(Settings.from_env())

    refit_cpc_model()


touchwave_refresh_cpc()
