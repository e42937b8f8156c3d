"""Prometheus metrics: what a worker's step counts (contacts by channel and outcome,
suppressions by reason, dispatch duration), what the API counts (answers, offer-view
latency, events) and the order outbox read at scrape time; and channels whose steps
run on workers of their own task queue."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _scrape(url: str, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            try:
                answer = await client.get(url)
                if answer.status_code == 200 and answer.text:
                    return answer.text
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.2)


async def test_a_worker_serves_its_metrics_and_the_temporal_sdk_metrics(temporal, tmp_path):
    """`touchwave worker` with TOUCHWAVE_METRICS_PORT and TOUCHWAVE_SDK_METRICS_PORT, as
    the compose stack runs it (here against the time-skipping server)."""
    ours, sdk = _free_port(), _free_port()
    env = {**os.environ, "TOUCHWAVE_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
           "TOUCHWAVE_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
           "TOUCHWAVE_TASK_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
           "TOUCHWAVE_METRICS_PORT": str(ours), "TOUCHWAVE_SDK_METRICS_PORT": str(sdk)}
    touchwave = str(Path(sys.executable).parent / "touchwave")
    subprocess.run([touchwave, "db", "upgrade"], env=env, check=True, capture_output=True)
    worker = subprocess.Popen([touchwave, "worker", "--no-orders"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        mine = await _scrape(f"http://127.0.0.1:{ours}/metrics")
        theirs = await _scrape(f"http://127.0.0.1:{sdk}/metrics")
        while "temporal_" not in theirs:  # the SDK reports once its pollers run
            await asyncio.sleep(0.5)
            theirs = await _scrape(f"http://127.0.0.1:{sdk}/metrics")
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert "# TYPE touchwave_contacts_total counter" in mine and "touchwave_step_dispatch_seconds" in mine, output
    assert re.search(r"^temporal_\w+", theirs, re.MULTILINE), theirs[:500]


def test_several_api_processes_are_summed_in_one_scrape(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR (the compose API's uvicorn workers), what each
    process counted is in every process's scrape."""
    program = ("import sys; from touchwave import metrics; "
               "metrics.RESPONSES.labels('7', 'hall', 'accepted').inc(int(sys.argv[1])); "
               "sys.stdout.write(metrics.exposition(metrics.registry_for_scrape()).decode())")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", program, "2"], env=env, check=True, capture_output=True)
    last = subprocess.run([sys.executable, "-c", program, "3"], env=env, check=True, capture_output=True, text=True)
    assert scraped(last.stdout)[("touchwave_responses_total",
                                 (("campaign", "7"), ("channel", "hall"), ("outcome", "accepted")))] == 5
