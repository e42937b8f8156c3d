"""The jobs Airflow schedules, as plain functions of touchwave's settings.

The DAG files in `dags/` stay thin: they resolve where things are (Airflow Variables
override touchwave's settings) and call these. Results are plain dicts for XCom.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import date
from pathlib import Path
from typing import Any

from temporalio.client import Client

from touchwave import cpc
from touchwave.audiences import refresh_segments, sync_campaigns
from touchwave.config import Settings
from touchwave.segments.snapshots import import_drop
from touchwave.store import Store


def drop_for(folder: str | Path, day: date) -> Path | None:
    """The day's drop in `folder`: tags_YYYYMMDD.csv.gz, or .csv; None while it has not arrived."""
    for name in (f"tags_{day:%Y%m%d}.csv.gz", f"tags_{day:%Y%m%d}.csv"):
        path = Path(folder) / name
        if path.is_file():
            return path
    return None


def import_tags(settings: Settings, path: str | Path) -> dict[str, Any]:
    store = Store.open(settings.database_url)
    try:
        report = import_drop(store.engine, path)
    finally:
        store.close()
    return {**dataclasses.asdict(report), "rows_per_second": round(report.rows_per_second)}


def refresh(settings: Settings, today: date | None = None) -> list[dict[str, Any]]:
    store = Store.open(settings.database_url)
    try:
        return [dataclasses.asdict(r) for r in refresh_segments(store, today)]
    finally:
        store.close()


def sync(settings: Settings, today: date | None = None) -> list[dict[str, Any]]:
    async def run(store: Store) -> list[dict[str, Any]]:
        client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
        return [dataclasses.asdict(s) for s in await sync_campaigns(store, client, today)]

    store = Store.open(settings.database_url)
    try:
        return asyncio.run(run(store))
    finally:
        store.close()


def refit_cpc(settings: Settings, force: bool = False) -> dict[str, Any]:
    """Refit the CPC model when it is due: never fitted, not fitted today (in the
    operator's time zone), or a campaign finished or was cancelled since the last fit."""
    store = Store.open(settings.database_url)
    try:
        due = force or cpc.refit_due(store.engine, settings.timezone)
        if not due:
            return {"refitted": False, "reason": "no campaign ended since the last fit, and it is from today"}
        return {"refitted": True, "reason": due if isinstance(due, str) else "forced",
                **dataclasses.asdict(cpc.fit(store.engine))}
    finally:
        store.close()
