"""Do-not-disturb: active channels never contact a covered number (suppressed with the
reason, in the claim's own transaction); passive channels show the offer, flagged."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from touchwave import campaigns, contacts
from touchwave.contacts import Shard
from touchwave.errors import UserError
from touchwave.policy import dnd
from touchwave.store.models import DndSource

from channel_adapters.base import Message

from .conftest import api_client
from .test_waves import adapters, ledger, members, seed, sim, start  # noqa: F401 (fixture)


@pytest.fixture
def covered(store):
    """A ringback campaign (business line value_added) and five members with entries."""
    campaign = seed(store)
    a, b, c, d, e = members(store, campaign.id)[:5]
    dnd.add(store.engine, [
        dnd.entry(a, "global", "customer_request"),
        dnd.entry(b, "channel:sms", "complaint"),
        dnd.entry(c, "channel:outbound", "regulator"),
        dnd.entry(d, "business_line:value_added", "customer_request"),
        dnd.entry(e, "global", "bounced", expires=contacts.now() - timedelta(days=1)),
    ], created_by="test")
    return campaign, (a, b, c, d, e)


def test_an_active_step_suppresses_whom_an_entry_in_force_covers(store, covered):
    campaign, (a, b, c, d, e) = covered
    claimed = contacts.claim(store.engine, Shard(campaign.id), "sms_broadcast", "sms", None)
    everyone = members(store, campaign.id)
    assert claimed.suppressed == {"dnd": 3} and claimed.claimed == len(everyone) - 3
    sms = ledger(store, campaign.id)["sms_broadcast"]
    assert {m for m, status in sms.items() if status == "suppressed"} == {a, b, d}
    assert sms[c] == sms[e] == "claimed"  # an outbound-only entry, an expired one
    again = contacts.claim(store.engine, Shard(campaign.id), "sms_broadcast", "sms", None)
    assert (again.claimed, again.suppressed) == (0, {})
    assert contacts.progress(store.engine, campaign.id)["steps"]["sms_broadcast"]["statuses"]["suppressed:dnd"] == 3


@pytest.mark.parametrize("scope", ["global", "channel:outbound", "business_line:value_added"])
def test_one_entry_in_force_alone_is_enough_to_suppress(store, scope):
    """A claim looks for entries in force before it tests its members one by one: a single
    entry of any scope must be found, and another channel's, another business line's and
    an expired one suppress nobody."""
    campaign = seed(store)
    everyone = members(store, campaign.id)
    first, second, third, covered_one = everyone[:4]
    dnd.add(store.engine, [
        dnd.entry(first, "channel:app", "regulator"),
        dnd.entry(second, "business_line:broadband", "customer_request"),
        dnd.entry(third, "global", "bounced", expires=contacts.now() - timedelta(days=1)),
    ], created_by="test")
    sms = contacts.claim(store.engine, Shard(campaign.id), "sms_broadcast", "sms", None)
    assert (sms.claimed, sms.suppressed) == (len(everyone), {})
    dnd.add(store.engine, [dnd.entry(covered_one, scope, "complaint")], created_by="test")
    call = contacts.claim(store.engine, Shard(campaign.id), "outbound_call", "outbound", None)
    assert (call.claimed, call.suppressed) == (len(everyone) - 1, {"dnd": 1})
    assert ledger(store, campaign.id)["outbound_call"][covered_one] == "suppressed"


def test_a_passive_channel_shows_the_offer_flagged_not_to_push(store, covered):
    campaign, (a, b, c, d, e) = covered
    campaigns.set_status(store.engine, campaign.id, "running")
    claimed = contacts.claim(store.engine, Shard(campaign.id), "hall_window", "hall", None,
                             window_ends_at=contacts.now() + timedelta(days=14))
    assert claimed.suppressed == {}
    client = api_client(store.engine)

    def flag(msisdn: str) -> bool:
        [offer] = client.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"}).json()
        return offer["do_not_push"]

    assert [flag(m) for m in (a, b, c, d, e)] == [True, False, False, True, False]


async def test_no_sms_and_no_call_reach_a_number_under_do_not_disturb(temporal, store, sim, covered):
    campaign, (a, b, c, d, e) = covered
    worker, handle = await start(temporal, store, sim, campaign)
    async with worker:
        result = await asyncio.wait_for(handle.result(), 60)
    assert not {a, b, d} & set(sim.sms_sent) and {c, e} <= set(sim.sms_sent)
    called = {task.msisdn for task in sim.tasks.values()}
    assert not {a, c, d} & called and {b, e} <= called
    assert result.steps["sms_broadcast"].reasons["dnd"] == 3


def test_a_new_entry_stops_contacts_claimed_but_not_yet_sent_and_queued_calls(store, sim):
    campaign = seed(store)
    first, second, third = members(store, campaign.id)[:3]
    contacts.claim(store.engine, Shard(campaign.id), "sms_broadcast", "sms", None)
    contacts.claim(store.engine, Shard(campaign.id), "outbound_call", "outbound", None)
    outbound = adapters(sim)["outbound"]
    calls = contacts.take_batch(store.engine, Shard(campaign.id), "outbound_call", 1000)  # queued at the call centre
    contacts.record(store.engine, campaign.id, calls,
                    outbound.send(calls, Message(campaign.id, "outbound_call", "RBT_DOWNLOAD", "")))
    added = dnd.add(store.engine, [dnd.entry(first, "channel:sms", "complaint"),
                                   dnd.entry(second, "global", "regulator"),
                                   dnd.entry(third, "business_line:value_added", "customer_request")],
                    "ops", outbound=outbound)
    steps = ledger(store, campaign.id)
    assert {steps["sms_broadcast"][m] for m in (first, second, third)} == {"suppressed"}
    assert [steps["outbound_call"][m] for m in (first, second, third)] == ["sent", "withdrawn", "withdrawn"]
    assert (added.suppressed, added.withdrawn_calls) == (3, 2)
    withdrawn = {task.msisdn for task in sim.tasks.values() if task.state == "withdrawn"}
    assert withdrawn == {second, third}


def test_the_api_adds_lists_and_removes_entries(store):
    client = api_client(store.engine)
    body = {"scope": "channel:sms", "source": "complaint", "expires_at": "2027-01-31T00:00:00Z", "note": "投诉"}
    added = client.put("/v1/dnd/+86 138-0000-0001", json=body)
    assert added.status_code == 200 and added.json()["msisdn"] == "13800000001"
    [entry] = client.get("/v1/dnd/13800000001").json()
    assert (entry["scope"], entry["source"], entry["note"]) == ("channel:sms", "complaint", "投诉")
    bad = client.put("/v1/dnd/13800000001", json={**body, "scope": "channel:fax"})
    assert bad.status_code == 422 and "not a do-not-disturb scope" in bad.json()["detail"]
    assert client.put("/v1/dnd/12345", json=body).status_code == 422
    assert client.delete("/v1/dnd/13800000001", params={"scope": "channel:sms"}).status_code == 204
    assert client.delete("/v1/dnd/13800000001", params={"scope": "channel:sms"}).status_code == 404
    assert client.get("/v1/dnd/13800000001").json() == []


def test_a_dnd_file_with_a_bad_row_stores_nothing_and_names_the_line(store, tmp_path):
    path = tmp_path / "dnd.csv"
    path.write_text("msisdn,scope,source,expires_at\n13800000001,global,regulator,\n"
                    "13800000002,channel:sms,complaint,2027-02-30\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"line 3: '2027-02-30' is not a date"):
        dnd.read_csv(path)
    path.write_text("msisdn,scope,source\n13800000001,global,regulator\n13800000001,global,complaint\n",
                    encoding="utf-8")
    assert dnd.add(store.engine, dnd.read_csv(path), "ops", batch_size=1).stored == 1
    with store.engine.connect() as conn:
        [entry] = dnd.entries_for(conn, "13800000001")
    assert entry.source == DndSource.COMPLAINT  # the later line wins
