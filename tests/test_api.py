"""The HTTP API: answers from any channel, and what a passive channel shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from touchwave import campaigns, contacts
from touchwave.contacts import Shard
from touchwave.store.templates import upload

from .conftest import api_client, load_example
from .test_waves import members, seed


@pytest.fixture
def running(store):
    """A running ringback campaign whose hall window is open for every member."""
    campaign = seed(store)
    campaigns.set_status(store.engine, campaign.id, "running")
    contacts.claim(store.engine, Shard(campaign.id), "hall_window", "hall", None,
                   window_ends_at=contacts.now() + timedelta(days=14))
    return campaign


def test_the_hall_sees_the_offer_with_its_script_until_the_customer_answers(store, running):
    client = api_client(store.engine)
    msisdn = members(store, running.id)[0]
    [offer] = client.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"}).json()
    assert (offer["campaign_id"], offer["offer"], offer["price"]) == (running.id, "RBT_DOWNLOAD", "5.00")
    assert offer["script"].startswith("您好，看到您还没有开通彩铃")
    # why this customer: the campaign's audience rule, for the agent to read
    assert (offer["segment"], offer["rule"]) == (None, load_example("ringback_tone_download.json")["audience"]["rule"])
    assert client.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hotline"}).json() == []

    body = {"campaign_id": running.id, "msisdn": msisdn, "outcome": "accepted", "channel": "hall", "agent": "h-1"}
    answer = client.post("/v1/responses", json=body)
    assert answer.status_code == 200 and answer.json()["recorded"] is True
    assert client.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"}).json() == []
    again = client.post("/v1/responses", json=body)
    assert again.status_code == 200 and again.json()["recorded"] is False


def test_considering_keeps_the_offer_and_flags_it(store, running):
    client = api_client(store.engine)
    msisdn = members(store, running.id)[1]
    client.post("/v1/responses", json={"campaign_id": running.id, "msisdn": msisdn, "outcome": "considering",
                                       "channel": "hotline"})
    [offer] = client.get(f"/v1/customers/+86{msisdn}/offers", params={"channel": "hall"}).json()
    assert offer["considering"] is True


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"msisdn": "13000000000"}, 409, "does not target 13000000000"),
        ({"msisdn": "12345"}, 422, "at least 11 characters"),
        ({"msisdn": "99999999999"}, 422, "not a mainland mobile number"),
        ({"outcome": "maybe"}, 422, "accepted"),
        ({"channel": "fax"}, 422, "hall"),
    ],
)
def test_bad_responses_get_a_4xx_with_the_reason(store, running, body, status, words):
    client = api_client(store.engine)
    valid = {"campaign_id": running.id, "msisdn": members(store, running.id)[0], "outcome": "accepted",
             "channel": "hall"}
    answer = client.post("/v1/responses", json={**valid, **body})
    assert answer.status_code == status
    assert words in answer.text


def test_a_declined_customer_cannot_be_turned_into_an_acceptance(store, running):
    client = api_client(store.engine)
    msisdn = members(store, running.id)[2]
    base = {"campaign_id": running.id, "msisdn": msisdn, "channel": "sms"}
    assert client.post("/v1/responses", json={**base, "outcome": "declined"}).status_code == 200
    answer = client.post("/v1/responses", json={**base, "outcome": "accepted"})
    assert answer.status_code == 409 and "already declined" in answer.text


def test_only_passive_channels_have_offers_to_show(store, running):
    client = api_client(store.engine)
    answer = client.get("/v1/customers/13800000000/offers", params={"channel": "sms"})
    assert answer.status_code == 422 and "not a passive channel" in answer.text
    assert client.get("/openapi.json").json()["info"]["title"] == "touchwave"


def test_the_trail_shows_what_every_channel_did_newest_first(store, running):
    client = api_client(store.engine)
    msisdn = members(store, running.id)[0]
    answer = {"campaign_id": running.id, "msisdn": msisdn, "outcome": "accepted", "channel": "hall",
              "agent": "hall-0571-07", "note": "wants it for his mother too"}
    assert client.post("/v1/responses", json=answer).status_code == 200
    trail = client.get(f"/v1/customers/{msisdn}/trail").json()
    assert [t["at"] for t in trail] == sorted((t["at"] for t in trail), reverse=True)
    by_kind = {t["kind"]: t for t in trail}
    assert by_kind["contact"] | {"at": None} == {
        "at": None, "kind": "contact", "campaign_id": running.id, "campaign": running.name, "channel": "hall",
        "what": "withdrawn", "detail": "hall_window", "reason": "completed", "agent": None, "note": None}
    assert (by_kind["response"]["what"], by_kind["response"]["agent"], by_kind["response"]["note"]) == (
        "accepted", "hall-0571-07", "wants it for his mother too")
    assert (by_kind["order"]["what"], by_kind["order"]["detail"]) == ("pending", "RBT_DOWNLOAD")
    assert len(trail) == 3
    assert client.get("/v1/customers/13999999999/trail").status_code == 404
    assert client.get("/v1/customers/12345/trail").status_code == 422


def test_touchwave_api_serves_the_offer_view_from_several_worker_processes(store, running, database_url):
    """`touchwave api` as production runs it: uvicorn workers building the app from
    TOUCHWAVE_* variables. Without a reachable Temporal the offer view still answers and
    starting a campaign is a 503 that says why."""
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from touchwave import tokens

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = tokens.create(store.engine, "hall-0571", "agent")
    operator = tokens.create(store.engine, "ops", "operator")
    env = {**os.environ, "TOUCHWAVE_DATABASE_URL": database_url, "TOUCHWAVE_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("touchwave")), "api", "--port", str(port),
                               "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as api:
            for _ in range(300):
                try:
                    if api.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            msisdn = members(store, running.id)[0]
            [offer] = api.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"}).json()
            assert offer["campaign_id"] == running.id
            assert api.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"},
                           headers={"Authorization": "Bearer tw_nope"}).status_code == 401
            pause = api.post(f"/v1/campaigns/{running.id}/pause", headers={"Authorization": f"Bearer {operator}"})
            assert pause.status_code == 503 and "not connected to Temporal" in pause.json()["detail"]
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    assert "with 2 worker process(es)" in out


def test_offers_of_equal_priority_come_likeliest_first_and_priority_still_wins(store, running):
    """Ranked by campaign priority, then how likely the customer is to take the product
    (the CPC model's score: their own, or their plan's)."""
    document = load_example("ringback_tone_download.json")
    document.pop("control_share", None)
    for step in document["nodes"]:
        if step["id"] == "hall_window":
            step.update(offer="CONTRACT_168_504", script="C168_HALL")
    with store.session.begin() as session:
        upload(session, {**document, "name": "contract-retention"}, author="test")
    contract = campaigns.create(store, "contract-retention", created_by="test")
    campaigns.set_status(store.engine, contract.id, "running")
    contacts.claim(store.engine, Shard(contract.id), "hall_window", "hall", None,
                   window_ends_at=contacts.now() + timedelta(days=14))
    first, second = members(store, running.id)[:2]
    with store.engine.begin() as conn:
        ids = dict(conn.execute(text("SELECT msisdn, id FROM subscribers WHERE msisdn IN (:a, :b)"),
                                {"a": first, "b": second}).all())
        plan = conn.execute(text("SELECT plan FROM subscribers WHERE msisdn = :m"), {"m": second}).scalar_one()
        # the first customer takes contracts; the second has no history, and their plan takes ringback tones
        conn.execute(text("INSERT INTO cpc_subscriber_product (subscriber_id, product, trials, successes, score) "
                          "VALUES (:s, 'prepay_contract', 4, 3, 0.6), (:s, 'ringback_tone', 4, 0, 0.05)"),
                     {"s": ids[first]})
        conn.execute(text("INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
                          "VALUES ('plan_product', :p, 'ringback_tone', 100, 30, 0.3), "
                          "('plan_product', :p, 'prepay_contract', 100, 2, 0.02)"), {"p": plan})
    client = api_client(store.engine)

    def shown(msisdn: str) -> list[tuple[str, float | None]]:
        return [(o["offer"], o["score"]) for o in
                client.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"}).json()]

    assert shown(first) == [("CONTRACT_168_504", 0.6), ("RBT_DOWNLOAD", 0.05)]
    # the same audience: both campaigns target both customers
    assert shown(second) == [("RBT_DOWNLOAD", 0.3), ("CONTRACT_168_504", 0.02)]
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE campaigns SET priority = priority + 1 WHERE id = :c"), {"c": running.id})
    assert [offer for offer, _ in shown(first)] == ["RBT_DOWNLOAD", "CONTRACT_168_504"]
