"""Benchmark: bulk waves, per-customer workflows vs. one workflow per campaign.

In one run, each on a time-skipping test server of its own (waits skipped), SQLite
store, the channels on the simulator served over HTTP by a process of its own (gateway
and call centre are other systems: their bookkeeping of a million messages and call
tasks is not the worker's memory), the store prepared in a process of its own (not
counted either):

(a) baseline, the per-customer design (Dittofeed's): one Temporal workflow per member,
    one activity per step (write the contact, send it), for `--baseline-members`;
(b) touchwave: one CampaignWorkflow, shards of 50,000 as child workflows, each step one
    set-wise claim and batched sends, for `--members`.

Both run the same 3 steps (SMS, hall window, outbound) and print customer-steps/s, and
the peak RSS of this process (the worker) while (b) runs, and how long (b) held the
store and ran statements in it.

    .venv/bin/python bench/bulk_waves.py [--members 1000000] [--baseline-members 2000] [--gateway http|mock]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import httpx
import uvicorn
from sqlalchemy import Engine, event, func, select, text
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from channel_adapters.base import Message
from channel_adapters.outbound import OutboundAdapter
from channel_adapters.simulator import CustomerModel, Simulator
from channel_adapters.simulator.app import create_app as simulator_app
from channel_adapters.sms import SmsAdapter
from touchwave import campaigns
from touchwave.config import TEMPLATES_DIR
from touchwave.contacts import Outgoing
from touchwave.stack import installed_binary
from touchwave.temporal import register_search_attributes
from touchwave.store import Store, db
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import Contact, idempotency_key
from touchwave.segments.synthetic import load_population
from touchwave.store.templates import upload
from touchwave.worker import build_worker
from workflows.campaign import CampaignWorkflow
from touchwave.temporal import start_campaign
from touchwave.policy.channels import QUIET_CHANNELS, set_rules

from load_subscribers import postgres_url

SILENT = CustomerModel(accept={}, decline={}, consider={})
BENCH_TEMPLATE = {
    "name": "bench-three-steps", "business_line": "value_added", "priority": 50, "duration": "P30D",
    "audience": {"rule": {"field": "plan", "op": "ne", "value": "none"}},
    "nodes": [
        {"id": "sms", "type": "sms", "offer": "RBT_DOWNLOAD", "script": "RBT_SMS"},
        {"id": "wait1", "type": "wait", "wait": "P3D"},
        {"id": "hall", "type": "hall", "offer": "RBT_DOWNLOAD", "script": "RBT_HALL", "window": "P14D"},
        {"id": "wait2", "type": "wait", "wait": "P7D"},
        {"id": "outbound", "type": "outbound", "offer": "RBT_DOWNLOAD", "script": "RBT_OUTBOUND"},
        {"id": "end", "type": "end"},
    ],
    "edges": [{"from": a, "to": b} for a, b in
              [("sms", "wait1"), ("wait1", "hall"), ("hall", "wait2"), ("wait2", "outbound"), ("outbound", "end")]],
}


def prepare(url: str, members: int) -> int:
    """The store and the campaign (run in a process of its own); the campaign's id."""
    store = Store.open(url, migrated=False)
    db.upgrade(store.engine)
    for channel in QUIET_CHANNELS:  # the benchmark runs at any hour
        set_rules(store.engine, channel, quiet=None)
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(TEMPLATES_DIR / "catalog" / "offers.json"))
        upload(session, BENCH_TEMPLATE, author="bench")
    load_population(store.engine, members, seed=3, today=date(2026, 11, 24))
    campaign_id = campaigns.create(store, BENCH_TEMPLATE["name"], created_by="bench").id
    store.close()
    return campaign_id


#: `--postgres URL`: a schema of its own per run instead of a SQLite file (dropped at the end)
POSTGRES: list[str] = []
SCHEMAS = contextlib.ExitStack()


def prepared_store(folder: str, members: int) -> tuple[Store, campaigns.CampaignInfo]:
    url = f"sqlite:///{folder}/bench.db"
    if POSTGRES:
        url = SCHEMAS.enter_context(postgres_url(POSTGRES[0]))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        campaign_id = pool.apply(prepare, (url, members))
    store = Store.open(url)
    return store, campaigns.get(store, campaign_id)


def serve_gateway(port: int) -> None:
    """The simulator as the SMS gateway and call centre over HTTP, plus what it counted."""
    sim = Simulator(customers=SILENT)

    def counts(_request) -> JSONResponse:
        return JSONResponse({"sms": sum(sim.sms_sent.values()), "tasks": len(sim.tasks)})

    app = Starlette(routes=[Route("/bench/counts", counts), Mount("/", simulator_app(sim))])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


class InProcessGateway:
    """`--gateway mock`: the simulator in this process on `httpx.MockTransport` (no HTTP;
    its bookkeeping of every message and call task then counts in this process's RSS)."""

    url = "http://gateway"

    def __enter__(self) -> InProcessGateway:
        self.sim = Simulator(customers=SILENT)
        return self

    def adapters(self) -> tuple[SmsAdapter, OutboundAdapter]:
        return SmsAdapter(self.url, self.sim.transport()), OutboundAdapter(self.url, self.sim.transport())

    def counts(self) -> dict[str, int]:
        return {"sms": sum(self.sim.sms_sent.values()), "tasks": len(self.sim.tasks)}

    def __exit__(self, *exc) -> None:
        del self.sim


class Gateway:
    """`serve_gateway` in a process of its own, a fresh one per run."""

    def adapters(self) -> tuple[SmsAdapter, OutboundAdapter]:
        return SmsAdapter(self.url), OutboundAdapter(self.url)

    def __enter__(self) -> Gateway:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.process = multiprocessing.get_context("spawn").Process(target=serve_gateway, args=(port,), daemon=True)
        self.process.start()
        for _ in range(300):
            try:
                httpx.get(f"{self.url}/bench/counts")
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("the simulated gateway did not come up")

    def counts(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/bench/counts").json()

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join()


class PeakRss:
    """This process's peak resident set from now on: the kernel's high-water mark, reset
    at the start (`/proc/self/clear_refs`), read at the end."""

    def __enter__(self) -> PeakRss:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return self

    def __exit__(self, *exc) -> None:
        with open("/proc/self/status") as f:
            self.mb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


class StoreTime:
    """Where (b)'s time in the store went: how long steps held its connections (checked
    out) and how long statements ran, summed over connections. On SQLite the store has
    one connection and its writes are serial: the statements' time is a floor under (b)'s
    wall time, whatever the rest of the worker does."""

    def __init__(self, engine: Engine) -> None:
        self.held, self.sql = 0.0, 0.0
        self._listeners = [(engine, "before_cursor_execute", self._before),
                           (engine, "after_cursor_execute", self._after),
                           (engine.pool, "checkout", self._checkout), (engine.pool, "checkin", self._checkin)]

    def __enter__(self) -> StoreTime:
        for target, name, fn in self._listeners:
            event.listen(target, name, fn)
        return self

    def __exit__(self, *exc) -> None:
        for target, name, fn in self._listeners:
            event.remove(target, name, fn)

    def _before(self, conn, cursor, *_args) -> None:
        conn.info["statement_started"] = time.perf_counter()

    def _after(self, conn, cursor, *_args) -> None:
        self.sql += time.perf_counter() - conn.info.pop("statement_started")

    def _checkout(self, dbapi_connection, record, proxy) -> None:
        record.info["checked_out"] = time.perf_counter()

    def _checkin(self, dbapi_connection, record) -> None:
        if "checked_out" in record.info:
            self.held += time.perf_counter() - record.info.pop("checked_out")


# -- (a) the per-customer design -----------------------------------------------------------


@dataclass
class MemberStep:
    campaign_id: int
    subscriber_id: int
    msisdn: str
    step: str
    channel: str


class PerCustomerActivities:
    def __init__(self, store: Store, sms: SmsAdapter, outbound: OutboundAdapter) -> None:
        self.store, self.adapters = store, {"sms": sms, "outbound": outbound}

    @activity.defn
    def contact_member(self, s: MemberStep) -> None:
        key = idempotency_key(s.campaign_id, s.step, s.subscriber_id, 1)
        with self.store.session.begin() as session:
            session.add(Contact(campaign_id=s.campaign_id, step_id=s.step, subscriber_id=s.subscriber_id,
                                channel=s.channel, attempt=1, idempotency_key=key, status="sent"))
        if s.channel in self.adapters:
            self.adapters[s.channel].send([Outgoing(s.subscriber_id, 0, key, s.msisdn)], Message(s.campaign_id, s.step, "o", "text"))


@dataclass
class MemberInput:
    campaign_id: int
    subscriber_id: int
    msisdn: str


@workflow.defn
class PerCustomerWorkflow:
    @workflow.run
    async def run(self, m: MemberInput) -> None:
        # the waits are left out: thousands of concurrent timers overwhelm the time-skipping
        # server, and skipped waits cost nothing in (b) either
        for step, channel in (("sms", "sms"), ("hall", "hall"), ("outbound", "outbound")):
            await workflow.execute_activity_method(
                PerCustomerActivities.contact_member, MemberStep(m.campaign_id, m.subscriber_id, m.msisdn, step, channel),
                start_to_close_timeout=timedelta(minutes=5))


async def per_customer(env: WorkflowEnvironment, members: int, gateway_kind: type) -> float:
    with tempfile.TemporaryDirectory() as folder, gateway_kind() as gateway:
        store, campaign = prepared_store(folder, members)
        acts = PerCustomerActivities(store, *gateway.adapters())
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT s.id, s.msisdn FROM campaign_members m JOIN subscribers s "
                                     "ON s.id = m.subscriber_id WHERE m.campaign_id = :c"), {"c": campaign.id}).all()
        queue = f"bench-a-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        # the baseline workflow lives in this script, which the sandbox cannot re-import
        async with Worker(env.client, task_queue=queue, workflows=[PerCustomerWorkflow],
                          activities=[acts.contact_member], activity_executor=ThreadPoolExecutor(8),
                          workflow_runner=UnsandboxedWorkflowRunner()):
            for sid, msisdn in rows:
                await env.client.start_workflow(PerCustomerWorkflow.run, MemberInput(campaign.id, sid, msisdn),
                                                id=f"member-{queue}-{sid}", task_queue=queue)
            # done when every member has its three contacts (polling thousands of workflow
            # results at once breaks the test server)
            while True:
                with store.engine.connect() as conn:
                    if conn.scalar(select(func.count()).select_from(Contact)) >= len(rows) * 3:
                        break
                await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        assert gateway.counts() == {"sms": len(rows), "tasks": len(rows)}
        store.close()
        return len(rows) * 3 / elapsed


# -- (b) touchwave ----------------------------------------------------------------------------


async def _with_progress(handle, every: float = 30.0):
    """The campaign's result, printing its progress while it runs (a stall shows)."""
    outcome = asyncio.ensure_future(handle.result())
    while True:
        done, _ = await asyncio.wait({outcome}, timeout=every)
        if done:
            return outcome.result()
        progress = await handle.query(CampaignWorkflow.status)
        # a passive step sends nothing: its claim opens the members' offer windows
        steps = ", ".join(f"{step} {r.claimed:,} claimed, {r.sent:,} sent" for step, r in progress.steps.items())
        print(f"    … {progress.status}: shards {progress.shards_done}/{progress.shards}; {steps}", flush=True)


@dataclass
class CampaignRun:
    rate: float
    shards: int
    peak_mb: float
    seconds: float
    store: StoreTime


async def per_campaign(env: WorkflowEnvironment, members: int, shard_size: int, gateway_kind: type) -> CampaignRun:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store, campaign = prepared_store(folder, members)
        print(f"    loaded {members:,} subscribers and created the campaign in {time.perf_counter() - started:.1f} s"
              " (not counted)", flush=True)
        queue = f"bench-b-{uuid.uuid4().hex[:6]}"
        with gateway_kind() as gateway:
            adapters = dict(zip(("sms", "outbound"), gateway.adapters(), strict=True))
            with PeakRss() as rss, StoreTime(store.engine) as store_time:
                started = time.perf_counter()
                async with build_worker(env.client, store.engine, adapters, task_queue=queue, batch_size=2000,
                                        threads=8):
                    handle = await start_campaign(env.client, campaign, queue, shard_size=shard_size,
                                                  workflow_id=f"campaign-{campaign.id}-{queue}")
                    result = await _with_progress(handle)
                elapsed = time.perf_counter() - started
            counted = gateway.counts()
        with store.engine.connect() as conn:
            ledger = conn.scalar(select(func.count()).select_from(Contact))
        assert ledger == campaign.members * 3 and counted == {"sms": campaign.members, "tasks": campaign.members}
        assert result.status == "finished"
        store.close()
        return CampaignRun(campaign.members * 3 / elapsed, result.shards, rss.mb, elapsed, store_time)


async def time_skipping() -> WorkflowEnvironment:
    """A test server of its own for each design: on the one that had run (a), its 2,000
    finished workflows slowed (b) by a sixth (1,000,000 members: 89.3k customer-steps/s,
    104.5k on a fresh server, the same (a) before both)."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=installed_binary("temporal-test-server"))
    await register_search_attributes(env.client)
    return env


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--baseline-members", type=int, default=2_000)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL database to use instead of SQLite")
    parser.add_argument("--gateway", choices=("http", "mock"), default="http",
                        help="the simulator over HTTP in its own process, or in this one on httpx.MockTransport")
    args = parser.parse_args()
    gateway = Gateway if args.gateway == "http" else InProcessGateway
    POSTGRES.extend([args.postgres] if args.postgres else [])
    try:
        print(f"(a) per-customer workflows, {args.baseline_members:,} members ...", flush=True)
        async with await time_skipping() as env:
            baseline = await per_customer(env, args.baseline_members, gateway)
        print(f"    {baseline:,.0f} customer-steps/s", flush=True)
        print(f"(b) one workflow per campaign, {args.members:,} members, shards of {args.shard_size:,} ...", flush=True)
        async with await time_skipping() as env:
            run = await per_campaign(env, args.members, args.shard_size, gateway)
        ours = run.rate
        print(f"    {ours:,.0f} customer-steps/s over {run.shards} shards", flush=True)
    finally:
        SCHEMAS.close()
    print(f"\nbulk waves: (b) {ours:,.0f} customer-steps/s vs (a) {baseline:,.0f} customer-steps/s = "
          f"{ours / baseline:,.0f}x; goal >= 50,000/s and >= 1000x")
    print(f"the store during (b)'s {run.seconds:.1f} s: connections held {run.store.held:.1f} s, "
          f"statements running {run.store.sql:.1f} s"
          + ("" if POSTGRES else f" (the store's one SQLite connection runs a statement at a time: they alone "
                                 f"allow at most {run.rate * run.seconds / run.store.sql:,.0f} customer-steps/s)"))
    print(f"peak RSS of the worker's process during (b): {run.peak_mb:,.0f} MB"
          f"{' (with the simulator in it)' if args.gateway == 'mock' else ''}; goal <= 1024 MB")


if __name__ == "__main__":
    asyncio.run(main())
