"""The campaign workflow's own timeline: later cohorts, answers arriving in batches,
and continue-as-new, on the time-skipping test server."""

from __future__ import annotations

import asyncio
from datetime import date

from temporalio.client import Client, WorkflowExecutionStatus

from touchwave import campaigns
from touchwave.notify import ResponseNotifier
from touchwave.responses import record_response
from touchwave.store.models import Outcome
from touchwave.segments.synthetic import load_population
from touchwave.temporal import register_search_attributes, start_campaign
from touchwave.worker import build_worker
from workflows.campaign import CampaignWorkflow

from .test_waves import adapters, ledger, members, seed, sent_everyone, sim, start, until  # noqa: F401 (fixture)
from .test_worker_crash import dev_server  # noqa: F401 (a fixture)


async def test_members_admitted_later_run_the_plan_from_the_first_step_on_their_own(temporal, store, sim):
    campaign = seed(store)
    first_cohort = members(store, campaign.id)
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await until(sent_everyone(store, campaign.id, "sms_broadcast", len(first_cohort)))
        await until(lambda: campaigns.get(store, campaign.id).status == "running")
        # the same 300 subscribers as at launch (same seed) and 300 more
        load_population(store.engine, 600, seed=5, today=date.today())
        admission = campaigns.sync(store, campaign.id)
        assert admission.cohort == 1 and admission.joined > 0
        await handle.signal(CampaignWorkflow.cohort_added, admission.cohort)
        result = await asyncio.wait_for(handle.result(), 60)
    everyone = members(store, campaign.id)
    later = set(everyone) - set(first_cohort)
    assert len(later) == admission.joined
    steps = ledger(store, campaign.id)
    assert set(steps["sms_broadcast"]) == set(everyone) == set(steps["outbound_call"])
    assert set(sim.sms_sent) == set(everyone) and set(sim.sms_sent.values()) == {1}
    assert result.cohorts == 2 and result.members == len(everyone)
    assert result.shards_done == result.shards
    assert result.steps["sms_broadcast"].sent == len(everyone)


async def test_a_cohort_whose_signal_was_lost_opens_with_the_next_sync(temporal, store, sim):
    campaign = seed(store)
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await until(sent_everyone(store, campaign.id, "sms_broadcast", len(members(store, campaign.id))))
        load_population(store.engine, 450, seed=5, today=date.today())
        lost = campaigns.sync(store, campaign.id)  # stored, but the workflow is never told
        load_population(store.engine, 600, seed=5, today=date.today())
        told = campaigns.sync(store, campaign.id)
        assert (lost.cohort, told.cohort, told.latest_cohort) == (1, 2, 2) and lost.joined and told.joined
        await handle.signal(CampaignWorkflow.cohort_added, told.latest_cohort)
        result = await asyncio.wait_for(handle.result(), 60)
    everyone = members(store, campaign.id)
    assert result.cohorts == 3 and set(sim.sms_sent) == set(everyone)


async def test_admitting_nobody_new_adds_no_cohort(temporal, store, sim):
    campaign = seed(store)
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        # cancel once the shards wait: the time-skipping server loses an activity cancelled
        # before a worker picked it up (ACTIVITY_UNKNOWN) and the shard never closes
        await until(sent_everyone(store, campaign.id, "sms_broadcast", len(members(store, campaign.id))))
        assert campaigns.sync(store, campaign.id).joined == 0
        await handle.signal(CampaignWorkflow.cancel)
        await asyncio.wait_for(handle.result(), 60)


async def test_answers_reach_the_workflow_in_one_signal_and_end_the_wait_early(temporal, store, sim):
    campaign = seed(store)
    everyone = members(store, campaign.id)
    worker, handle = await start(temporal, store, sim, campaign, shard_size=1000)
    notifier = ResponseNotifier(temporal.client, workflow_of=lambda _campaign: handle.id)
    async with worker:
        await until(sent_everyone(store, campaign.id, "sms_broadcast", len(everyone)))
        for msisdn in everyone:
            record_response(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "sms")
            notifier.add(campaign.id, "sms", "accepted")
        assert await notifier.flush() == 1
        # not awaiting the result, so no time is skipped: only the answers can end the 3-day wait
        await until(lambda: campaigns.get(store, campaign.id).status == "finished", seconds=30)
        progress = await handle.query(CampaignWorkflow.status)
    assert progress.responses == {"sms:accepted": len(everyone)}
    assert "hall_window" not in ledger(store, campaign.id) or not ledger(store, campaign.id)["hall_window"]
    assert not sim.tasks


async def test_a_long_history_continues_as_new_and_loses_no_shard(store, sim, dev_server):
    """On the dev server (the time-skipping test server never skips again once a
    continued-as-new run has children still running; waits are scaled down instead)."""
    campaign = seed(store)
    everyone = members(store, campaign.id)
    client = await Client.connect(dev_server)
    await register_search_attributes(client)
    queue = f"can-{campaign.id}"
    async with build_worker(client, store.engine, adapters(sim), task_queue=queue, batch_size=40):
        handle = await start_campaign(client, campaign, queue, shard_size=20, history_limit=30, time_scale=1e-6)
        result = await asyncio.wait_for(handle.result(), 90)
    first_run = await client.get_workflow_handle(handle.id, run_id=handle.result_run_id).describe()
    assert first_run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert result.status == "finished" and result.shards == -(-len(everyone) // 20) == result.shards_done
    assert result.steps["sms_broadcast"].sent == len(everyone) == result.steps["outbound_call"].sent
    assert set(sim.sms_sent.values()) == {1} and len(sim.tasks) == len(everyone)
