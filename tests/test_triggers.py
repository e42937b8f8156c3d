"""Event-triggered campaigns end to end on the time-skipping server: an event's first
contact at once, the rest of the flowchart on the customer's own clock, contact policy
before the first contact, pause and resume, and a storm of events with nothing lost."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from touchwave import campaigns
from touchwave.events.ingest import ingest
from touchwave.policy import dnd
from touchwave.responses import record_response
from touchwave.store.models import Outcome
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from touchwave.temporal import register_search_attributes, start_campaign
from touchwave.worker import build_worker
from workflows.trigger import TriggerWorkflow

from .test_events import event, trigger_campaign
from .test_waves import adapters, ledger, sim, until  # noqa: F401 (fixture)
from .test_worker_crash import dev_server  # noqa: F401 (fixture)

USAGE = {"percent": 85, "plan_quota_mb": 20480}


class TriggerRun:
    """A worker and the trigger campaign's workflow; on exit the campaign is cancelled and
    its workflow closed before the worker stops (a task left on the test server's queue
    would stop it skipping time for the rest of the session)."""

    def __init__(self, temporal, store, sim, campaign) -> None:
        self.temporal, self.store, self.campaign = temporal, store, campaign
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
        self.worker = build_worker(temporal.client, store.engine, adapters(sim), task_queue=self.queue, batch_size=50)

    async def __aenter__(self) -> TriggerRun:
        await self.worker.__aenter__()
        self.handle = await start_campaign(self.temporal.client, self.campaign, self.queue,
                                           workflow_id=f"{self.campaign.workflow_id}-{uuid.uuid4().hex[:6]}",
                                           look_every_seconds=86_400, idle_seconds=0)
        return self

    async def events(self, batch: list[dict]):
        """Ingest as the API does, and tell the workflow as its notifier would."""
        result = ingest(self.store.engine, batch)
        if result.entered:
            await self.handle.signal(TriggerWorkflow.entries_added, {"entered": sum(result.entered.values())})
        return result

    async def __aexit__(self, *exc) -> None:
        try:
            await self.handle.signal(TriggerWorkflow.cancel)
            await asyncio.wait_for(self.handle.result(), 30)
        finally:
            await self.worker.__aexit__(*exc)


def sent(store, campaign_id: int, step: str, numbers: list[str], status: str = "sent"):
    def check() -> bool:
        statuses = ledger(store, campaign_id).get(step, {})
        return all(statuses.get(n) == status for n in numbers)
    return check


async def test_an_event_is_answered_at_once_and_the_flowchart_goes_on_on_the_customers_clock(temporal, store, sim):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json")
    first, later, blocked = admitted[:3], admitted[3:5], admitted[5]
    dnd.add(store.engine, [dnd.entry(blocked, "global", "customer_request")], "test")
    async with TriggerRun(temporal, store, sim, campaign) as run:
        entered = await run.events([event("data_usage_threshold", n, USAGE) for n in [*first, blocked]])
        assert entered.entered == {campaign.id: 4}
        await until(sent(store, campaign.id, "addon_sms", first))
        await until(sent(store, campaign.id, "hotline_offer", first, status="open"))
        steps = ledger(store, campaign.id)
        # do-not-disturb: suppressed before the first contact, recorded with its reason
        assert steps["addon_sms"][blocked] == "suppressed" and blocked not in sim.sms_sent
        record_response(store.engine, campaign.id, first[0], Outcome.ACCEPTED, "hotline", agent="10086-1")

        await temporal.sleep(timedelta(hours=20))
        await run.events([event("data_usage_threshold", n, USAGE) for n in later])
        await until(sent(store, campaign.id, "addon_sms", later))
        # two days after their own event, the first three are called: not the one who accepted
        await temporal.sleep(timedelta(hours=30))
        await until(sent(store, campaign.id, "addon_call", first[1:]))
        called = {t.msisdn for t in sim.tasks.values()}
        assert called == set(first[1:])
        # the later two are called two days after theirs
        await temporal.sleep(timedelta(hours=20))
        await until(sent(store, campaign.id, "addon_call", later))
        assert {t.msisdn for t in sim.tasks.values()} == set(first[1:] + later)
        progress = await run.handle.query(TriggerWorkflow.status)
        assert progress.steps["addon_sms"].sent == 5 and progress.steps["addon_sms"].reasons == {"dnd": 1}
    assert sim.sms_sent == dict.fromkeys(first + later, 1)
    assert campaigns.get(store, campaign.id).status == "cancelled"


async def test_a_paused_trigger_campaign_stops_acting_and_resumes(temporal, store, sim):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json")
    async with TriggerRun(temporal, store, sim, campaign) as run:
        await run.events([event("data_usage_threshold", admitted[0], USAGE)])
        await until(sent(store, campaign.id, "addon_sms", admitted[:1]))
        await run.handle.signal(TriggerWorkflow.pause)
        await until(lambda: campaigns.get(store, campaign.id).status == "paused")
        while_paused = await run.events([event("data_usage_threshold", admitted[1], USAGE)])
        assert while_paused.accepted == 1 and while_paused.entered == {}
        # nobody is called while paused, even when their wait is over
        await temporal.sleep(timedelta(days=2, hours=1))
        await asyncio.sleep(0.5)
        assert not sim.tasks
        await run.handle.signal(TriggerWorkflow.resume)
        await until(sent(store, campaign.id, "addon_call", admitted[:1]))
        await run.events([event("data_usage_threshold", admitted[2], USAGE)])
        await until(sent(store, campaign.id, "addon_sms", admitted[2:3]))
    assert admitted[1] not in sim.sms_sent


@pytest.mark.timeout(120)
async def test_an_event_storm_is_absorbed_with_nothing_lost(temporal, store, sim):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json", subscribers=3000)
    storm = [event("data_usage_threshold", n, USAGE if i % 3 else {"percent": 10, "plan_quota_mb": 1})
             for i, n in enumerate(admitted)]
    matching = [n for i, n in enumerate(admitted) if i % 3]
    async with TriggerRun(temporal, store, sim, campaign) as run:
        results = [await run.events(storm[i:i + 1000]) for i in range(0, len(storm), 1000)]
        assert sum(sum(r.entered.values()) for r in results) == len(matching)
        await until(sent(store, campaign.id, "addon_sms", matching), seconds=60)
    assert sim.sms_sent == dict.fromkeys(matching, 1)


async def servings(handle) -> int:
    """How many times the workflow scheduled its serving activity."""
    return len([e async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name == "serve_journeys"])


async def test_on_the_real_server_one_serving_answers_a_stream_of_events_and_stops_for_pause_and_cancel(
        store, sim, dev_server):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json", subscribers=600)
    client = await Client.connect(dev_server)
    await register_search_attributes(client)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, store.engine, adapters(sim), task_queue=queue, batch_size=50):
        handle = await start_campaign(client, campaign, queue, look_every_seconds=86_400, idle_seconds=60)
        await until(lambda: campaigns.get(store, campaign.id).status == "running")
        stream = admitted[:20]
        for n in stream:  # an event every 50 ms, each told to the workflow as the API's notifier does
            if ingest(store.engine, [event("data_usage_threshold", n, USAGE)]).entered:
                await handle.signal(TriggerWorkflow.entries_added, {"entered": 1})
            await asyncio.sleep(0.05)
        await until(sent(store, campaign.id, "addon_sms", stream))
        # one activity served the whole stream, pass after pass: no Temporal round trip per pass
        assert await servings(handle) <= 2

        await handle.signal(TriggerWorkflow.pause)
        await until(lambda: campaigns.get(store, campaign.id).status == "paused")
        # serving ends at its next look at the store, long before its idle time runs out
        pending = None
        for _ in range(100):
            pending = (await handle.describe()).raw_description.pending_activities
            if not pending:
                break
            await asyncio.sleep(0.05)
        assert not pending
        await handle.signal(TriggerWorkflow.resume)
        await until(lambda: campaigns.get(store, campaign.id).status == "running")
        late = admitted[20]
        assert ingest(store.engine, [event("data_usage_threshold", late, USAGE)]).entered
        await handle.signal(TriggerWorkflow.entries_added, {"entered": 1})
        await until(sent(store, campaign.id, "addon_sms", [late]))

        await handle.signal(TriggerWorkflow.cancel)
        progress = await asyncio.wait_for(handle.result(), 10)
    assert progress.status == "cancelled" and progress.steps["addon_sms"].sent == 21
    assert sim.sms_sent == dict.fromkeys([*stream, late], 1)
