"""The order outbox: an accepted offer becomes an order for BOSS in the answer's own
transaction, and the dispatcher delivers it exactly once, at BOSS's pace."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text

from channel_adapters.boss import BossAdapter
from channel_adapters.simulator import Simulator
from touchwave import contacts, orders
from touchwave.dispatcher import dispatch_once
from touchwave.store.models import Outcome, utcnow

from .test_waves import members, seed


def boss(sim: Simulator, **options) -> BossAdapter:
    return BossAdapter("http://boss", sim.transport(), sleep=lambda _s: None, backoff_seconds=0, **options)


def outbox(store) -> list[tuple]:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT msisdn, offer, channel, status, attempts FROM orders ORDER BY id")).all()


def test_an_accepted_offer_is_an_order_in_the_same_transaction_and_only_once(store):
    campaign = seed(store)
    yes, no, later = members(store, campaign.id)[:3]
    contacts.respond(store.engine, campaign.id, yes, Outcome.ACCEPTED, "hall", agent="a1")
    contacts.respond(store.engine, campaign.id, yes, Outcome.ACCEPTED, "hall", agent="a1")  # the agent clicks twice
    contacts.respond(store.engine, campaign.id, no, Outcome.DECLINED, "sms")
    contacts.respond(store.engine, campaign.id, later, Outcome.CONSIDERING, "hotline")
    assert outbox(store) == [(yes, "RBT_DOWNLOAD", "hall", "pending", 0)]


def test_the_dispatcher_delivers_each_order_once(store):
    campaign = seed(store)
    buyers = members(store, campaign.id)[:30]
    for msisdn in buyers:
        contacts.respond(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "outbound")
    sim = Simulator()
    done = dispatch_once(store.engine, boss(sim), limit=20)
    assert (done.taken, done.delivered) == (20, 20)
    assert dispatch_once(store.engine, boss(sim), limit=20).delivered == 10
    assert dispatch_once(store.engine, boss(sim)).taken == 0
    assert sim.ordered == Counter({(m, "RBT_DOWNLOAD"): 1 for m in buyers})
    assert {row.status for row in orders.listed(store.engine)} == {"delivered"}


class DiesAfterSubmitting(BossAdapter):
    """BOSS takes the batch, then the dispatcher's process dies before it writes that down."""

    def submit(self, batch):
        super().submit(batch)
        raise SystemExit("dispatcher killed")


def test_a_dispatcher_killed_mid_batch_loses_no_order_and_duplicates_none(store):
    campaign = seed(store)
    buyers = members(store, campaign.id)[:50]
    for msisdn in buyers:
        contacts.respond(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "sms")
    sim = Simulator()
    dying = DiesAfterSubmitting("http://boss", sim.transport())
    with pytest.raises(SystemExit):
        dispatch_once(store.engine, dying, limit=40)
    assert Counter(row[3] for row in outbox(store)) == {"sending": 40, "pending": 10}
    # another dispatcher: the dead one's orders wait for its lease to run out, then go again
    now = utcnow()
    assert dispatch_once(store.engine, boss(sim), now=now).taken == 10
    again = dispatch_once(store.engine, boss(sim), now=now + orders.LEASE + timedelta(seconds=1))
    assert (again.taken, again.delivered) == (40, 40)
    assert sim.ordered == Counter({(m, "RBT_DOWNLOAD"): 1 for m in buyers})
    assert {row[3] for row in outbox(store)} == {"delivered"}


def test_a_refused_order_is_visible_with_its_reason_and_can_be_retried(store):
    campaign = seed(store)
    buyer = members(store, campaign.id)[0]
    contacts.respond(store.engine, campaign.id, buyer, Outcome.ACCEPTED, "hall")
    sim = Simulator()
    sim.refuse_offers.add("RBT_DOWNLOAD")
    assert dispatch_once(store.engine, boss(sim)).failed == 1
    [failed] = orders.listed(store.engine, "failed")
    assert failed.last_error == "offer RBT_DOWNLOAD not orderable"
    sim.refuse_offers.clear()  # BOSS fixed: send it again
    assert orders.retry(store.engine, [failed.id]) == 1
    assert dispatch_once(store.engine, boss(sim)).delivered == 1


def test_boss_down_backs_off_and_gives_up_after_the_last_attempt(store):
    campaign = seed(store)
    contacts.respond(store.engine, campaign.id, members(store, campaign.id)[0], Outcome.ACCEPTED, "hall")
    sim = Simulator(fail_next=10_000)
    now = utcnow()
    for attempt in range(1, orders.MAX_ATTEMPTS + 1):
        assert dispatch_once(store.engine, boss(sim, max_attempts=1), now=now).retrying == 1
        [(_, _, _, status, attempts)] = outbox(store)
        assert attempts == attempt
        if status == "pending":  # not due again before its backoff
            assert dispatch_once(store.engine, boss(sim, max_attempts=1), now=now).taken == 0
            now += orders.BACKOFF * 2 ** attempt
    assert status == "failed" and "/v1/orders kept failing" in orders.listed(store.engine, "failed")[0].last_error


def test_orders_go_to_boss_no_faster_than_its_rate(store):
    campaign = seed(store)
    for msisdn in members(store, campaign.id)[:100]:
        contacts.respond(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "sms")
    # (when a wait was asked for, how long): the waits are not slept, so the pacer's
    # clock runs on meanwhile and each wait is what is left of the batch's slot
    waits: list[tuple[float, float]] = []
    paced = BossAdapter("http://boss", Simulator().transport(), rate_per_second=50,
                        sleep=lambda seconds: waits.append((time.monotonic(), seconds)))
    started = time.monotonic()
    while dispatch_once(store.engine, paced, limit=25).taken:
        pass
    # four batches of 25 at 50 orders/s: the last may not start before 1.5 s after the first
    asked_at, wait = waits[-1]
    assert len(waits) == 3 and 1.5 - 0.01 <= asked_at + wait - started < 2.0
