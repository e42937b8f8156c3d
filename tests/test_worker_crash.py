"""A worker process killed in the middle of a step: a new worker finishes the campaign
with no contact lost and none sent twice. Real processes, a real Temporal dev server,
the simulator over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import uvicorn
from temporalio.client import Client

from channel_adapters.simulator import Simulator
from channel_adapters.simulator.app import create_app
from touchwave.stack import installed_binary
from touchwave.temporal import register_search_attributes, start_campaign

from .test_waves import SILENT, ledger, members, seed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def dev_server(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [installed_binary("temporal"), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
         "--db-filename", str(tmp_path / "temporal.db"), "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


@pytest.fixture
def gateway():
    """The simulator as a slow HTTP gateway, so a step is still running when the worker dies."""
    sim = Simulator(seed=3, customers=SILENT, latency_seconds=0.15)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(sim), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    yield sim, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


async def listed(client: Client, query: str) -> list[str]:
    """Workflow ids the Temporal UI's search lists for `query` (visibility lags a little)."""
    deadline = time.monotonic() + 10
    while True:
        ids = [w.id async for w in client.list_workflows(query)]
        if ids or time.monotonic() > deadline:
            return ids
        await asyncio.sleep(0.2)


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    touchwave = str(Path(sys.executable).parent / "touchwave")
    return subprocess.Popen([touchwave, "worker", "--batch-size", "20"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_a_killed_worker_loses_and_repeats_no_contact(store, database_url, dev_server, gateway):
    sim, gateway_url = gateway
    campaign = seed(store)
    everyone = members(store, campaign.id)
    queue = f"crash-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "TOUCHWAVE_DATABASE_URL": database_url, "TOUCHWAVE_TEMPORAL_ADDRESS": dev_server,
           "TOUCHWAVE_TASK_QUEUE": queue, "TOUCHWAVE_SMS_GATEWAY_URL": gateway_url,
           "TOUCHWAVE_CALL_CENTRE_URL": gateway_url}
    first = start_worker(env)
    client = await Client.connect(dev_server)
    await register_search_attributes(client)
    handle = await start_campaign(client, campaign, queue, shard_size=1000, time_scale=1e-6, heartbeat_seconds=2)
    deadline = time.monotonic() + 60
    while sum(sim.sms_sent.values()) < 40:
        assert time.monotonic() < deadline and first.poll() is None, first.stderr.read().decode()[-2000:]
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    sent_before_the_crash = sum(sim.sms_sent.values())
    assert sent_before_the_crash < len(everyone), "the step finished before the worker was killed"
    second = start_worker(env)
    try:
        result = await asyncio.wait_for(handle.result(), 120)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(10)
    assert result.status == "finished"
    assert await listed(client, f"TouchwaveCampaignId = {campaign.id} AND TouchwaveStatus = 'finished' "
                                f"AND TouchwaveTemplate = '{campaign.template}'") == [campaign.workflow_id]
    assert sorted(sim.sms_sent) == everyone and set(sim.sms_sent.values()) == {1}
    assert sorted(t.msisdn for t in sim.tasks.values()) == everyone
    steps = ledger(store, campaign.id)
    assert set(steps["sms_broadcast"].values()) == {"sent"} == set(steps["outbound_call"].values())
