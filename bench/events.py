"""Benchmark: event-triggered campaigns under a sustained stream of customer events.

A SQLite store (the embedded default) with `--subscribers` subscribers and 10 running
trigger campaigns (the data-usage add-on template, one per region, so an event enters
at most one), the Temporal dev server, a worker in this process with the SMS and call
centre adapters on the simulator, and the API as production serves it (`touchwave api`,
its own process, telling the workflows through its entry notifier). A load script posts
`POST /v1/events` batches at `--rate` events/s (open loop), `--match` of them matching a
trigger (data use ≥ 80% of the plan, a subscriber never entered before), the rest not
(data use below 80%).

Printed: (a) the baseline — the same stream for `--baseline` seconds with the campaigns
paused (storing and checking events, nobody entered); (b) the stream with the campaigns
running: every 10 s the events/s taken, the members due and not yet worked on (the
backlog; flat means keeping up), then the time from posting a matching event to its SMS
reaching the gateway adapter, p50/p99, and how many never got one. Goals: 1,000 events/s
sustained, event → first contact p99 <= 1 s, no backlog growth over 5 minutes.

    .venv/bin/python bench/events.py [--subscribers 1000000] [--rate 1000] [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from contextlib import nullcontext
from pathlib import Path

import httpx
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from channel_adapters.outbound import OutboundAdapter
from channel_adapters.simulator import CustomerModel, Simulator
from channel_adapters.sms import SmsAdapter
from touchwave import campaigns, tokens
from touchwave.config import TEMPLATES_DIR
from touchwave.events import catalog as event_catalog
from touchwave.policy.channels import QUIET_CHANNELS, set_rules
from touchwave.segments.synthetic import load_population
from touchwave.stack import installed_binary
from touchwave.store import Store, db
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import CampaignStatus, utc_binds
from touchwave.store.subscribers import REGIONS
from touchwave.store.templates import upload
from touchwave.temporal import dev_server_flags, start_campaign
from touchwave.worker import build_worker
from workflows.trigger import TriggerInput

from load_subscribers import postgres_url

CAMPAIGNS = 10
SILENT = CustomerModel(accept={}, decline={}, consider={})


def prepare(url: str, subscribers: int) -> tuple[Store, list[campaigns.CampaignInfo]]:
    """The store and ten trigger campaigns (one per region)."""
    store = Store.open(url, migrated=False)
    db.upgrade(store.engine)
    for channel in QUIET_CHANNELS:  # the benchmark runs at any hour
        set_rules(store.engine, channel, quiet=None)
    event_catalog.upsert(store.engine, event_catalog.read_catalog_file(TEMPLATES_DIR / "catalog" / "events.json"))
    template = json.loads((TEMPLATES_DIR / "data_usage_addon.json").read_text(encoding="utf-8"))
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(TEMPLATES_DIR / "catalog" / "offers.json"))
        for i in range(CAMPAIGNS):
            upload(session, {**template, "name": f"bench-usage-{i}",
                             "audience": {"rule": {"field": "region", "op": "eq", "value": REGIONS[i]}}},
                   author="bench")
    load_population(store.engine, subscribers, seed=13, today=date(2026, 11, 24))
    return store, [campaigns.create(store, f"bench-usage-{i}", created_by="bench") for i in range(CAMPAIGNS)]


class Stamped(httpx.BaseTransport):
    """The simulator's transport, noting when each SMS reaches the gateway adapter's wire."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.first_sms = inner, {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sms/batch":
            now = time.monotonic()
            for message in json.loads(request.content)["messages"]:
                self.first_sms.setdefault(message["to"], now)
        return self.inner.handle_request(request)


def api_process(url: str, port: int, temporal: str, queue: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TOUCHWAVE_TEMPORAL_ADDRESS": temporal, "TOUCHWAVE_TASK_QUEUE": queue}
    return subprocess.Popen([str(Path(sys.executable).with_name("touchwave")), "--database-url", url, "api",
                             "--port", str(port), "--workers", "1"], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


class Stream:
    """Open-loop event batches; matching events go to subscribers never used before."""

    def __init__(self, numbers: dict[str, list[str]], match: float) -> None:
        self.fresh = [n for region in REGIONS[:CAMPAIGNS] for n in numbers.get(region, [])]
        random.Random(5).shuffle(self.fresh)
        self.anyone = [n for group in numbers.values() for n in group]
        self.match, self.rng, self.sent = match, random.Random(9), 0
        self.posted: dict[str, float] = {}  # matching msisdn → when its event was posted

    def batch(self, size: int, matching: bool) -> tuple[list[dict], list[str]]:
        events, chosen = [], []
        for _ in range(size):
            self.sent += 1
            hit = matching and self.rng.random() < self.match and self.fresh
            msisdn = self.fresh.pop() if hit else self.rng.choice(self.anyone)
            events.append({"id": f"bench-{uuid.uuid4().hex}", "type": "data_usage_threshold", "msisdn": msisdn,
                           "occurred_at": datetime.now(UTC).isoformat(),
                           "payload": {"percent": 90 if hit else 40, "plan_quota_mb": 20480}})
            if hit:
                chosen.append(msisdn)
        return events, chosen


async def post_stream(port: int, token: str, stream: Stream, rate: float, seconds: float, batch: int,
                      matching: bool) -> list[float]:
    """Post `rate` events/s for `seconds` (open loop); returns each request's latency (ms)."""
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {token}"}) as api:

        async def post(events: list[dict], chosen: list[str]) -> None:
            nonlocal failures
            started = time.monotonic()
            for msisdn in chosen:
                stream.posted[msisdn] = started
            try:
                answer = await api.post("/v1/events", json={"events": events})
            except httpx.TransportError:  # a keep-alive connection the server closed: ids make a resend safe
                answer = await api.post("/v1/events", json={"events": events})
            latencies.append((time.monotonic() - started) * 1000)
            failures += answer.status_code != 200 or bool(answer.json()["rejected"])

        every = batch / rate
        tasks, begin = [], time.monotonic()
        for n in range(int(seconds / every)):
            delay = begin + n * every - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(*stream.batch(batch, matching))))
        await asyncio.gather(*tasks)
    if failures:
        print(f"    {failures} batches were refused or had rejected events", flush=True)
    return latencies


def load_process(url: str, port: int, token: str, args: dict, matching: bool, results) -> None:
    """The load generator in a process of its own, so the worker under test (in the main
    process) does not share its interpreter with it. `time.monotonic()` is the machine's
    clock, so its posting times compare with the adapter's stamps in the worker."""
    store = Store.open(url)
    with store.engine.connect() as conn:
        numbers: dict[str, list[str]] = {}
        for msisdn, region in conn.execute(text("SELECT msisdn, region FROM subscribers")):
            numbers.setdefault(region, []).append(msisdn)
    store.close()
    stream = Stream(numbers, args["match"])
    latencies = asyncio.run(post_stream(port, token, stream, args["rate"], args["seconds"], args["batch"], matching))
    results.put((latencies, stream.posted))


async def run_load(url: str, port: int, token: str, args: dict, matching: bool,
                   report=None) -> tuple[list[float], dict[str, float]]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    loader = context.Process(target=load_process, args=(url, port, token, args, matching, results), daemon=True)
    loader.start()
    begin, waited = time.monotonic(), 0.0
    outcome = None
    while outcome is None:
        try:
            outcome = await asyncio.to_thread(results.get, True, 1.0)
        except queue.Empty:
            if report and time.monotonic() - begin >= waited + 10:
                waited += 10
                await report(waited)
    loader.join()
    return outcome


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1] if len(values) > 1 else (values or [0])[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--baseline", type=float, default=30.0, help="seconds of the baseline stream")
    parser.add_argument("--match", type=float, default=0.1, help="share of events that match a trigger")
    parser.add_argument("--batch", type=int, default=50, help="events per POST")
    parser.add_argument("--pass-spacing", type=float, default=TriggerInput.pass_spacing_seconds,
                        help="TriggerInput.pass_spacing_seconds: how often a campaign's passes may start")
    parser.add_argument("--postgres", metavar="URL",
                        help="a PostgreSQL database to use instead of SQLite (a schema of its own, dropped after)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, (postgres_url(args.postgres) if args.postgres
                                                   else nullcontext(f"sqlite:///{folder}/events.db")) as url:
        started = time.perf_counter()
        store, created = prepare(url, args.subscribers)
        print(f"    {'PostgreSQL' if args.postgres else 'SQLite'}: {args.subscribers:,} subscribers, {CAMPAIGNS} "
              f"trigger campaigns, prepared in "
              f"{time.perf_counter() - started:.0f} s (not counted)", flush=True)
        env = await WorkflowEnvironment.start_local(dev_server_existing_path=installed_binary("temporal"),
                                                    dev_server_extra_args=dev_server_flags(), ui=False)
        task_queue = f"bench-{uuid.uuid4().hex[:6]}"
        sim = Simulator(seed=1, customers=SILENT)
        stamped = Stamped(sim.transport())
        adapters = {"sms": SmsAdapter("http://sms", stamped, rate_per_second=100_000),
                    "outbound": OutboundAdapter("http://callcentre", sim.transport())}
        worker = build_worker(env.client, store.engine, adapters, task_queue=task_queue, batch_size=1000)
        port = free_port()
        log = Path(folder) / "api.log"
        server = api_process(url, port, env.client.service_client.config.target_host, task_queue, log)
        producer = tokens.create(store.engine, "bench producer", "producer")
        try:
            async with worker, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as api:
                await until_up(api, log)
                handles = [await start_campaign(env.client, c, task_queue, pass_spacing_seconds=args.pass_spacing)
                           for c in created]
                for campaign in created:  # (a) paused: events are stored and checked, nobody enters
                    campaigns.set_status(store.engine, campaign.id, CampaignStatus.PAUSED)
                print(f"(a) baseline: {args.rate:g} events/s for {args.baseline:g} s, campaigns paused ...", flush=True)
                load = {"match": args.match, "rate": args.rate, "seconds": args.baseline, "batch": args.batch}
                base, _ = await run_load(url, port, producer, load, matching=False)
                print(f"    POST /v1/events ({args.batch} events) p50 {pct(base, 50):.1f} ms, "
                      f"p99 {pct(base, 99):.1f} ms", flush=True)
                for campaign in created:
                    campaigns.set_status(store.engine, campaign.id, CampaignStatus.RUNNING)
                print(f"(b) {args.rate:g} events/s for {args.seconds:g} s, {args.match:.0%} matching, "
                      f"{CAMPAIGNS} campaigns running ...", flush=True)
                backlog: list[int] = []
                last = [0, 0.0]

                async def report(elapsed: float) -> None:
                    with store.engine.connect() as conn:
                        due = conn.execute(text(
                            "SELECT count(*) FROM campaign_members WHERE due_at IS NOT NULL AND due_at <= :now "
                            "AND at_node = 'addon_sms'").bindparams(*utc_binds("now")),
                            {"now": datetime.now(UTC)}).scalar_one()
                        received = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
                    backlog.append(due)
                    rate = (received - last[0]) / (elapsed - last[1]) if last[0] else 0
                    last[:] = [received, elapsed]
                    print(f"    t+{elapsed:3.0f} s: {rate:,.0f} events/s stored, {len(stamped.first_sms):,} first SMS "
                          f"sent, {due:,} members due and waiting", flush=True)

                load = {**load, "seconds": args.seconds}
                posts, posted = await run_load(url, port, producer, load, True, report)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and len(set(posted) - set(stamped.first_sms)):
                    await asyncio.sleep(0.2)
                delays = [(stamped.first_sms[m] - t) * 1000 for m, t in posted.items() if m in stamped.first_sms]
                missing = len(posted) - len(delays)
                print(f"    POST p99 {pct(posts, 99):.1f} ms; {len(posted):,} matching events, "
                      f"event -> first SMS p50 {pct(delays, 50):.0f} ms, p99 {pct(delays, 99):.0f} ms, "
                      f"{missing} without one", flush=True)
                for handle in handles:
                    await handle.signal("cancel")
                for handle in handles:
                    await handle.result()
        finally:
            server.terminate()
            server.wait()
            await env.shutdown()
            store.close()
    print(f"\nevents: {args.rate:g}/s for {args.seconds:g} s, event -> first contact p99 {pct(delays, 99):.0f} ms "
          f"(goal <= 1000 ms), backlog first/last sample {backlog[0] if backlog else 0}/{backlog[-1] if backlog else 0} "
          f"(goal: no growth); POST /v1/events p99 {pct(posts, 99):.1f} ms vs {pct(base, 99):.1f} ms "
          "with no campaign running")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until_up(api: httpx.AsyncClient, log: Path) -> None:
    for _ in range(600):
        try:
            if (await api.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"the API did not come up:\n{log.read_text()}")


if __name__ == "__main__":
    asyncio.run(main())
