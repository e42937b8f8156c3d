"""Benchmark: what the contact policy costs the bulk waves.

One process, one SQLite store, channels on the simulator.
The same population passes the same three steps (SMS, hall window, outbound) twice:

(a) policy off: the bulk-wave benchmark as issue 3 runs it — one campaign over everyone,
    no do-not-disturb entry, no cap, no other campaign to arbitrate with — cut into as
    many shards as (b) has campaigns, so both run ten shards at once;
(b) policy on: ten campaigns at once, each over a tenth of the population; 1,000,000 do-not-disturb entries (global, per channel and per business
    line; 5% of them name subscribers, the rest numbers the operator does not serve, as
    regulators' lists do), three caps (2 SMS per 7 days, 1 call per 30 days, 4 contacts
    of any kind per calendar month) and a month of contact history per subscriber for
    them to count; ten campaigns running, so every claim also arbitrates.

On the Temporal dev server (the waits shrunk to milliseconds). Both print customer-steps/s (a member passing a step, contacted or suppressed); the goal
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
from touchwave.store.models import Contact, DndSource
from touchwave.temporal import dev_server_flags, start_campaign
from touchwave.worker import build_worker

CAMPAIGNS = 10
#: a day of the template's waits lasts 86 ms
TIME_SCALE = 1e-6
SCOPES = ("global", "channel:sms", "channel:outbound", "business_line:value_added")


def campaigns_over(store, template: str, parts: int) -> list[campaigns.CampaignInfo]:
    """`parts` campaigns of `template` sharing the population out: the i-th over the
    subscribers whose id is i modulo `parts` (one part: everyone)."""
    made = []
    for i in range(parts):
        campaign = campaigns.create(store, template, created_by="bench")
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM campaign_members WHERE campaign_id = :c"), {"c": campaign.id})
            members = conn.execute(text(
                "INSERT INTO campaign_members (campaign_id, subscriber_id, cohort, state, updated_at) "
                "SELECT :c, id, 0, 'pending', CURRENT_TIMESTAMP FROM subscribers WHERE id % :n = :i"),
                {"c": campaign.id, "n": parts, "i": i}).rowcount
        made.append(dataclasses.replace(campaign, members=members))
    return made


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
    """The do-not-disturb list, the caps, and the history they count."""
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
    with store.engine.begin() as conn:
        # everything so far happened long ago: the caps start from the history below
        conn.execute(text("UPDATE contact_ledger SET at = :old").bindparams(bindparam("old", type_=DateTime(True))),
                     {"old": datetime.now(UTC) - timedelta(days=60)})
        # and each subscriber had one SMS from an earlier campaign this week
        conn.execute(text(
            "INSERT INTO contact_ledger (campaign_id, step_id, subscriber_id, channel, address, attempt, "
            "idempotency_key, status, at) SELECT 1, 'history', id, 'sms', msisdn, 1, 'history:' || id, 'delivered', "
            ":at FROM subscribers").bindparams(bindparam("at", type_=DateTime(True))),
            {"at": datetime.now(UTC) - timedelta(days=2)})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=200_000, help="the population; each campaign has a tenth")
    parser.add_argument("--dnd", type=int, default=1_000_000, help="do-not-disturb entries")
    args = parser.parse_args()

    # the dev server, not the time-skipping one: with campaigns at different steps, the
    # test server skips one's three-day wait while another's activities run, and times
    # them out; here the waits are shrunk instead (TIME_SCALE)
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=installed_binary("temporal"),
                                                dev_server_extra_args=dev_server_flags(), ui=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            store, first = prepared_store(folder, args.members)
            print(f"    loaded {args.members:,} subscribers in {time.perf_counter() - started:.1f} s (not counted)",
                  flush=True)
            shard_size = -(-args.members // CAMPAIGNS)
            print(f"(a) policy off: one campaign over all {args.members:,} subscribers in {CAMPAIGNS} shards ...",
                  flush=True)
            off, _ = await run_wave(env, store, campaigns_over(store, first.template, 1), shard_size)
            print(f"    {off:,.0f} customer-steps/s", flush=True)
            install_policy(store, args.dnd)
            print(f"(b) policy on: {args.dnd:,} do-not-disturb entries, 3 caps, {CAMPAIGNS} campaigns arbitrating ...",
                  flush=True)
            on, suppressed = await run_wave(env, store, campaigns_over(store, first.template, CAMPAIGNS), shard_size)
            print(f"    {on:,.0f} customer-steps/s ({suppressed:,} contacts suppressed by the policy)", flush=True)
            store.close()
    finally:
        await env.shutdown()
    print(f"\ncontact policy: (b) {on:,.0f} customer-steps/s with the policy vs (a) {off:,.0f} without = "
          f"{on / off:.0%}; goal >= 80%")


if __name__ == "__main__":
    asyncio.run(main())
