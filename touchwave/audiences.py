"""Keeping running campaigns' audiences current after the tags change.

What the Airflow DAGs (and `touchwave segment refresh` / `touchwave campaign sync`) call:
refresh every segment a live campaign targets, then sync each running campaign — its
joiners become a new cohort, told to the workflow in one `cohort_added` signal per
campaign, never one per member.
"""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError

from touchwave import campaigns
from touchwave.errors import UserError
from touchwave.segments import named
from touchwave.store import Store
from touchwave.store.models import Campaign, CampaignStatus
from workflows.campaign import CampaignWorkflow

log = logging.getLogger(__name__)


def refresh_segments(store: Store, today: date | None = None) -> list[named.Refresh]:
    """Recompute every segment a live campaign targets, recording who joined and who left."""
    refreshes = [named.refresh(store.engine, name, today) for name in named.in_use(store.engine)]
    for r in refreshes:
        log.info("segment refreshed", extra={"segment": r.segment, "version": r.version, "members": r.members,
                                             "joined": r.joined, "left": r.left, "seconds": round(r.seconds, 2)})
    return refreshes


async def tell_workflow(client: Client, sync: campaigns.Sync) -> None:
    """One signal per campaign, naming its newest cohort: the workflow opens every cohort
    up to it that it has not opened, so a signal lost earlier is made good now."""
    if sync.latest_cohort:
        handle = client.get_workflow_handle(campaigns.workflow_id(sync.campaign_id))
        await handle.signal(CampaignWorkflow.cohort_added, sync.latest_cohort)


async def sync_campaigns(store: Store, client: Client, today: date | None = None) -> list[campaigns.Sync]:
    """Sync every running or paused campaign with its audience and signal each workflow
    that gained a cohort. A workflow that cannot be told is reported after the others
    were synced (the members are stored; the campaign needs looking at)."""
    with store.engine.connect() as conn:
        ids = list(conn.execute(select(Campaign.id).where(
            Campaign.status.in_((CampaignStatus.RUNNING, CampaignStatus.PAUSED))).order_by(Campaign.id)).scalars())
    synced, unreachable = [], []
    for campaign_id in ids:
        if campaigns.get(store, campaign_id).plan.trigger:
            continue  # events enter an event-triggered campaign's members
        sync = campaigns.sync(store, campaign_id, today)
        synced.append(sync)
        log.info("campaign audience synced", extra={"campaign": campaign_id, "cohort": sync.cohort,
                                                    "joined": sync.joined, "left": sync.left})
        try:
            await tell_workflow(client, sync)
        except RPCError as exc:
            unreachable.append(f"campaign {campaign_id} (cohort {sync.cohort}): {exc.message}")
    if unreachable:
        raise UserError("new members were stored but these workflows could not be told: " + "; ".join(unreachable))
    return synced
