"""The wave engine end to end on the time-skipping server: SMS, then hall and 10086,
then outbound, with day-long waits; completion anywhere stops the later waves."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select, text
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from channel_adapters.outbound import OutboundAdapter
from channel_adapters.simulator import CustomerModel, Simulator
from channel_adapters.sms import SmsAdapter
from touchwave import campaigns
from touchwave.responses import record_response
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import Outcome, Script
from touchwave.segments.synthetic import load_population
from touchwave.store.templates import upload
from touchwave.worker import build_worker
from touchwave.temporal import start_campaign
from workflows.campaign import CampaignWorkflow

from .conftest import CATALOG_FILE, load_example

SILENT = CustomerModel(accept={}, decline={}, consider={})


def seed(store, template: str = "ringback_tone_download.json", subscribers: int = 300, control: bool = False):
    """The catalog, a template, a synthetic population and a campaign on it; the
    template's control group only with `control` (the engine's tests contact everyone)."""
    document = load_example(template)
    if not control:
        document.pop("control_share", None)
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
        upload(session, document, author="test")
    load_population(store.engine, subscribers, seed=5, today=date.today())
    return campaigns.create(store, load_example(template)["name"], created_by="test")


def adapters(sim: Simulator) -> dict:
    no_wait = {"sleep": lambda _s: None, "backoff_seconds": 0}
    return {"sms": SmsAdapter("http://sms", sim.transport(), **no_wait),
            "outbound": OutboundAdapter("http://callcentre", sim.transport(), **no_wait)}


def ledger(store, campaign_id: int) -> dict[str, dict[str, str]]:
    """step → msisdn → contact status."""
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT c.step_id, s.msisdn, c.status FROM contact_ledger c JOIN subscribers s ON s.id = c.subscriber_id "
            "WHERE c.campaign_id = :c"), {"c": campaign_id}).all()
    steps: dict[str, dict[str, str]] = {}
    for step, msisdn, status in rows:
        steps.setdefault(step, {})[msisdn] = status
    return steps


def members(store, campaign_id: int) -> list[str]:
    """The members the campaign works on: everyone but its control group."""
    with store.engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT s.msisdn FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
            "WHERE m.campaign_id = :c AND NOT m.control ORDER BY s.msisdn"), {"c": campaign_id}).scalars())


async def until(predicate, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the campaign"
        await asyncio.sleep(0.05)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(seed=1, customers=SILENT)


class CampaignWorker:
    """The test's worker; on exit it first lets the campaign's shards close.

    A shard reports `shard_finished` and then completes in a workflow task of its own; a
    worker stopped in between would leave that task on a queue nobody polls, and the
    time-skipping server never skips time while a task is outstanding, for every later
    test of the session.
    """

    def __init__(self, worker, handle) -> None:
        self.worker, self.handle = worker, handle

    async def __aenter__(self):
        await self.worker.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            progress = await self.handle.query(CampaignWorkflow.status)
            for cohort in range(progress.cohorts):
                for index in itertools.count():
                    shard = self.handle._client.get_workflow_handle(f"{self.handle.id}/cohort-{cohort}/shard-{index}")
                    try:
                        await until_closed(shard)
                    except RPCError:  # no such shard: that was the cohort's last
                        break
        finally:
            await self.worker.__aexit__(*exc)


async def until_closed(handle, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, f"{handle.id} did not close"
        await asyncio.sleep(0.05)


async def start(temporal, store, sim, campaign, shard_size: int = 100, **options):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    worker = build_worker(temporal.client, store.engine, adapters(sim), task_queue=queue, batch_size=40)
    handle = await start_campaign(temporal.client, campaign, queue, shard_size=shard_size,
                                  workflow_id=f"{campaign.workflow_id}-{uuid.uuid4().hex[:6]}", **options)
    return CampaignWorker(worker, handle), handle


async def test_three_waves_with_day_long_waits_run_in_seconds(temporal, store, sim):
    campaign = seed(store)
    assert campaign.members > 100
    worker, handle = await start(temporal, store, sim, campaign)
    started = time.monotonic()
    async with worker:
        result = await asyncio.wait_for(handle.result(), 60)
    assert time.monotonic() - started < 30
    everyone = set(members(store, campaign.id))
    steps = ledger(store, campaign.id)
    assert set(steps["sms_broadcast"]) == everyone
    assert set(steps["sms_broadcast"].values()) == {"sent"}
    assert set(sim.sms_sent) == everyone and set(sim.sms_sent.values()) == {1}
    assert set(steps["hall_window"]) == everyone and set(steps["hall_window"].values()) == {"open"}
    assert set(steps["hotline_window"]) == everyone
    assert {t.msisdn for t in sim.tasks.values()} == everyone
    with store.engine.connect() as conn:
        call_script = conn.scalar(select(Script.text).where(Script.code == "RBT_OUTBOUND"))
    assert call_script and {t.script for t in sim.tasks.values()} == {call_script}  # what the agents read out
    assert result.status == "finished"
    assert result.shards == -(-len(everyone) // 100) == result.shards_done
    assert result.steps["sms_broadcast"].sent == len(everyone)
    assert campaigns.get(store, campaign.id).status == "finished"


async def test_completion_in_one_channel_stops_the_later_waves(temporal, store, sim):
    campaign = seed(store)
    everyone = members(store, campaign.id)
    declined_by_sms, considering, accepted_in_hall = everyone[0], everyone[1], everyone[2]
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await step_finished(handle, "sms_broadcast", len(everyone))
        record_response(store.engine, campaign.id, declined_by_sms, Outcome.DECLINED, "sms")
        record_response(store.engine, campaign.id, considering, Outcome.CONSIDERING, "sms")
        await temporal.sleep(timedelta(days=3, hours=1))
        await step_finished(handle, "hotline_window", len(everyone) - 1)  # all but the one who declined
        record_response(store.engine, campaign.id, accepted_in_hall, Outcome.ACCEPTED, "hall", agent="hall-1")
        await asyncio.wait_for(handle.result(), 60)
    steps = ledger(store, campaign.id)
    assert declined_by_sms not in steps["hall_window"] and declined_by_sms not in steps["outbound_call"]
    assert steps["hall_window"][accepted_in_hall] == "withdrawn"
    assert accepted_in_hall not in steps["outbound_call"]
    assert steps["hall_window"][considering] == "open" and steps["outbound_call"][considering] == "sent"
    called = {t.msisdn for t in sim.tasks.values()}
    assert declined_by_sms not in called and accepted_in_hall not in called and considering in called


async def step_finished(handle, step: str, count: int, seconds: float = 20.0) -> None:
    """Every shard has finished `step` (claimed `count` members in all) and reported it:
    only then is skipping time safe, since a shard still in the step would start its
    wait after the skip."""
    deadline = time.monotonic() + seconds
    while True:
        progress = await handle.query(CampaignWorkflow.status)
        done = progress.steps.get(step)
        if done is not None and done.claimed == count:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {step} to finish"
        await asyncio.sleep(0.05)


def sent_everyone(store, campaign_id: int, step: str, count: int):
    def check() -> bool:
        statuses = ledger(store, campaign_id).get(step, {})
        return len(statuses) == count and not {"claimed", "sending"} & set(statuses.values())
    return check


async def test_a_queued_call_is_withdrawn_when_the_customer_accepts_in_the_hall(temporal, store, sim):
    campaign = seed(store)
    everyone = members(store, campaign.id)
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await step_finished(handle, "sms_broadcast", len(everyone))
        await temporal.sleep(timedelta(days=3, hours=1))
        await step_finished(handle, "hotline_window", len(everyone))
        await temporal.sleep(timedelta(days=7, hours=1))
        await until(sent_everyone(store, campaign.id, "outbound_call", len(everyone)))
        walk_in = everyone[7]
        completion = record_response(store.engine, campaign.id, walk_in, Outcome.ACCEPTED, "hall",
                                     outbound=adapters(sim)["outbound"], agent="hall-9")
        assert len(completion.queued_calls) == 1
        assert sim.dial_queued() == len(everyone) - 1
        await asyncio.wait_for(handle.result(), 60)
    assert sim.dials[walk_in] == 0
    assert all(sim.dials[m] == 1 for m in everyone if m != walk_in)
    steps = ledger(store, campaign.id)
    assert steps["outbound_call"][walk_in] == "withdrawn"
    assert steps["hall_window"][walk_in] == "withdrawn" and steps["hotline_window"][walk_in] == "withdrawn"


async def test_pause_holds_every_step_and_cancel_withdraws_everything(temporal, store, sim):
    campaign = seed(store)
    everyone = members(store, campaign.id)
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await step_finished(handle, "sms_broadcast", len(everyone))
        await handle.signal(CampaignWorkflow.pause)
        await temporal.sleep(timedelta(days=30))
        assert "hall_window" not in ledger(store, campaign.id)
        assert (await handle.query(CampaignWorkflow.status)).status == "paused"
        await until(lambda: campaigns.get(store, campaign.id).status == "paused")
        await handle.signal(CampaignWorkflow.resume)
        await until(lambda: len(ledger(store, campaign.id).get("hotline_window", {})) == len(everyone))
        await handle.signal(CampaignWorkflow.cancel)
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "cancelled"
    assert campaigns.get(store, campaign.id).status == "cancelled"
    steps = ledger(store, campaign.id)
    assert set(steps["hall_window"].values()) == {"withdrawn"} == set(steps["hotline_window"].values())
    assert "outbound_call" not in steps and not sim.tasks


async def test_a_split_routes_members_by_their_answer_to_the_call(temporal, store, sim):
    campaign = seed(store, "contract_retention_96.json", subscribers=1500)
    everyone = members(store, campaign.id)
    assert len(everyone) >= 5
    accepted, considering = everyone[0], everyone[1]
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await until(sent_everyone(store, campaign.id, "account_manager_call", len(everyone)))
        record_response(store.engine, campaign.id, accepted, Outcome.ACCEPTED, "outbound", agent="am-1")
        record_response(store.engine, campaign.id, considering, Outcome.CONSIDERING, "outbound", agent="am-1")
        await asyncio.wait_for(handle.result(), 60)
    hall = ledger(store, campaign.id)["hall_window"]
    assert accepted not in hall
    assert set(hall) == set(everyone) - {accepted}
    with store.engine.connect() as conn:
        routes = dict(conn.execute(text(
            "SELECT s.msisdn, m.route FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
            "WHERE m.campaign_id = :c"), {"c": campaign.id}).all())
    assert routes[accepted] == "closed" and routes[considering] == "hall_window"


async def test_a_flaky_gateway_delivers_each_message_once_and_a_dead_number_fails_alone(temporal, store):
    campaign = seed(store)
    everyone = members(store, campaign.id)
    dead = everyone[3]
    sim = Simulator(seed=2, customers=SILENT, fail_next=3, timeout_next=3, reject_numbers={dead})
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "finished"
    assert all(sim.sms_sent[m] == 1 for m in everyone if m != dead) and sim.sms_sent[dead] == 0
    with store.engine.connect() as conn:
        status, reason = conn.execute(text(
            "SELECT c.status, c.reason FROM contact_ledger c JOIN subscribers s ON s.id = c.subscriber_id "
            "WHERE c.campaign_id = :c AND c.step_id = 'sms_broadcast' AND s.msisdn = :m"),
            {"c": campaign.id, "m": dead}).one()
    assert (status, reason) == ("failed", "number not in service")
    assert result.steps["sms_broadcast"].failed == 1
    assert result.steps["sms_broadcast"].reasons == {"number not in service": 1}
    assert ledger(store, campaign.id)["hall_window"][dead] == "open"


SMS_THEN_CALL = {
    "name": "sms-then-call", "business_line": "value_added", "priority": 50, "duration": "P30D",
    "audience": {"rule": {"field": "plan", "op": "ne", "value": "none"}},
    "nodes": [
        {"id": "sms", "type": "sms", "offer": "RBT_DOWNLOAD", "script": "RBT_SMS"},
        {"id": "wait", "type": "wait", "wait": "P3D"},
        {"id": "call", "type": "outbound", "offer": "RBT_DOWNLOAD", "script": "RBT_OUTBOUND"},
        {"id": "end", "type": "end"},
    ],
    "edges": [{"from": "sms", "to": "wait"}, {"from": "wait", "to": "call"}, {"from": "call", "to": "end"}],
}


async def test_a_member_the_sms_could_not_reach_is_pending_until_the_call_reaches_them(temporal, store):
    """Members move to contacted when a channel reaches them, in whichever step: the SMS
    gateway rejects one number, its member is still pending at the call, which reaches
    them (the call's other shards, nobody pending, have nobody to move)."""
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
        upload(session, SMS_THEN_CALL, author="test")
    load_population(store.engine, 300, seed=5, today=date.today())
    campaign = campaigns.create(store, SMS_THEN_CALL["name"], created_by="test")
    everyone = members(store, campaign.id)
    dead = everyone[3]

    def states() -> dict[str, str]:
        with store.engine.connect() as conn:
            return dict(conn.execute(text(
                "SELECT s.msisdn, m.state FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
                "WHERE m.campaign_id = :c"), {"c": campaign.id}).all())

    sim = Simulator(seed=2, customers=SILENT, reject_numbers={dead})
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        await until(lambda: ledger(store, campaign.id).get("sms", {}).get(dead) == "failed"
                    and "sending" not in ledger(store, campaign.id)["sms"].values()
                    and "claimed" not in ledger(store, campaign.id)["sms"].values())
        after_sms = states()
        result = await asyncio.wait_for(handle.result(), 60)
    assert result.status == "finished"
    assert after_sms[dead] == "pending" and {after_sms[m] for m in everyone if m != dead} == {"contacted"}
    assert ledger(store, campaign.id)["call"][dead] == "sent" and len(sim.tasks) == len(everyone)
    assert set(states().values()) == {"contacted"}
