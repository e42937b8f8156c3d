"""Control groups and effect evaluation: who is held out, and a report whose numbers
match a small campaign worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from touchwave import boss_feed, campaigns, contacts, effect
from touchwave.cli import main as cli
from touchwave.contacts import Delivery, Shard
from touchwave.policy import channels
from touchwave.responses import record_response
from touchwave.store.db import _bucket
from touchwave.store.models import ContactStatus, Outcome
from touchwave.store.templates import upload

from .conftest import api_client, load_example
from .test_waves import seed


def held_out(store, campaign_id: int) -> dict[str, str]:
    """msisdn → state, for the members held out."""
    with store.engine.connect() as conn:
        return dict(conn.execute(text(
            "SELECT s.msisdn, m.state FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
            "WHERE m.campaign_id = :c AND m.control"), {"c": campaign_id}).all())


def test_the_control_group_is_a_stable_hash_near_its_share_and_never_contacted(store):
    campaign = seed(store, subscribers=4000, control=True)  # the ringback template holds out 5%
    control = held_out(store, campaign.id)
    assert set(control.values()) == {"suppressed"}
    assert 0.035 < len(control) / campaign.members < 0.065
    with store.engine.connect() as conn:
        ids = conn.execute(text("SELECT subscriber_id, control FROM campaign_members WHERE campaign_id = :c"),
                           {"c": campaign.id}).all()
    # the hash decides, the same on every database: campaign and subscriber, nothing else
    assert all(bool(is_control) == (_bucket(f"{campaign.id}:{sid}") < 500) for sid, is_control in ids)
    # a claim never takes them
    contacts.claim(store.engine, Shard(campaign.id), "sms_broadcast", "sms", None)
    with store.engine.connect() as conn:
        claimed = conn.execute(text(
            "SELECT count(*) FROM contact_ledger c JOIN campaign_members m ON m.campaign_id = c.campaign_id "
            "AND m.subscriber_id = c.subscriber_id WHERE c.campaign_id = :c AND m.control"),
            {"c": campaign.id}).scalar_one()
    assert claimed == 0


def test_the_same_campaign_created_again_holds_out_the_same_share_by_the_same_rule(store):
    first = seed(store, subscribers=1000, control=True)
    second = campaigns.create(store, first.template, created_by="test")
    # different campaigns hold out different people (the campaign is in the hash) ...
    assert held_out(store, first.id) != held_out(store, second.id)
    # ... and a later cohort of the same campaign follows the same rule
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT subscriber_id, control FROM campaign_members WHERE campaign_id = :c"),
                            {"c": second.id}).all()
    assert all(bool(c) == (_bucket(f"{second.id}:{sid}") < 500) for sid, c in rows)


@pytest.fixture
def worked(store):
    """A small campaign worked by hand: 30% held out, an SMS wave (3 numbers fail), a hall
    window for everyone still in, answers in both channels, and BOSS orders placed outside."""
    template = load_example("ringback_tone_download.json")
    template["control_share"] = 0.3
    campaign = seed(store, subscribers=400)
    with store.session.begin() as session:
        upload(session, template, author="test")
    campaign = campaigns.create(store, template["name"], created_by="test")
    campaigns.set_status(store.engine, campaign.id, campaigns.CampaignStatus.RUNNING)
    channels.set_rules(store.engine, "sms", unit_cost=0.05)
    with store.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.msisdn, m.control FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
            "WHERE m.campaign_id = :c ORDER BY s.msisdn"), {"c": campaign.id}).all()
    treated = [m for m, c in rows if not c]
    control = [m for m, c in rows if c]
    shard = Shard(campaign.id)
    contacts.claim(store.engine, shard, "sms_broadcast", "sms", None)
    batch = contacts.take_batch(store.engine, shard, "sms_broadcast", 10_000)
    failed = {o.msisdn for o in batch[:3]}
    contacts.record(store.engine, campaign.id, batch, [
        Delivery(o.idempotency_key, ContactStatus.FAILED if o.msisdn in failed else ContactStatus.SENT,
                 reason="number not in service" if o.msisdn in failed else None) for o in batch])
    reached = [m for m in treated if m not in failed]
    for msisdn in reached[:2]:
        record_response(store.engine, campaign.id, msisdn, Outcome.DECLINED, "sms")
    record_response(store.engine, campaign.id, reached[2], Outcome.CONSIDERING, "sms")
    contacts.claim(store.engine, shard, "hall_window", "hall", None, window_ends_at=datetime.now(UTC) + timedelta(days=3))
    for msisdn in reached[3:7]:
        record_response(store.engine, campaign.id, msisdn, Outcome.ACCEPTED, "hall")
    # BOSS: one treated customer and two held-out ones ordered on their own; one more
    # held-out order is of another product, and one came before the campaign started
    now = datetime.now(UTC)
    boss_feed.record(store.engine, [
        boss_feed.FeedOrder("B1", reached[10], "ringback_tone", now),
        boss_feed.FeedOrder("B2", control[0], "ringback_tone", now),
        boss_feed.FeedOrder("B3", control[1], "ringback_tone", now),
        boss_feed.FeedOrder("B3", control[1], "ringback_tone", now),  # BOSS sent it twice
        boss_feed.FeedOrder("B4", control[2], "prepay_contract", now),
        boss_feed.FeedOrder("B5", control[3], "ringback_tone", now - timedelta(days=30)),
    ])
    return campaign, treated, control


def test_the_report_matches_the_campaign_worked_out_by_hand(store, worked):
    campaign, treated, control = worked
    report = effect.report(store, campaign.id)
    steps = {s.step_id: s for s in report.steps}
    sms, hall = steps["sms_broadcast"], steps["hall_window"]
    assert (sms.wave, sms.targeted, sms.contacted, sms.failed) == (1, len(treated), len(treated) - 3, 3)
    assert (sms.responded, sms.declined, sms.considering, sms.accepted) == (3, 2, 1, 0)
    # the hall window opened for everyone still in: not the 2 who declined
    assert (hall.wave, hall.targeted, hall.accepted, hall.responded) == (2, len(treated) - 2, 4, 4)
    assert hall.contacted == len(treated) - 2 and hall.withdrawn == 4  # accepted: their window closed
    assert hall.conversion == 4 / (len(treated) - 2)
    assert steps["hotline_window"].targeted == steps["outbound_call"].targeted == 0
    assert report.products == ["ringback_tone"]
    assert (report.treated.members, report.treated.accepted, report.treated.converted) == (len(treated), 4, 5)
    assert (report.control.members, report.control.accepted, report.control.converted) == (len(control), 0, 2)
    difference = 5 / len(treated) - 2 / len(control)
    assert report.uplift.difference == pytest.approx(difference)
    assert report.uplift.low < difference < report.uplift.high
    assert report.uplift.incremental == pytest.approx(difference * len(treated))
    assert sms.cost == pytest.approx(0.05 * (len(treated) - 3)) and hall.cost is None
    assert report.cost_per_acceptance == pytest.approx(sms.cost / 4)
    assert [(d.channel, d.accepted) for d in report.by_day] == [("hall", 4)]


def test_newcombe_interval_reproduces_the_published_examples():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, method 10
    d, low, high = effect.newcombe(56, 70, 48, 80)
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    d, low, high = effect.newcombe(9, 10, 3, 10)
    assert (round(low, 4), round(high, 4)) == (0.1705, 0.8090)


def test_the_report_as_json_html_and_over_the_api(store, worked, database_url, tmp_path, capsys, monkeypatch):
    campaign, treated, _ = worked
    monkeypatch.setenv("TOUCHWAVE_DATABASE_URL", database_url)
    assert cli(["report", str(campaign.id), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["treated"]["converted"] == 5 and data["steps"][0]["step_id"] == "sms_broadcast"
    page = tmp_path / "report.html"
    assert cli(["report", str(campaign.id), "--format", "html", "--output", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "<svg" in html and "funnel per wave" in html and "<script" not in html and "http" not in html.split("</title>")[1]
    assert cli(["report", str(campaign.id)]) == 0
    assert "uplift" in capsys.readouterr().out
    analyst = api_client(store.engine, "analyst")
    answer = analyst.get(f"/v1/campaigns/{campaign.id}/report")
    assert answer.status_code == 200 and answer.json()["treated"]["members"] == len(treated)
    assert analyst.get(f"/v1/campaigns/{campaign.id}/report.html").text.startswith("<!doctype html>")
    assert analyst.get("/v1/campaigns/999999/report").status_code == 404
    assert api_client(store.engine, "agent").get(f"/v1/campaigns/{campaign.id}/report").status_code == 403


def test_a_campaign_without_a_control_group_says_no_uplift_can_be_measured(store):
    template = load_example("ringback_tone_download.json")
    template.pop("control_share")
    campaign = seed(store, subscribers=300)
    with store.session.begin() as session:
        upload(session, template, author="test")
    campaign = campaigns.create(store, template["name"], created_by="test")
    report = effect.report(store, campaign.id)
    assert report.control is None and report.uplift is None
    assert "no uplift can be measured" in effect.as_text(report)


def test_a_boss_feed_file_with_a_bad_line_stores_nothing(store, database_url, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TOUCHWAVE_DATABASE_URL", database_url)
    feed = tmp_path / "boss.csv"
    feed.write_text("boss_order_id,msisdn,product,ordered_at\nB1,13800000001,ringback_tone,2026-11-30T10:00:00+08:00\n"
                    "B2,12345,ringback_tone,2026-11-30T10:00:00+08:00\n", encoding="utf-8")
    assert cli(["boss", "feed", str(feed)]) == 2
    assert "line 3" in capsys.readouterr().err
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM boss_orders")).scalar_one() == 0
    feed.write_text("boss_order_id,msisdn,product,ordered_at\nB1,13800000001,ringback_tone,2026-11-30T10:00:00+08:00\n",
                    encoding="utf-8")
    assert cli(["boss", "feed", str(feed)]) == 0 and cli(["boss", "feed", str(feed)]) == 0
    assert "0 new, 1 already known" in capsys.readouterr().out
