"""Benchmark: CPC routing against fixed waves and a random channel, on customers whose
preferences are known.

Synthetic subscribers each have a hidden favourite channel (they answer SMS, come to the
hall, or pick up an agent's call; elsewhere they seldom answer), a hidden liking for the
offer (the chance that an answer is a yes, higher on the phone, where an agent can
explain) and a chance of ordering it from BOSS on their own anyway. The simulator's
customers answer by that; in the hall, customers with a hall habit walk in while the
offer window is open and the agent's screen shows it.

The same monthly campaign (the ringback-tone offer, 10% held out) runs three ways, each
on its own store with the same customers, over `--rounds` rounds on the real engine
(time-skipping Temporal server, worker, simulator over httpx.MockTransport):

- fixed waves: SMS → wait → hall window → wait → outbound call for whoever is left;
- random channel: one contact per customer through a channel drawn at random (a
  best-channel split with no model);
- CPC: the same split routed by the CPC model, refitted before every round, from a cold
  start (round 1 has no history: a random channel) and, as an operator switching to it
  would, on a ledger that already holds one fixed-wave campaign.

Printed per round: contacts, acceptances, acceptances per contact, cost per acceptance
(SMS 0.05, a call 3.00, the hall free), and the effect report's uplift with its 95%
interval against the true effect the hidden preferences imply. Goal: by round 3, CPC
≥ 1.5× the acceptances per contact of the fixed waves, and every uplift interval holding
the true effect.

    .venv/bin/python bench/cpc_sim.py [--subscribers 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from channel_adapters.outbound import OutboundAdapter
from channel_adapters.simulator import Simulator
from channel_adapters.sms import SmsAdapter
from touchwave import boss_feed, campaigns, cpc, effect
from touchwave.config import TEMPLATES_DIR
from touchwave.errors import UserError
from touchwave.policy.channels import QUIET_CHANNELS, set_rules
from touchwave.responses import record_response
from touchwave.segments.synthetic import load_population
from touchwave.stack import installed_binary
from touchwave.store import Store, db
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import Outcome
from touchwave.store.templates import upload
from touchwave.temporal import register_search_attributes, start_campaign
from touchwave.worker import build_worker

CHANNELS = ("sms", "hall", "outbound")
STRATEGIES = ("fixed", "random", "cpc", "cpc+history")
COSTS = {"sms": 0.05, "outbound": 3.0, "hall": 0.0}
#: how much better a yes comes through each channel (an agent explains; an SMS does not)
FIT = {"sms": 0.6, "hall": 1.0, "outbound": 1.3}
AUDIENCE = {"rule": {"field": "arpu", "op": "ge", "value": 0}}


def _unit(*parts: object) -> float:
    """A repeatable uniform number in [0, 1) for the parts (the hidden truth and the dice)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Customer:
    favourite: str
    answers: dict[str, float]
    liking: float
    organic: float

    def takes(self, channel: str) -> float:
        return min(1.0, self.liking * FIT[channel])

    def accepts(self, channel: str) -> float:
        return self.answers[channel] * self.takes(channel)


def customer(msisdn: str) -> Customer:
    favourite = random.Random(msisdn).choices(CHANNELS, weights=(0.5, 0.25, 0.25))[0]
    answers = {c: (0.35 + 0.3 * _unit(msisdn, c)) if c == favourite else 0.02 + 0.03 * _unit(msisdn, c)
               for c in CHANNELS}
    return Customer(favourite, answers, 0.2 + 0.5 * _unit(msisdn, "liking"), 0.01 + 0.03 * _unit(msisdn, "organic"))


class Customers:
    """The simulator's customers: answers by each one's hidden preferences."""

    def __init__(self, round_: int) -> None:
        self.round = round_

    def answer(self, channel: str, rng: random.Random, msisdn: str | None = None,
               campaign_id: int | None = None) -> str | None:
        return roll(customer(msisdn), channel, msisdn, self.round)


def roll(person: Customer, channel: str, msisdn: str, round_: int) -> str | None:
    if _unit(msisdn, round_, channel, "answer") >= person.answers[channel]:
        return None
    return "accepted" if _unit(msisdn, round_, channel, "take") < person.takes(channel) else "declined"


def template(strategy: str) -> dict:
    common = {"business_line": "value_added", "priority": 40, "duration": "P21D", "audience": AUDIENCE,
              "control_share": 0.1, "title": f"RBT {strategy}"}
    step = {"offer": "RBT_DOWNLOAD"}
    if strategy == "fixed":
        return {**common, "name": "rbt-fixed", "nodes": [
            {"id": "sms", "type": "sms", **step, "script": "RBT_SMS"},
            {"id": "w1", "type": "wait", "wait": "P3D"},
            {"id": "hall", "type": "hall", **step, "script": "RBT_HALL", "window": "P7D"},
            {"id": "w2", "type": "wait", "wait": "P7D"},
            {"id": "call", "type": "outbound", **step, "script": "RBT_OUTBOUND"},
            {"id": "w3", "type": "wait", "wait": "P3D"},
            {"id": "done", "type": "end"}],
            "edges": [{"from": a, "to": b} for a, b in
                      (("sms", "w1"), ("w1", "hall"), ("hall", "w2"), ("w2", "call"), ("call", "w3"), ("w3", "done"))]}
    return {**common, "name": f"rbt-{strategy}", "nodes": [
        {"id": "pick", "type": "split", "by": "best_channel"},
        {"id": "sms", "type": "sms", **step, "script": "RBT_SMS"},
        {"id": "hall", "type": "hall", **step, "script": "RBT_HALL", "window": "P7D"},
        {"id": "call", "type": "outbound", **step, "script": "RBT_OUTBOUND"},
        {"id": "collect", "type": "wait", "wait": "P10D"},
        {"id": "done", "type": "end"}],
        "edges": [{"from": "pick", "to": "sms", "when": ["sms"]}, {"from": "pick", "to": "hall", "when": ["hall"]},
                  {"from": "pick", "to": "call", "when": ["outbound"]}, {"from": "sms", "to": "collect"},
                  {"from": "hall", "to": "collect"}, {"from": "call", "to": "collect"},
                  {"from": "collect", "to": "done"}]}


def prepare(url: str, subscribers: int, strategies: tuple[str, ...]) -> Store:
    store = Store.open(url, migrated=False)
    db.upgrade(store.engine)
    for channel in QUIET_CHANNELS:
        set_rules(store.engine, channel, quiet=None)
    for channel, cost in COSTS.items():
        set_rules(store.engine, channel, unit_cost=cost)
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(TEMPLATES_DIR / "catalog" / "offers.json"))
        for strategy in strategies:
            upload(session, template(strategy), author="bench")
    load_population(store.engine, subscribers, seed=21, today=date(2026, 11, 24))
    return store


@dataclass
class Round:
    contacts: int
    accepted: int
    cost: float
    uplift: effect.Uplift
    truth: float


class Play:
    """The customers' side of one running campaign: answers to SMS and calls are posted
    as the gateways would, hall regulars walk in once their window opens."""

    def __init__(self, store: Store, sim: Simulator, campaign_id: int, round_: int) -> None:
        self.store, self.sim, self.campaign_id, self.round = store, sim, campaign_id, round_
        self.visited: set[str] = set()

    def step(self) -> int:
        self.sim.dial_queued()
        done = 0
        for outcome in self.sim.drain_outcomes():
            done += self._answer(outcome.msisdn, outcome.outcome, outcome.channel)
        with self.store.engine.connect() as conn:
            shown = conn.execute(text(
                "SELECT s.msisdn FROM contact_ledger c JOIN subscribers s ON s.id = c.subscriber_id "
                "WHERE c.campaign_id = :c AND c.channel = 'hall' AND c.status = 'open'"), {"c": self.campaign_id}).scalars()
            walk_ins = [m for m in shown if m not in self.visited]
        for msisdn in walk_ins:
            self.visited.add(msisdn)
            answer = roll(customer(msisdn), "hall", msisdn, self.round)
            if answer:
                done += self._answer(msisdn, answer, "hall")
        return done

    def _answer(self, msisdn: str, outcome: str, channel: str) -> int:
        try:
            record_response(self.store.engine, self.campaign_id, msisdn, Outcome(outcome), channel)
        except UserError:  # answered already (completion won): the gateway's late reply
            return 0
        return 1


async def quiet(store: Store, campaign_id: int) -> None:
    """Until the step at hand has done its work: no contact in flight, the ledger still."""
    last, still = -1, 0
    while still < 3:
        await asyncio.sleep(0.1)
        with store.engine.connect() as conn:
            count, busy = conn.execute(text(
                "SELECT count(*), sum(CASE WHEN status IN ('claimed', 'sending') THEN 1 ELSE 0 END) "
                "FROM contact_ledger WHERE campaign_id = :c"), {"c": campaign_id}).one()
        still = still + 1 if (count, busy or 0) == (last, 0) else 0
        last = count


async def run_round(env: WorkflowEnvironment, store: Store, strategy: str, round_: int,
                    subscriber_strength: float = cpc.SUBSCRIBER_STRENGTH) -> Round:
    """One month's campaign run by `strategy` (fixed, random or cpc; cpc refits first)."""
    if strategy == "cpc":
        cpc.fit(store.engine, subscriber_strength=subscriber_strength)
    sim = Simulator(seed=round_, customers=Customers(round_))
    adapters = {"sms": SmsAdapter("http://sms", sim.transport(), rate_per_second=100_000),
                "outbound": OutboundAdapter("http://callcentre", sim.transport())}
    campaign = campaigns.create(store, f"rbt-{strategy}", created_by="bench", name=f"{strategy} round {round_}")
    queue = f"cpc-{uuid.uuid4().hex[:6]}"
    play = Play(store, sim, campaign.id, round_)
    async with build_worker(env.client, store.engine, adapters, task_queue=queue, batch_size=1000):
        handle = await start_campaign(env.client, campaign, queue, shard_size=50_000,
                                      workflow_id=f"{campaign.workflow_id}-{strategy}-{uuid.uuid4().hex[:4]}")
        with env.auto_time_skipping_disabled():
            while True:
                await quiet(store, campaign.id)
                while play.step():
                    pass
                description = await handle.describe()
                if description.status.name != "RUNNING":
                    break
                await env.sleep(timedelta(hours=12))
        await handle.result()
        # BOSS: some customers of either group ordered the offer on their own this month
        now = datetime.now(UTC)
        with store.engine.connect() as conn:
            everyone = conn.execute(text("SELECT s.msisdn FROM campaign_members m JOIN subscribers s "
                                         "ON s.id = m.subscriber_id WHERE m.campaign_id = :c"),
                                    {"c": campaign.id}).scalars().all()
        boss_feed.record(store.engine, [boss_feed.FeedOrder(f"b{strategy}{round_}-{m}", m, "ringback_tone", now)
                                        for m in everyone if _unit(m, round_, "organic") < customer(m).organic])
    report = effect.report(store, campaign.id)
    return Round(sum(s.contacted for s in report.steps), report.treated.accepted, report.cost or 0.0,
                 report.uplift, truth(store, campaign.id, strategy))


def truth(store: Store, campaign_id: int, strategy: str) -> float:
    """The effect the hidden preferences imply for the treated members as routed:
    mean over them of P(no organic order) × P(they take the offer in the campaign)."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT s.msisdn, m.route FROM campaign_members m JOIN subscribers s "
                                 "ON s.id = m.subscriber_id WHERE m.campaign_id = :c AND NOT m.control"),
                            {"c": campaign_id}).all()
    route_channel = {"sms": "sms", "hall": "hall", "call": "outbound"}
    total = 0.0
    for msisdn, route in rows:
        person = customer(msisdn)
        if strategy == "fixed":  # each wave reaches those who did not answer the one before
            take = person.accepts("sms") + (1 - person.answers["sms"]) * (
                person.accepts("hall") + (1 - person.answers["hall"]) * person.accepts("outbound"))
        else:
            take = person.accepts(route_channel[route]) if route in route_channel else 0.0
        total += (1 - person.organic) * take
    return total / len(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--subscriber-strength", type=float, default=cpc.SUBSCRIBER_STRENGTH,
                        help="pseudo-trials of the plan's rate a subscriber's CPC rates start from")
    parser.add_argument("--only", choices=STRATEGIES, action="append",
                        help="run only these strategies (default: all three)")
    args = parser.parse_args()
    started = time.perf_counter()
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=installed_binary("temporal-test-server"))
    await register_search_attributes(env.client)
    results: dict[str, list[Round]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            for strategy in args.only or STRATEGIES:
                # cpc+history: the operator's ledger already holds one fixed-wave campaign
                # (round 0, not counted) when CPC routing takes over
                runs = ["fixed", *["cpc"] * args.rounds] if strategy == "cpc+history" else [strategy] * args.rounds
                store = prepare(f"sqlite:///{folder}/{strategy.replace('+', '_')}.db", args.subscribers,
                                tuple(dict.fromkeys(runs)))
                results[strategy] = []
                for round_, run in enumerate(runs, start=1 if len(runs) == args.rounds else 0):
                    r = await run_round(env, store, run, round_, args.subscriber_strength)
                    inside = r.uplift.low <= r.truth <= r.uplift.high
                    label = "(history, not counted)" if round_ == 0 else ""
                    print(f"  {strategy:<12} round {round_}: {r.contacts:>6,} contacts, {r.accepted:>5,} accepted, "
                          f"{r.accepted / max(r.contacts, 1):.3f} per contact, cost/acceptance "
                          f"{r.cost / max(r.accepted, 1):6.2f}; uplift {r.uplift.difference * 100:+.2f} pts "
                          f"[{r.uplift.low * 100:+.2f}, {r.uplift.high * 100:+.2f}] vs true {r.truth * 100:+.2f} "
                          f"{'(inside)' if inside else '(OUTSIDE)'} {label}", flush=True)
                    if round_:
                        results[strategy].append(r)
                store.close()
    finally:
        await env.shutdown()
    last = {s: rs[-1] for s, rs in results.items()}
    per_contact = {s: last[s].accepted / max(last[s].contacts, 1) if s in last else float("nan") for s in STRATEGIES}
    covered = sum(r.uplift.low <= r.truth <= r.uplift.high for rs in results.values() for r in rs)
    total = sum(len(rs) for rs in results.values())
    fixed = per_contact["fixed"]
    print(f"\ncpc_sim: {args.subscribers:,} subscribers, round {args.rounds}, acceptances per contact: fixed waves "
          f"{fixed:.3f}, random {per_contact['random']:.3f}, CPC from a cold start {per_contact['cpc']:.3f} "
          f"= {per_contact['cpc'] / fixed:.2f}x fixed, CPC on one campaign's history {per_contact['cpc+history']:.3f} "
          f"= {per_contact['cpc+history'] / fixed:.2f}x fixed (goal >= 1.5x); uplift intervals holding the true "
          f"effect: {covered}/{total}; {time.perf_counter() - started:.0f} s")

if __name__ == "__main__":
    asyncio.run(main())
