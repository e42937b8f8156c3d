"""The CPC model and best-channel routing: thin data stays near the prior, history moves
a subscriber's scores, routing follows the model within capacity and do-not-disturb,
and a best-channel campaign runs end to end."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from touchwave import campaigns, contacts, cpc, routing
from touchwave.contacts import Delivery, Shard
from touchwave.policy import channels, dnd
from touchwave.responses import record_response
from touchwave.store.models import ContactStatus, Outcome
from touchwave.store.templates import upload
from workflows.campaign import CampaignWorkflow

from .conftest import load_example
from .test_waves import CampaignWorker, adapters, ledger, seed, sim, start, until  # noqa: F401 (fixture)


def sms_wave(store, campaign, answers: dict[str, Outcome]) -> list[str]:
    """Send the campaign's SMS to every member and record `answers` (msisdn → outcome)."""
    shard = Shard(campaign.id)
    contacts.claim(store.engine, shard, "sms_broadcast", "sms", None)
    batch = contacts.take_batch(store.engine, shard, "sms_broadcast", 100_000)
    contacts.record(store.engine, campaign.id, batch, [Delivery(o.idempotency_key, ContactStatus.SENT) for o in batch])
    for msisdn, outcome in answers.items():
        record_response(store.engine, campaign.id, msisdn, outcome, "sms")
    return [o.msisdn for o in batch]


def scores(store, table: str, item: str) -> dict[str, float]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text(
            f"SELECT s.msisdn, c.score FROM {table} c JOIN subscribers s ON s.id = c.subscriber_id "
            f"WHERE c.{item.split('=')[0]} = :item"), {"item": item.split("=")[1]}).all())


def rate(store, kind: str, grp: str, item: str) -> float:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT score FROM cpc_rates WHERE kind = :k AND grp = :g AND item = :i"),
                            {"k": kind, "g": grp, "i": item}).scalar_one()


def test_on_thin_data_a_subscriber_stays_near_the_prior(store):
    campaign = seed(store, subscribers=600)
    reached = sms_wave(store, campaign, {})
    first = reached[0]
    record_response(store.engine, campaign.id, first, Outcome.ACCEPTED, "sms")
    fit = cpc.fit(store.engine)
    assert (fit.contacts, fit.answers, fit.acceptances) == (len(reached), 1, 1)
    answer = scores(store, "cpc_subscriber_channel", "channel=sms")
    # one answer in one SMS is not a 100% customer: 1/(1 + 3) of the way from the plan's rate
    with store.engine.connect() as conn:
        plan = conn.execute(text("SELECT plan FROM subscribers WHERE msisdn = :m"), {"m": first}).scalar_one()
    prior = rate(store, "plan_channel", plan, "sms")
    assert answer[first] == pytest.approx((1 + cpc.SUBSCRIBER_STRENGTH * prior) / (1 + cpc.SUBSCRIBER_STRENGTH))
    assert answer[first] < 0.3
    # the silent ones barely move; the rate over every channel is shrunk toward an even
    # 0.5 by one trial, and SMS's toward that
    silent = [v for m, v in answer.items() if m != first]
    assert all(abs(v - prior) < prior for v in silent)
    overall = (1 + 0.5) / (len(reached) + 1)
    assert rate(store, "channel", "", "*") == pytest.approx(overall)
    assert rate(store, "channel", "", "sms") == pytest.approx(
        (1 + cpc.GROUP_STRENGTH * overall) / (len(reached) + cpc.GROUP_STRENGTH))


def test_history_moves_scores_the_way_it_points(store):
    campaign = seed(store, subscribers=600)
    reached = sms_wave(store, campaign, {})
    takers, refusers = reached[:40], reached[40:80]
    for msisdn in takers:
        record_response(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "sms")
    for msisdn in refusers:
        record_response(store.engine, campaign.id, msisdn, Outcome.DECLINED, "sms")
    cpc.fit(store.engine)
    answer = scores(store, "cpc_subscriber_channel", "channel=sms")
    take = scores(store, "cpc_subscriber_product", "product=ringback_tone")
    silent = reached[100]
    assert min(answer[m] for m in takers + refusers) > answer[silent]
    assert min(take[m] for m in takers) > max(take[m] for m in refusers)
    assert silent not in take  # never answered about the product: the plan's rate applies
    assert 0 < rate(store, "product_channel", "ringback_tone", "sms") < 1
    assert "product_channel" in cpc.describe(store.engine)


def best_campaign(store, subscribers: int = 400, share: float = 0.0):
    template = load_example("ringback_best_channel.json")
    template["control_share"] = share
    seed(store, subscribers=subscribers)
    with store.session.begin() as session:
        upload(session, template, author="test")
    return campaigns.create(store, template["name"], created_by="test")


BRANCHES = {"sms": "sms_offer", "hall": "hall_offer", "outbound": "call_offer"}
OFFERS = dict.fromkeys(BRANCHES, "RBT_DOWNLOAD")


def routes(store, campaign_id: int) -> dict[str, str]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT s.msisdn, m.route FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
            "WHERE m.campaign_id = :c AND NOT m.control"), {"c": campaign_id}).all())


def test_with_no_model_members_spread_evenly_and_repeatably_over_the_channels(store):
    campaign = best_campaign(store, subscribers=3000)
    counts = routing.route_best(store.engine, Shard(campaign.id), None, BRANCHES, OFFERS)
    assert set(counts) == set(BRANCHES) and sum(counts.values()) == campaign.members
    assert all(abs(n - campaign.members / 3) < campaign.members * 0.06 for n in counts.values())
    before = routes(store, campaign.id)
    routing.route_best(store.engine, Shard(campaign.id), None, BRANCHES, OFFERS)
    assert routes(store, campaign.id) == before


def test_routing_follows_the_model_within_capacity_and_do_not_disturb(store):
    history = seed(store, subscribers=800)
    reached = sms_wave(store, history, {})
    sms_people = reached[:60]
    for msisdn in sms_people:
        record_response(store.engine, history.id, msisdn, Outcome.ACCEPTED, "sms")
    cpc.fit(store.engine)
    channels.set_rules(store.engine, "outbound", daily_capacity=25)
    blocked = sms_people[0]
    dnd.add(store.engine, [dnd.entry(blocked, "channel:sms", "customer_request")], "test")

    campaign = best_campaign(store, subscribers=800)
    counts = routing.route_best(store.engine, Shard(campaign.id), None, BRANCHES, OFFERS)
    routed = routes(store, campaign.id)
    # those who answered SMS before get SMS, unless do-not-disturb covers them there
    assert all(routed[m] == "sms_offer" for m in sms_people if m != blocked and m in routed)
    assert routed[blocked] != "sms_offer"
    # the call centre takes one day's capacity, no more
    assert counts["outbound"] <= 25
    assert sum(counts.values()) == campaign.members


def test_the_value_objective_weighs_the_channels_unit_costs(store):
    campaign = best_campaign(store, subscribers=600)
    channels.set_rules(store.engine, "outbound", unit_cost=4.0)  # a call costs more than the 5-yuan offer earns
    counts = routing.route_best(store.engine, Shard(campaign.id), None, BRANCHES, OFFERS, objective="value")
    assert "outbound" not in counts and sum(counts.values()) == campaign.members


async def test_a_best_channel_campaign_contacts_each_member_once_in_their_channel(temporal, store, sim):
    history = seed(store, subscribers=500)
    reached = sms_wave(store, history, {})
    for msisdn in reached[:30]:
        record_response(store.engine, history.id, msisdn, Outcome.ACCEPTED, "sms")
    cpc.fit(store.engine)
    campaign = best_campaign(store, subscribers=500, share=0.1)
    worker, handle = await start(temporal, store, sim, campaign)
    async with CampaignWorker(worker, handle):
        outcome = await asyncio.wait_for(handle.result(), 60)
    steps = ledger(store, campaign.id)
    contacted = [m for step in steps.values() for m in step]
    assert len(contacted) == len(set(contacted)) == outcome.members - _held_out(store, campaign.id)
    assert set(steps) <= {"sms_offer", "hall_offer", "call_offer"}
    assert all(steps["sms_offer"].get(m) == "sent" for m in reached[:30] if m in routes(store, campaign.id))
    assert outcome.status == "finished"


def _held_out(store, campaign_id: int) -> int:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM campaign_members WHERE campaign_id = :c AND control"),
                            {"c": campaign_id}).scalar_one()


def test_a_capacity_limited_step_queues_its_most_promising_members_first(store):
    history = seed(store, subscribers=400)
    shard = Shard(history.id)
    contacts.claim(store.engine, shard, "outbound_call", "outbound", None)
    batch = contacts.take_batch(store.engine, shard, "outbound_call", 100_000)
    contacts.record(store.engine, history.id, batch, [Delivery(o.idempotency_key, ContactStatus.SENT) for o in batch])
    keen = [o.msisdn for o in batch[-10:]]  # the highest ids: last in plain claim order
    for msisdn in keen:
        record_response(store.engine, history.id, msisdn, Outcome.ACCEPTED, "outbound")
    cpc.fit(store.engine)
    campaign = campaigns.create(store, history.template, created_by="test")
    contacts.claim(store.engine, Shard(campaign.id), "outbound_call", "outbound", None,
                   rank_for_product="ringback_tone")
    with store.engine.connect() as conn:
        queue = conn.execute(text(
            "SELECT s.msisdn FROM contact_ledger c JOIN subscribers s ON s.id = c.subscriber_id "
            "WHERE c.campaign_id = :c AND c.status = 'claimed' ORDER BY c.id"), {"c": campaign.id}).scalars().all()
    assert set(queue[:len([m for m in keen if m in queue])]) == {m for m in keen if m in queue}
    assert queue[0] in keen
