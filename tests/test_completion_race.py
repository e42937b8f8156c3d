"""Completion racing a dispatch: responses posted while a step claims and sends.

Oracle: right after a customer's answer commits, we look at their contact for the step.
If it was not there yet (or still only claimed), the answer came first — and then that
contact must never reach the channel. Asserted over many races, on every database the
suite runs on (PostgreSQL in CI)."""

from __future__ import annotations

import random
import threading
import time
from datetime import date

from sqlalchemy import text

from touchwave import campaigns, contacts
from touchwave.contacts import Delivery, Shard
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import ContactStatus, Outcome
from touchwave.segments.synthetic import load_population
from touchwave.store.templates import upload

from .conftest import CATALOG_FILE, load_example

ROUNDS = 12
RESPONSES_PER_ROUND = 60


def contact_status(engine, campaign_id: int, msisdn: str, step: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT c.status FROM contact_ledger c JOIN subscribers s ON s.id = c.subscriber_id "
            "WHERE c.campaign_id = :c AND c.step_id = :step AND s.msisdn = :m"),
            {"c": campaign_id, "step": step, "m": msisdn}).scalar()


def dispatch(engine, campaign_id: int, step: str, handed: list[str]) -> None:
    """What the step activity does, with a channel that accepts everything."""
    shard = Shard(campaign_id)
    contacts.claim(engine, shard, step, "outbound", None)
    contacts.recover_step(engine, shard, step)
    after = -1
    while batch := contacts.take_batch(engine, shard, step, 25, after):
        after = batch[-1].subscriber_id
        handed.extend(c.msisdn for c in batch)
        contacts.record(engine, campaign_id, batch, [Delivery(c.idempotency_key, ContactStatus.SENT, f"t{c.contact_id}")
                                                     for c in batch])


def test_no_member_is_contacted_after_their_completion(store):
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
        upload(session, load_example("ringback_tone_download.json"), author="test")
    load_population(store.engine, 800, seed=9, today=date(2026, 11, 24))
    rng = random.Random(4)
    races = violations = answered_first = 0
    for _ in range(ROUNDS):
        campaign = campaigns.create(store, "ringback-tone-download", created_by="test")
        with store.engine.connect() as conn:
            audience = list(conn.execute(text(
                "SELECT s.msisdn FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
                "WHERE m.campaign_id = :c"), {"c": campaign.id}).scalars())
        responders = rng.sample(audience, RESPONSES_PER_ROUND)
        seen_after_answer: dict[str, str | None] = {}
        handed: list[str] = []
        # the dispatch starts once a few answers are in, so both orders happen every round
        answers_under_way = threading.Event()

        def answer() -> None:
            for n, msisdn in enumerate(responders):
                contacts.respond(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "hall")
                seen_after_answer[msisdn] = contact_status(store.engine, campaign.id, msisdn, "outbound_call")
                if n == 3:
                    answers_under_way.set()
                time.sleep(0.001)  # answers trickle in, as they do from agents and SMS replies

        def send() -> None:
            answers_under_way.wait(30)
            dispatch(store.engine, campaign.id, "outbound_call", handed)

        threads = [threading.Thread(target=answer), threading.Thread(target=send)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for msisdn, seen in seen_after_answer.items():
            races += 1
            final = contact_status(store.engine, campaign.id, msisdn, "outbound_call")
            if seen in (None, "claimed"):
                answered_first += 1
                if final in ("sending", "sent") or msisdn in handed:
                    violations += 1
    assert races == ROUNDS * RESPONSES_PER_ROUND
    assert 0 < answered_first < races, "the answers and the dispatch did not overlap: no race was run"
    assert violations == 0
