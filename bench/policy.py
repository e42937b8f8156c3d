"""Benchmark: what the contact policy costs the bulk waves.

One process, SQLite stores, channels on the simulator, the Temporal dev server (the
template's waits shrunk to milliseconds). The bulk-wave benchmark's campaign — one
campaign over the whole population, three steps (SMS, hall window, outbound), cut into
ten shards — runs twice, each time on a fresh store holding the same ledger: a month
of history (one SMS per subscriber two days ago) and nine other campaigns that each sent
an SMS today to 1% of the subscribers.

(a) policy off: no do-not-disturb entry, no frequency cap, the nine other campaigns
    finished (nothing to arbitrate with);
(b) policy on: 1,000,000 do-not-disturb entries (global, per channel and per business
    line; 5% of them name subscribers, the rest numbers the operator does not serve, as
    regulators' lists do), three caps (2 SMS per 7 days, 1 call per 30 days, 4 contacts
    of any kind per calendar month) counted from that history, and the nine other
    campaigns running: ten running campaigns, so every claim also arbitrates.

Both print customer-steps/s (a member passing a step, contacted or suppressed); the goal
is (b) >= 80% of (a). Quiet hours are lifted (the run may fall at night); capacity is
left unlimited (it spreads steps over days by design).

    .venv/bin/python bench/policy.py [--members 200000] [--dnd 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.types import DateTime
from temporalio.testing import WorkflowEnvironment

from bulk_waves import SILENT, _with_progress, prepared_store
from channel_adapters.outbound import OutboundAdapter
from channel_adapters.simulator import Simulator
from channel_adapters.sms import SmsAdapter
from touchwave import campaigns
from touchwave.policy import caps, dnd
from touchwave.stack import installed_binary
from touchwave.store.models import CampaignStatus, Contact, DndSource
from touchwave.temporal import dev_server_flags, start_campaign
from touchwave.worker import build_worker

CAMPAIGNS = 10
#: a day of the template's waits lasts 86 ms
TIME_SCALE = 1e-6
SCOPES = ("global", "channel:sms", "channel:outbound", "business_line:value_added")


def everyone(store, template: str) -> campaigns.CampaignInfo:
    """A campaign of `template` over the whole population."""
    campaign = campaigns.create(store, template, created_by="bench")
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM campaign_members WHERE campaign_id = :c"), {"c": campaign.id})
        members = conn.execute(text(
            "INSERT INTO campaign_members (campaign_id, subscriber_id, cohort, state, updated_at) "
            "SELECT :c, id, 0, 'pending', CURRENT_TIMESTAMP FROM subscribers"), {"c": campaign.id}).rowcount
    return dataclasses.replace(campaign, members=members)


def history(store, template: str, running: bool) -> None:
    """The ledger both runs start from: one SMS per subscriber two days ago, and nine
    other campaigns (running or not) that each sent an SMS today to 1% of subscribers."""
    at = bindparam("at", type_=DateTime(True))
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO contact_ledger (campaign_id, step_id, subscriber_id, channel, address, attempt, "
            "idempotency_key, status, at) SELECT 1, 'history', id, 'sms', msisdn, 1, 'history:' || id, 'delivered', "
            ":at FROM subscribers").bindparams(at), {"at": now - timedelta(days=2)})
    for i in range(CAMPAIGNS - 1):
        rival = campaigns.create(store, template, created_by="bench")
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM campaign_members WHERE campaign_id = :c"), {"c": rival.id})
            conn.execute(text(
                "INSERT INTO contact_ledger (campaign_id, step_id, subscriber_id, channel, address, attempt, "
                "idempotency_key, status, at) SELECT :c, 'sms', id, 'sms', msisdn, 1, :c || ':sms:' || id, "
                "'delivered', :at FROM subscribers WHERE id % 100 = :i").bindparams(at),
                {"c": rival.id, "i": i, "at": now - timedelta(hours=1)})
        campaigns.set_status(store.engine, rival.id, CampaignStatus.RUNNING if running else CampaignStatus.FINISHED)


async def run_wave(env, store, made: list[campaigns.CampaignInfo], shard_size: int) -> tuple[float, int]:
    """Run the campaigns at once; customer-steps/s and contacts suppressed."""
    sim = Simulator(customers=SILENT)
    adapters = {"sms": SmsAdapter("http://sms", sim.transport()), "outbound": OutboundAdapter("http://cc", sim.transport())}
    queue = f"bench-policy-{uuid.uuid4().hex[:6]}"
    with store.engine.connect() as conn:
        before = conn.scalar(select(func.count()).select_from(Contact))
    started = time.perf_counter()
    async with build_worker(env.client, store.engine, adapters, task_queue=queue, batch_size=2000, threads=8):
        handles = [await start_campaign(env.client, c, queue, shard_size=shard_size, time_scale=TIME_SCALE, workflow_id=f"campaign-{c.id}-{queue}")
                   for c in made]
        results = await asyncio.gather(*(_with_progress(h) for h in handles))
    elapsed = time.perf_counter() - started
    members = sum(c.members for c in made)
    with store.engine.connect() as conn:
        ledger = conn.scalar(select(func.count()).select_from(Contact)) - before
        suppressed = conn.scalar(text("SELECT count(*) FROM contact_ledger WHERE status = 'suppressed' "
                                      "AND campaign_id IN :ids").bindparams(bindparam("ids", expanding=True)),
                                 {"ids": [c.id for c in made]})
    assert all(r.status == "finished" for r in results) and ledger == members * 3, (ledger, members)
    return members * 3 / elapsed, suppressed


def install_policy(store, entries: int) -> None:
    """The do-not-disturb list and the caps."""
    with store.engine.connect() as conn:
        numbers = list(conn.execute(text("SELECT msisdn FROM subscribers ORDER BY id")).scalars())
    ours = numbers[:: max(1, round(len(numbers) / (entries * 0.05)))][: int(entries * 0.05)]
    outsiders = (f"199{n:08d}" for n in range(entries - len(ours)))
    listed = [*ours, *outsiders]
    started = time.perf_counter()
    dnd.add(store.engine, (dnd.entry(m, SCOPES[i % len(SCOPES)], DndSource.REGULATOR.value)
                           for i, m in enumerate(listed)), created_by="bench", batch_size=5000)
    print(f"    imported {len(listed):,} do-not-disturb entries ({len(ours):,} of them subscribers) "
          f"in {time.perf_counter() - started:.1f} s (not counted)", flush=True)
    for new in (caps.cap("sms_weekly", "sms", 2, "P7D"), caps.cap("calls_monthly", "outbound", 1, "P30D"),
                caps.cap("any_monthly", None, 4, "month")):
        caps.set_cap(store.engine, new)


async def measured(env, args, shard_size: int, policy: bool) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        store, first = prepared_store(folder, args.members)
        history(store, first.template, running=policy)
        if policy:
            install_policy(store, args.dnd)
        print(f"    prepared {args.members:,} subscribers and their history in {time.perf_counter() - started:.1f} s "
              "(not counted)", flush=True)
        try:
            return await run_wave(env, store, [everyone(store, first.template)], shard_size)
        finally:
            store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=200_000, help="the population (and the campaign's audience)")
    parser.add_argument("--dnd", type=int, default=1_000_000, help="do-not-disturb entries")
    args = parser.parse_args()

    # the dev server, not the time-skipping one: with campaigns at different steps, the
    # test server skips one's three-day wait while another's activities run, and times
    # them out; here the waits are shrunk instead (TIME_SCALE)
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=installed_binary("temporal"),
                                                dev_server_extra_args=dev_server_flags(), ui=False)
    shard_size = -(-args.members // CAMPAIGNS)
    try:
        print(f"(a) policy off: one campaign over all {args.members:,} subscribers in {CAMPAIGNS} shards ...",
              flush=True)
        off, _ = await measured(env, args, shard_size, policy=False)
        print(f"    {off:,.0f} customer-steps/s", flush=True)
        print(f"(b) policy on: {args.dnd:,} do-not-disturb entries, 3 caps, {CAMPAIGNS} running campaigns ...",
              flush=True)
        on, suppressed = await measured(env, args, shard_size, policy=True)
        print(f"    {on:,.0f} customer-steps/s ({suppressed:,} contacts suppressed by the policy)", flush=True)
    finally:
        await env.shutdown()
    print(f"\ncontact policy: (b) {on:,.0f} customer-steps/s with the policy vs (a) {off:,.0f} without = "
          f"{on / off:.0%}; goal >= 80%")


if __name__ == "__main__":
    asyncio.run(main())
