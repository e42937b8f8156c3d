"""Frequency caps across campaigns, counted from the ledger, race-free when two campaigns
dispatch to the same people at the same moment."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from touchwave import campaigns, contacts
from touchwave.contacts import Shard
from touchwave.errors import UserError
from touchwave.policy import caps

from .test_waves import ledger, members, seed


def second_campaign(store):
    return campaigns.create(store, "ringback-tone-download", created_by="test")


def test_a_cap_used_up_in_one_campaign_suppresses_the_next_campaigns_contact(store):
    first = seed(store)
    caps.set_cap(store.engine, caps.cap("sms_weekly", "sms", 1, "P7D"))
    everyone = members(store, first.id)
    assert contacts.claim(store.engine, Shard(first.id), "sms_broadcast", "sms", None).claimed == len(everyone)
    second = second_campaign(store)
    claimed = contacts.claim(store.engine, Shard(second.id), "sms_broadcast", "sms", None)
    assert (claimed.claimed, claimed.suppressed) == (0, {"cap:sms_weekly": len(everyone)})
    assert set(ledger(store, second.id)["sms_broadcast"].values()) == {"suppressed"}
    # an SMS cap leaves calls alone; a cap on any channel does not
    assert contacts.claim(store.engine, Shard(second.id), "outbound_call", "outbound", None).claimed == len(everyone)
    caps.set_cap(store.engine, caps.cap("any_monthly", "any", 2, "month"))
    third = second_campaign(store)
    claimed = contacts.claim(store.engine, Shard(third.id), "outbound_call", "outbound", None)
    assert claimed.suppressed == {"cap:any_monthly": len(everyone)}


def test_only_contacts_inside_the_period_and_really_made_count(store):
    first = seed(store)
    caps.set_cap(store.engine, caps.cap("sms_weekly", "sms", 1, "P7D"))
    everyone = members(store, first.id)
    contacts.claim(store.engine, Shard(first.id), "sms_broadcast", "sms", None)
    with store.engine.begin() as conn:
        # half were sent eight days ago; a quarter of this week's failed
        conn.execute(text("UPDATE contact_ledger SET at = :old WHERE mod(subscriber_id, 2) = 0"),
                     {"old": datetime(2020, 1, 1, tzinfo=UTC)})
        conn.execute(text("UPDATE contact_ledger SET status = 'failed' WHERE mod(subscriber_id, 4) = 1"))
    ids = subscriber_ids(store, everyone)
    free = {m for m in everyone if ids[m] % 2 == 0 or ids[m] % 4 == 1}
    second = second_campaign(store)
    contacts.claim(store.engine, Shard(second.id), "sms_broadcast", "sms", None)
    sms = ledger(store, second.id)["sms_broadcast"]
    assert {m for m, status in sms.items() if status == "claimed"} == free


def subscriber_ids(store, msisdns: list[str]) -> dict[str, int]:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT msisdn, id FROM subscribers")).all())


ROUNDS = 6


def claim_at_once(store, campaign_ids: list[int], step: str = "sms_broadcast", channel: str = "sms") -> None:
    """The campaigns claim the step for their members at the same moment, one thread each."""
    start = threading.Barrier(len(campaign_ids))
    failures: list[BaseException] = []

    def claim(campaign_id: int) -> None:
        start.wait()
        try:
            contacts.claim(store.engine, Shard(campaign_id), step, channel, None)
        except BaseException as exc:  # re-raised below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=claim, args=(c,)) for c in campaign_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


def test_two_campaigns_claiming_the_last_allowed_sms_at_once_give_it_to_exactly_one(store):
    seed(store)
    caps.set_cap(store.engine, caps.cap("sms_weekly", "sms", 1, "P7D"))
    for _ in range(ROUNDS):
        pair = [second_campaign(store), second_campaign(store)]
        claim_at_once(store, [c.id for c in pair])
        got = Counter(m for c in pair for m, status in ledger(store, c.id)["sms_broadcast"].items()
                      if status == "claimed")
        assert set(got.values()) == {1} and len(got) == len(members(store, pair[0].id))
        with store.engine.begin() as conn:  # a week later: the next round starts with the cap free
            conn.execute(text("UPDATE contact_ledger SET at = :old"), {"old": datetime(2020, 1, 1, tzinfo=UTC)})


def test_a_cap_is_refused_when_it_cannot_mean_anything():
    with pytest.raises(UserError, match="'P7W' is not a period"):
        caps.cap("weekly", "sms", 2, "P7W")
    with pytest.raises(UserError, match="caps count active channels"):
        caps.cap("halls", "hall", 2, "P7D")


def test_the_calendar_month_begins_in_the_operators_time_zone():
    cap = caps.cap("monthly", None, 4, "month")
    # 2026-11-30 20:00 UTC is already December 1st in Beijing
    assert cap.since(datetime(2026, 11, 30, 20, tzinfo=UTC), "Asia/Shanghai") == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert cap.since(datetime(2026, 11, 30, 12, tzinfo=UTC), "Asia/Shanghai") == datetime(2026, 10, 31, 16, tzinfo=UTC)
