"""Prometheus metrics: what a worker's step counts (contacts by channel and outcome,
suppressions by reason, dispatch duration), what the API counts (answers, offer-view
latency, events) and the order outbox read at scrape time; and channels whose steps
run on workers of their own task queue."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import ActivityEnvironment

from activities.campaign import CampaignActivities, ShardRef, StepInput
from channel_adapters.simulator import Simulator
from touchwave import campaigns, contacts
from touchwave.config import Settings
from touchwave.errors import UserError
from touchwave.policy import dnd
from touchwave.store.models import CampaignStatus
from touchwave.temporal import start_campaign
from touchwave.worker import build_channel_worker, build_worker

from .conftest import api_client
from .test_waves import SILENT, CampaignWorker, adapters, ledger, members, seed


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_step_counts_its_contacts_suppressions_and_duration(store):
    campaign = seed(store)
    campaigns.set_status(store.engine, campaign.id, CampaignStatus.RUNNING)
    everyone = members(store, campaign.id)
    quiet, dead = everyone[:3], set(everyone[3:5])
    dnd.add(store.engine, [dnd.entry(m, "global", "complaint") for m in quiet], "test")
    before = {"sent": sample("touchwave_contacts_total", campaign=str(campaign.id), channel="sms", outcome="sent"),
              "failed": sample("touchwave_contacts_total", campaign=str(campaign.id), channel="sms", outcome="failed"),
              "dnd": sample("touchwave_suppressions_total", campaign=str(campaign.id), channel="sms", reason="dnd"),
              "steps": sample("touchwave_step_dispatch_seconds_count", channel="sms")}
    sim = Simulator(seed=3, customers=SILENT, reject_numbers=dead)
    step = CampaignActivities(store.engine, adapters(sim), batch_size=50)
    result = ActivityEnvironment().run(step.run_step, StepInput(
        ShardRef(campaign.id, 0, 0, 0, contacts.LAST_ID), "sms_broadcast", "sms", "RBT_DOWNLOAD", "RBT_SMS"))
    assert result.sent == len(everyone) - 5 and result.failed == 2
    assert sample("touchwave_contacts_total", campaign=str(campaign.id), channel="sms", outcome="sent") - before["sent"] == result.sent
    assert sample("touchwave_contacts_total", campaign=str(campaign.id), channel="sms", outcome="failed") - before["failed"] == result.failed
    assert sample("touchwave_suppressions_total", campaign=str(campaign.id), channel="sms", reason="dnd") - before["dnd"] == 3
    assert sample("touchwave_step_dispatch_seconds_count", channel="sms") - before["steps"] == 1


def test_the_api_counts_answers_times_the_offer_view_and_reads_the_outbox(store):
    campaign = seed(store)
    campaigns.set_status(store.engine, campaign.id, CampaignStatus.RUNNING)
    customer = members(store, campaign.id)[0]
    agent = api_client(store.engine, "agent")
    views = sample("touchwave_offer_view_seconds_count", channel="hall")
    accepted = sample("touchwave_responses_total", campaign=str(campaign.id), channel="hall", outcome="accepted")
    assert agent.get(f"/v1/customers/{customer}/offers", params={"channel": "hall"}).status_code == 200
    answer = agent.post("/v1/responses", json={"campaign_id": campaign.id, "msisdn": customer, "outcome": "accepted",
                                               "channel": "hall"})
    assert answer.status_code == 200, answer.text
    agent.post("/v1/responses", json={"campaign_id": campaign.id, "msisdn": customer, "outcome": "accepted",
                                      "channel": "hall"})  # the same answer again is not counted again
    metrics = agent.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    samples = scraped(metrics.text)
    assert samples[("touchwave_offer_view_seconds_count", (("channel", "hall"),))] == views + 1
    assert samples[("touchwave_responses_total", (("campaign", str(campaign.id)), ("channel", "hall"),
                                           ("outcome", "accepted")))] == accepted + 1
    # the "yes" became an order in the outbox, not yet sent to BOSS
    assert samples[("touchwave_order_outbox", (("status", "pending"),))] == 1
    assert samples[("touchwave_order_outbox", (("status", "delivered"),))] == 0


def test_channel_queues_and_worker_ports_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOUCHWAVE_CHANNEL_QUEUES", "sms=touchwave-sms, outbound=touchwave-outbound")
    monkeypatch.setenv("TOUCHWAVE_WORKER_CHANNELS", "sms")
    monkeypatch.setenv("TOUCHWAVE_METRICS_PORT", "9464")
    settings = Settings.from_env()
    assert settings.channel_queues == {"sms": "touchwave-sms", "outbound": "touchwave-outbound"}
    assert settings.worker_channels == ("sms",) and settings.metrics_port == 9464
    monkeypatch.setenv("TOUCHWAVE_CHANNEL_QUEUES", "sms")
    with pytest.raises(UserError, match="'sms' is not channel=queue"):
        Settings.from_env()
    monkeypatch.setenv("TOUCHWAVE_CHANNEL_QUEUES", "")
    monkeypatch.setenv("TOUCHWAVE_METRICS_PORT", "ninety")
    with pytest.raises(UserError, match="TOUCHWAVE_METRICS_PORT: 'ninety' is not a port number"):
        Settings.from_env()


async def test_a_channel_with_its_own_queue_is_sent_by_its_own_workers(temporal, store):
    """The SMS wave goes out through the SMS gateway of the worker on the SMS queue; the
    campaign worker sends the calls; nobody is contacted twice."""
    campaign = seed(store, subscribers=150)
    everyone = set(members(store, campaign.id))
    campaign_sim, sms_sim = Simulator(seed=1, customers=SILENT), Simulator(seed=2, customers=SILENT)
    queue, sms_queue = f"test-{uuid.uuid4().hex[:8]}", f"test-sms-{uuid.uuid4().hex[:8]}"
    worker = build_worker(temporal.client, store.engine, adapters(campaign_sim), task_queue=queue, batch_size=40)
    sender = build_channel_worker(temporal.client, store.engine, {"sms": adapters(sms_sim)["sms"]}, sms_queue,
                                  batch_size=40)
    handle = await start_campaign(temporal.client, campaign, queue, shard_size=100,
                                  workflow_id=f"{campaign.workflow_id}-{uuid.uuid4().hex[:6]}",
                                  channel_queues={"sms": sms_queue})
    async with sender, CampaignWorker(worker, handle):
        await asyncio.wait_for(handle.result(), 60)
    assert set(sms_sim.sms_sent) == everyone and set(sms_sim.sms_sent.values()) == {1}
    assert not campaign_sim.sms_sent
    assert {t.msisdn for t in campaign_sim.tasks.values()} == everyone and not sms_sim.tasks
    assert set(ledger(store, campaign.id)["sms_broadcast"].values()) == {"sent"}
