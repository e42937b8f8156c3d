"""Customer events: the catalog, ingest (bad events, duplicates, expiry, re-entry), and
which running trigger campaigns an event enters its subscriber into."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text

from touchwave import campaigns
from touchwave.errors import UserError
from touchwave.events import catalog
from touchwave.events.ingest import ingest
from touchwave.segments.rules import Vocabulary
from touchwave.segments.synthetic import load_population
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.store.models import Subscriber
from touchwave.store.templates import upload

from .conftest import CATALOG_FILE, EXAMPLES, load_example

EVENTS_FILE = CATALOG_FILE.parent / "events.json"

#: every shipped trigger template, with a payload that fires it and one that does not
TRIGGERS = {
    "data_usage_addon.json": ({"percent": 85, "plan_quota_mb": 20480}, {"percent": 60, "plan_quota_mb": 20480}),
    "broadband_expiring_renewal.json": ({"days_left": 5}, {"days_left": 20}),
    "top_up_contract.json": ({"amount": 100}, {"amount": 30}),
}

_ids = itertools.count(1)


def event(kind: str, msisdn: str, payload: dict, occurred_at: datetime | None = None, id: str | None = None) -> dict:
    return {"id": id or f"ev-{next(_ids)}", "type": kind, "msisdn": msisdn,
            "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(), "payload": payload}


def trigger_campaign(store, template: str, subscribers: int = 300, status: str = "running"):
    """A trigger campaign of a shipped template over a synthetic population, and the
    numbers its audience admits."""
    catalog.upsert(store.engine, catalog.read_catalog_file(EVENTS_FILE))
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
        upload(session, load_example(template), author="test")
    load_population(store.engine, subscribers, seed=5, today=date.today())
    campaign = campaigns.create(store, load_example(template)["name"], created_by="test")
    if status:
        campaigns.set_status(store.engine, campaign.id, status)
    with store.engine.connect() as conn:
        ids = Vocabulary.load(conn).subscribers(campaign.plan.audience.rule).subquery()
        admitted = list(conn.execute(select(Subscriber.msisdn).where(Subscriber.id.in_(select(ids)))
                                     .order_by(Subscriber.msisdn)).scalars())
    return campaign, admitted


def member(store, campaign_id: int, msisdn: str):
    with store.engine.connect() as conn:
        return conn.execute(text(
            "SELECT m.entry, m.at_node, m.due_at, m.state, m.event_id FROM campaign_members m "
            "JOIN subscribers s ON s.id = m.subscriber_id WHERE m.campaign_id = :c AND s.msisdn = :n"),
            {"c": campaign_id, "n": msisdn}).first()


def outsider(store, admitted: list[str]) -> str:
    with store.engine.connect() as conn:
        return conn.execute(select(Subscriber.msisdn).where(Subscriber.msisdn.not_in(admitted))).scalars().first()


@pytest.mark.parametrize("template", sorted(TRIGGERS))
def test_each_example_trigger_fires_for_a_matching_event_and_not_otherwise(store, template):
    campaign, admitted = trigger_campaign(store, template)
    assert campaign.members == 0 and len(admitted) > 2
    fires, does_not = TRIGGERS[template]
    kind = campaign.plan.trigger.event
    result = ingest(store.engine, [event(kind, admitted[0], fires), event(kind, admitted[1], does_not),
                                   event(kind, outsider(store, admitted), fires)])
    assert (result.accepted, result.rejected, result.entered) == (3, [], {campaign.id: 1})
    entered = member(store, campaign.id, admitted[0])
    assert (entered.entry, entered.at_node, entered.state) == (1, campaign.plan.entry, "pending")
    assert member(store, campaign.id, admitted[1]) is None


def test_bad_events_are_rejected_with_their_reason_and_the_rest_go_on(store):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json")
    good = {"percent": 90, "plan_quota_mb": 10240}
    batch = [
        event("data_usage_threshold", admitted[0], good),
        event("data_usage_spike", admitted[1], good),
        event("data_usage_threshold", admitted[1], {"percent": "ninety", "plan_quota_mb": 10240}),
        event("data_usage_threshold", admitted[1], {"percent": 90}),
        event("data_usage_threshold", "12345", good),
        {"id": "no-time", "type": "top_up", "msisdn": admitted[1], "payload": {"amount": 50}},
        "not an event",
        event("data_usage_threshold", admitted[2], good),
    ]
    result = ingest(store.engine, batch)
    reasons = {r.index: r.reason for r in result.rejected}
    assert set(reasons) == {1, 2, 3, 4, 5, 6}
    assert 'no event type "data_usage_spike"' in reasons[1]
    assert reasons[2].startswith("payload/percent:") and "'ninety' is not of type 'number'" in reasons[2]
    assert reasons[3] == "payload: 'plan_quota_mb' is a required property"
    assert reasons[4] == "msisdn: String should have at least 11 characters"
    assert reasons[5] == "occurred_at: Field required"
    assert (result.accepted, result.entered) == (2, {campaign.id: 2})


def test_an_event_id_acts_once_however_often_it_arrives(store):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json")
    once = event("data_usage_threshold", admitted[0], {"percent": 80, "plan_quota_mb": 1024}, id="bss-42")
    first = ingest(store.engine, [once, once])
    again = ingest(store.engine, [once])
    assert (first.accepted, first.duplicates, first.entered) == (1, 1, {campaign.id: 1})
    assert (again.accepted, again.duplicates, again.entered) == (0, 1, {})
    assert member(store, campaign.id, admitted[0]).entry == 1


def test_an_event_older_than_the_trigger_allows_is_not_acted_on(store):
    campaign, admitted = trigger_campaign(store, "top_up_contract.json")  # expires after 10 minutes
    late = datetime.now(UTC) - timedelta(minutes=11)
    result = ingest(store.engine, [event("top_up", admitted[0], {"amount": 200}, occurred_at=late),
                                   event("top_up", admitted[1], {"amount": 200}, occurred_at=late + timedelta(minutes=2))])
    assert (result.accepted, result.expired, result.entered) == (2, 1, {campaign.id: 1})
    assert member(store, campaign.id, admitted[0]) is None


def test_reentry_limits_hold(store):
    # data-usage-addon: once every 30 days; top-up-contract: once ever
    monthly, admitted = trigger_campaign(store, "data_usage_addon.json")
    usage = {"percent": 80, "plan_quota_mb": 1024}
    start = datetime.now(UTC)
    ingest(store.engine, [event("data_usage_threshold", admitted[0], usage)], now=start)
    assert not ingest(store.engine, [event("data_usage_threshold", admitted[0], usage, start + timedelta(days=29))],
                      now=start + timedelta(days=29)).entered
    assert member(store, monthly.id, admitted[0]).entry == 1
    later = start + timedelta(days=31)
    assert ingest(store.engine, [event("data_usage_threshold", admitted[0], usage, later)], now=later).entered == {
        monthly.id: 1}
    again = member(store, monthly.id, admitted[0])
    assert (again.entry, again.at_node, again.state) == (2, "addon_sms", "pending")

    with store.session.begin() as session:
        upload(session, load_example("top_up_contract.json"), author="test")
    once = campaigns.create(store, "top-up-contract", created_by="test")
    campaigns.set_status(store.engine, once.id, "running")
    with store.engine.connect() as conn:
        buyer = conn.execute(select(Subscriber.msisdn).where(Subscriber.plan == "4G-96")).scalars().first()
    assert ingest(store.engine, [event("top_up", buyer, {"amount": 100})]).entered == {once.id: 1}
    years = datetime.now(UTC) + timedelta(days=800)
    assert ingest(store.engine, [event("top_up", buyer, {"amount": 100}, years)], now=years).entered == {}


def test_a_campaign_that_is_not_running_enters_nobody(store):
    campaign, admitted = trigger_campaign(store, "data_usage_addon.json", status="paused")
    result = ingest(store.engine, [event("data_usage_threshold", admitted[0], {"percent": 95, "plan_quota_mb": 1})])
    assert result.accepted == 1 and result.entered == {}


def test_the_catalog_names_what_is_wrong_with_it(tmp_path):
    bad = tmp_path / "events.json"
    bad.write_text('{"event_types": [{"name": "top_up", "payload": {"type": "object", "properties": '
                   '{"amount": {"type": "money"}}}}]}', encoding="utf-8")
    with pytest.raises(UserError, match=r"/event_types/0/payload: not a valid JSON Schema"):
        catalog.read_catalog_file(bad)
    bad.write_text('{"event_types": [{"name": "Top Up", "payload": {"type": "object"}}]}', encoding="utf-8")
    with pytest.raises(UserError, match=r"/event_types/0/name"):
        catalog.read_catalog_file(bad)


def test_every_shipped_trigger_template_is_tested_here():
    shipped = {p.name for p in EXAMPLES if "trigger" in load_example(p.name)}
    assert shipped == set(TRIGGERS)


def test_producers_post_events_over_the_api_and_only_producers(store):
    from .conftest import api_client

    campaign, admitted = trigger_campaign(store, "data_usage_addon.json")
    producer = api_client(store.engine, "producer")
    batch = [event("data_usage_threshold", admitted[0], {"percent": 81, "plan_quota_mb": 2048}),
             {"id": "half", "type": "top_up"}]
    answer = producer.post("/v1/events", json={"events": batch})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["entered"]) == (1, {str(campaign.id): 1})
    assert body["rejected"] == [{"index": 1, "id": "half", "reason": "msisdn: Field required"}]
    assert api_client(store.engine, "agent").post("/v1/events", json={"events": batch}).status_code == 403
    too_many = producer.post("/v1/events", json={"events": [batch[0]] * 1001})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "events"]


def test_events_replay_from_a_file_reports_each_bad_line(store, database_url, tmp_path, monkeypatch, capsys):
    import json

    from touchwave import cli

    campaign, admitted = trigger_campaign(store, "data_usage_addon.json")
    usage = {"percent": 99, "plan_quota_mb": 2048}
    lines = [json.dumps(event("data_usage_threshold", n, usage)) for n in admitted[:5]]
    lines[2] = '{"id": "broken", '
    lines.append(json.dumps(event("data_usage_threshold", admitted[6], {"percent": -1, "plan_quota_mb": 1})))
    lines.append(lines[0])
    file = tmp_path / "events.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("TOUCHWAVE_DATABASE_URL", database_url)
    monkeypatch.setenv("TOUCHWAVE_TEMPORAL_ADDRESS", "127.0.0.1:1")
    code = cli.main(["events", "replay", str(file), "--batch", "2"])
    out = capsys.readouterr().out
    assert code == 2
    assert "7 events, 4 new, 1 already received, 2 rejected" in out and "4 subscribers entered" in out
    assert "line 3: not JSON" in out and "line 6 (" in out and "payload/percent: -1 is less than the minimum of 0" in out
    assert "Temporal was not reachable" in out
    assert member(store, campaign.id, admitted[3]).at_node == "addon_sms"


def test_a_trigger_campaign_holds_out_its_control_group_at_every_entry(store):
    from touchwave import effect
    from touchwave.store.db import _bucket

    _, admitted = trigger_campaign(store, "data_usage_addon.json", subscribers=600)
    template = {**load_example("data_usage_addon.json"), "name": "data-usage-addon-measured", "control_share": 0.3}
    with store.session.begin() as session:
        upload(session, template, author="test")
    campaign = campaigns.create(store, template["name"], created_by="test")
    campaigns.set_status(store.engine, campaign.id, "running")
    for other in campaigns_running_besides(store, campaign.id):
        campaigns.set_status(store.engine, other, "paused")
    usage = {"percent": 90, "plan_quota_mb": 1024}
    start = datetime.now(UTC)
    entered = ingest(store.engine, [event("data_usage_threshold", n, usage) for n in admitted], now=start).entered
    assert entered == {campaign.id: len(admitted)}

    def states() -> dict[str, tuple]:
        with store.engine.connect() as conn:
            return {m: (sid, state, node, bool(control)) for m, sid, state, node, control in conn.execute(text(
                "SELECT s.msisdn, s.id, m.state, m.at_node, m.control FROM campaign_members m "
                "JOIN subscribers s ON s.id = m.subscriber_id WHERE m.campaign_id = :c"), {"c": campaign.id})}

    first = states()
    held = {m for m, (_, _, _, control) in first.items() if control}
    assert 0.2 < len(held) / len(admitted) < 0.4
    assert all(first[m][1:3] == ("suppressed", None) for m in held)
    assert all(first[m][1:3] == ("pending", "addon_sms") for m in set(first) - held)
    assert all((_bucket(f"{campaign.id}:{sid}") < 3000) == control for sid, _, _, control in first.values())
    # a month later they enter again: the same people are held out
    later = start + timedelta(days=31)
    ingest(store.engine, [event("data_usage_threshold", n, usage, later) for n in admitted], now=later)
    again = states()
    assert {m for m, v in again.items() if v[3]} == held and all(again[m][1] == "suppressed" for m in held)
    report = effect.report(store, campaign.id)
    assert report.control.members == len(held) and report.treated.members == len(admitted) - len(held)


def campaigns_running_besides(store, campaign_id: int) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.execute(text("SELECT id FROM campaigns WHERE status = 'running' AND id != :c"),
                                 {"c": campaign_id}).scalars())
