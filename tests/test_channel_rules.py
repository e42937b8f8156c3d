"""Quiet hours, daily channel capacity and priority arbitration: the channel-wide rules of
the contact policy, at the step (activity) and on the time-skipping Temporal server."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from temporalio.testing import ActivityEnvironment

from activities.campaign import CampaignActivities, ShardRef, StepInput
from touchwave import campaigns, contacts
from touchwave.contacts import LAST_ID, Shard
from touchwave.errors import UserError
from touchwave.funnel import funnel_text
from touchwave.templates.compiler import compile_template
from touchwave.policy import capacity, channels
from touchwave.policy.channels import ChannelRules
from touchwave.store import Store, db
from touchwave.store.models import CampaignStatus
from touchwave.store.templates import upload
from touchwave.temporal import start_campaign
from touchwave.worker import build_worker

from .conftest import load_example
from .test_caps import claim_at_once
from .test_waves import CampaignWorker, adapters, ledger, members, seed, sim  # noqa: F401 (fixture)

TZ = "Asia/Shanghai"


def local(day: int, hour: int, minute: int = 0, tz: str = TZ) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ZoneInfo(tz))


class Clock:
    """A step clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self):
        return lambda: self.at


def step_input(campaign_id: int, step: str, channel: str, timezone: str = "") -> StepInput:
    return StepInput(ShardRef(campaign_id, 0, 0, 0, LAST_ID), step, channel, "RBT_DOWNLOAD",
                     "RBT_SMS" if channel == "sms" else "RBT_OUTBOUND", timezone=timezone)


# -- quiet hours -----------------------------------------------------------------------


def test_the_quiet_window_has_exact_ends_and_may_run_over_midnight():
    night = ChannelRules("sms", "21:00", "08:00")
    assert night.quiet_until_at(local(24, 20, 59), TZ) is None
    assert night.quiet_until_at(local(24, 21), TZ) == local(25, 8)
    assert night.quiet_until_at(local(25, 3), TZ) == local(25, 8)
    assert night.quiet_until_at(local(25, 7, 59), TZ) == local(25, 8)
    assert night.quiet_until_at(local(25, 8), TZ) is None
    lunch = ChannelRules("outbound", "12:00", "14:00")
    assert lunch.quiet_until_at(local(24, 13), TZ) == local(24, 14)
    assert lunch.quiet_until_at(local(24, 14), TZ) is None
    # the campaign's clock decides: 22:00 in Shanghai is 16:00 in Urumqi's local time (UTC+6)
    assert night.quiet_until_at(local(24, 22), "Asia/Urumqi") is None
    assert ChannelRules("sms").quiet_until_at(local(24, 23), TZ) is None


def test_a_new_store_keeps_sms_calls_and_push_quiet_at_night(database_url):
    store = Store.open(database_url, migrated=False)
    try:
        db.upgrade(store.engine)
        with store.engine.connect() as conn:
            rules = {r.channel: r for r in channels.every_rule(conn)}
    finally:
        store.close()
    assert {c: (r.quiet_from, r.quiet_until) for c, r in rules.items() if r.quiet_from} == {
        "sms": ("21:00", "08:00"), "outbound": ("21:00", "08:00"), "app": ("21:00", "08:00")}
    assert all(r.daily_capacity is None for r in rules.values())


def test_channel_rules_refuse_what_cannot_mean_anything(store):
    with pytest.raises(UserError, match="'25:00' is not a time of day"):
        channels.set_rules(store.engine, "sms", quiet="21:00-25:00")
    with pytest.raises(UserError, match="hall is passive"):
        channels.set_rules(store.engine, "hall", quiet="21:00-08:00")
    with pytest.raises(UserError, match="sms has no daily capacity"):
        channels.set_rules(store.engine, "sms", daily_capacity=1000)
    with pytest.raises(UserError, match="'fax' is not a channel"):
        channels.set_rules(store.engine, "fax", quiet=None)


class EveningFalls:
    """An SMS adapter after whose first batch the clock reads 21:00."""

    def __init__(self, adapter, clock: Clock) -> None:
        self.adapter, self.clock, self.fallen = adapter, clock, False

    def send(self, batch, message):
        deliveries = self.adapter.send(batch, message)
        if not self.fallen:
            self.clock.at, self.fallen = local(24, 21), True
        return deliveries


def test_a_step_that_reaches_quiet_hours_stops_between_batches_and_finishes_when_they_end(store, sim):
    campaign = seed(store)
    everyone = members(store, campaign.id)
    channels.set_rules(store.engine, "sms", quiet="21:00-08:00")
    clock = Clock(local(24, 20, 58))
    step = CampaignActivities(store.engine, {"sms": EveningFalls(adapters(sim)["sms"], clock)}, batch_size=40,
                              timezone=TZ, clock=clock)
    run = lambda: ActivityEnvironment().run(step.run_step, step_input(campaign.id, "sms_broadcast", "sms"))  # noqa: E731

    evening = run()
    assert (evening.claimed, evening.sent, evening.waiting_for) == (len(everyone), 40, "quiet_hours")
    assert evening.resume_at == local(25, 8).timestamp()
    with store.engine.connect() as conn:
        waiting = conn.execute(text("SELECT count(*) FROM contact_ledger WHERE campaign_id = :c AND status = 'claimed' "
                                    "AND reason = 'quiet_hours'"), {"c": campaign.id}).scalar_one()
    assert waiting == len(everyone) - 40
    clock.at = local(25, 3)
    night = run()
    assert (night.sent, night.waiting_for) == (0, "quiet_hours")
    clock.at = local(25, 8)
    morning = run()
    assert (morning.sent, morning.waiting_for) == (len(everyone) - 40, None)
    assert sim.sms_sent == Counter({m: 1 for m in everyone})
    # sent, the contacts no longer say what they waited for
    assert contacts.progress(store.engine, campaign.id)["steps"]["sms_broadcast"]["statuses"] == {"sent": len(everyone)}


async def test_quiet_hours_hold_a_wave_on_a_durable_timer_in_the_campaigns_time_zone(temporal, store, sim):
    """The campaign runs on São Paulo's clock; its SMS step meets quiet hours at launch,
    sleeps until they end (time skips), then reaches everyone once."""
    tz = "America/Sao_Paulo"
    template = load_example("ringback_tone_download.json") | {"name": "ringback-quiet", "timezone": tz}
    seed(store)
    with store.session.begin() as session:
        upload(session, template, author="test")
    campaign = campaigns.create(store, "ringback-quiet", created_by="test")
    everyone = members(store, campaign.id)
    started = (await temporal.get_current_time()).astimezone(ZoneInfo(tz))
    opens = (started + timedelta(hours=2)).replace(second=0, microsecond=0)
    channels.set_rules(store.engine, "sms", quiet=f"{started - timedelta(hours=1):%H:%M}-{opens:%H:%M}")

    queue = f"test-{uuid.uuid4().hex[:8]}"
    handle = await start_campaign(temporal.client, campaign, queue, shard_size=1000,
                                  workflow_id=f"{campaign.workflow_id}-{uuid.uuid4().hex[:6]}")
    async with CampaignWorker(build_worker(temporal.client, store.engine, adapters(sim), task_queue=queue,
                                           batch_size=40), handle):
        progress = await handle.result()
    assert progress.status == "finished"
    assert sim.sms_sent == Counter({m: 1 for m in everyone})
    shard = temporal.client.get_workflow_handle(f"{handle.id}/cohort-0/shard-0")
    runs = [e for e in (await shard.fetch_history()).events
            if e.activity_task_scheduled_event_attributes.activity_type.name == "run_step"]
    # the first run met quiet hours and claimed no one; the SMS went out when they ended
    assert runs[1].event_time.ToDatetime(tzinfo=UTC) >= opens
    assert runs[0].event_time.ToDatetime(tzinfo=UTC) < opens - timedelta(hours=1)


# -- daily capacity --------------------------------------------------------------------


def two_campaigns_of(store, sizes: dict[int, int]) -> dict[int, int]:
    """Running campaigns with the given priorities and disjoint audiences of the given
    sizes, taken from the subscribers in id order: priority → campaign id."""
    made, first = {}, 0
    for priority, size in sizes.items():
        campaign = campaigns.create(store, "ringback-tone-download", created_by="test")
        with store.engine.begin() as conn:
            conn.execute(text("DELETE FROM campaign_members WHERE campaign_id = :c"), {"c": campaign.id})
            conn.execute(text(
                "INSERT INTO campaign_members (campaign_id, subscriber_id, cohort, state, updated_at) "
                "SELECT :c, id, 0, 'pending', CURRENT_TIMESTAMP FROM subscribers WHERE id IN "
                "(SELECT id FROM subscribers ORDER BY id LIMIT :size OFFSET :skip)"),
                {"c": campaign.id, "size": size, "skip": first})
            conn.execute(text("UPDATE campaigns SET priority = :p WHERE id = :c"), {"p": priority, "c": campaign.id})
        campaigns.set_status(store.engine, campaign.id, CampaignStatus.RUNNING)
        made[priority], first = campaign.id, first + size
    return made


def test_capacity_spreads_a_10000_member_outbound_step_over_days_best_first(store, sim):
    seed(store, subscribers=10_000)
    made = two_campaigns_of(store, {20: 6_000, 80: 4_000})
    low, high = made[20], made[80]
    channels.set_rules(store.engine, "outbound", daily_capacity=3_000)
    clock = Clock(local(24, 10))
    step = CampaignActivities(store.engine, adapters(sim), batch_size=500, timezone=TZ, clock=clock)
    run = lambda c: ActivityEnvironment().run(step.run_step, step_input(c, "outbound_call", "outbound"))  # noqa: E731

    # both campaigns reached their outbound step this morning, the low-priority one first
    for campaign_id in (low, high):
        contacts.claim(store.engine, Shard(campaign_id), "outbound_call", "outbound", None)
    sent: dict[int, list[int]] = {high: [], low: []}
    for day in (24, 25, 26, 27):
        clock.at = local(day, 10)
        # the low-priority campaign's step runs first each day: the ranking, not the order, decides
        for campaign_id in (low, high):
            result = run(campaign_id)
            sent[campaign_id].append(result.sent)
            if result.waiting_for:
                assert (result.waiting_for, result.resume_at) == ("capacity", local(day + 1, 0).timestamp())
        if day == 24:
            planned = {c: [(d.day.day, d.contacts) for d in capacity.planned_days(
                store.engine, c, "outbound", 3_000, date(2026, 11, 24))] for c in (high, low)}
            assert planned == {high: [(25, 1_000)], low: [(25, 2_000), (26, 3_000), (27, 1_000)]}
            shown = funnel_text(store.engine, low, campaigns.get(store, low).plan, TZ)
            assert "outbound_call waiting for: capacity 6000" in shown
    assert sent == {high: [3_000, 1_000, 0, 0], low: [0, 2_000, 3_000, 1_000]}
    with store.engine.connect() as conn:
        used = conn.execute(text("SELECT used FROM channel_usage WHERE channel = 'outbound' ORDER BY day")).scalars()
        assert list(used) == [3_000, 3_000, 3_000, 1_000]
    assert len(sim.tasks) == 10_000


def test_a_paused_campaign_holds_no_capacity(store, sim):
    seed(store, subscribers=600)
    made = two_campaigns_of(store, {80: 300, 20: 300})
    channels.set_rules(store.engine, "outbound", daily_capacity=300)
    step = CampaignActivities(store.engine, adapters(sim), batch_size=100, timezone=TZ, clock=Clock(local(24, 10)))
    contacts.claim(store.engine, Shard(made[80]), "outbound_call", "outbound", None)
    campaigns.set_status(store.engine, made[80], CampaignStatus.PAUSED)
    result = ActivityEnvironment().run(step.run_step, step_input(made[20], "outbound_call", "outbound"))
    assert (result.sent, result.waiting_for) == (300, None)


# -- priority arbitration ---------------------------------------------------------------


def running(store, priority: int) -> int:
    campaign = campaigns.create(store, "ringback-tone-download", created_by="test")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE campaigns SET priority = :p WHERE id = :c"), {"p": priority, "c": campaign.id})
    campaigns.set_status(store.engine, campaign.id, CampaignStatus.RUNNING)
    return campaign.id


def sms_today(store) -> Counter:
    """Per subscriber: SMS contacts claimed or handed out across campaigns."""
    with store.engine.connect() as conn:
        return Counter(conn.execute(text(
            "SELECT subscriber_id FROM contact_ledger WHERE channel = 'sms' "
            "AND status IN ('claimed', 'sending', 'sent', 'delivered')")).scalars())


def test_arbitration_between_three_campaigns_gives_each_subscriber_to_the_highest_priority(store, sim):
    seed(store)
    middle, low, high = running(store, 50), running(store, 20), running(store, 80)
    n = len(members(store, middle))
    claim = lambda c: contacts.claim(store.engine, Shard(c), "sms_broadcast", "sms", None)  # noqa: E731

    assert claim(middle).claimed == n
    lost = claim(low)  # a lower priority cannot take a claim over
    assert (lost.claimed, lost.suppressed) == (0, {"arbitration": n})
    assert claim(high).claimed == n  # a higher one can, while nothing went out yet
    assert set(ledger(store, middle)["sms_broadcast"].values()) == {"suppressed"}
    with store.engine.connect() as conn:
        reasons = set(conn.execute(text("SELECT reason FROM contact_ledger WHERE campaign_id IN (:a, :b)"),
                                   {"a": middle, "b": low}).scalars())
    assert reasons == {"arbitration"}
    assert set(sms_today(store).values()) == {1}

    step = CampaignActivities(store.engine, adapters(sim), batch_size=100, timezone=TZ)
    ActivityEnvironment().run(step.run_step, step_input(high, "sms_broadcast", "sms"))
    # what went out today is never taken back, whatever the priority
    top = running(store, 100)
    assert claim(top).suppressed == {"arbitration": n}
    assert set(sms_today(store).values()) == {1}
    assert set(sim.sms_sent.values()) == {1} and len(sim.sms_sent) == n
    # another channel is another matter
    assert contacts.claim(store.engine, Shard(top), "outbound_call", "outbound", None).claimed == n


def test_campaigns_claiming_the_same_people_at_once_contact_each_once(store):
    seed(store)
    for _ in range(4):
        trio = [running(store, 50), running(store, 50), running(store, 70)]
        claim_at_once(store, trio)
        assert set(sms_today(store).values()) == {1} and len(sms_today(store)) == len(members(store, trio[0]))
        for campaign_id in trio:  # these campaigns end: the next round starts on a clear day
            campaigns.set_status(store.engine, campaign_id, CampaignStatus.FINISHED)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE contact_ledger SET status = 'withdrawn' WHERE status = 'claimed'"))


def test_the_progress_query_and_status_show_why_members_were_not_contacted(store):
    seed(store)
    high, low = running(store, 80), running(store, 20)
    contacts.claim(store.engine, Shard(high), "sms_broadcast", "sms", None)
    contacts.claim(store.engine, Shard(low), "sms_broadcast", "sms", None)
    n = len(members(store, low))
    assert contacts.progress(store.engine, low)["steps"]["sms_broadcast"]["statuses"] == {"suppressed:arbitration": n}
    assert f"sms_broadcast suppressed: arbitration {n}" in funnel_text(store.engine, low, campaigns.get(store, low).plan)


def test_a_step_can_take_the_members_it_may_not_contact_out_of_the_campaign(store):
    template = load_example("ringback_tone_download.json")
    next(n for n in template["nodes"] if n["id"] == "sms_broadcast")["when_limited"] = "leave"
    assert compile_template(template).step("sms_broadcast").when_limited == "leave"
    seed(store)
    high, low = running(store, 80), running(store, 20)
    contacts.claim(store.engine, Shard(high), "sms_broadcast", "sms", None)
    lost = contacts.claim(store.engine, Shard(low), "sms_broadcast", "sms", None, leave_when_limited=True)
    with store.engine.connect() as conn:
        states = Counter(conn.execute(text("SELECT state || ':' || reason FROM campaign_members WHERE campaign_id = :c"),
                                      {"c": low}).scalars())
    assert states == Counter({"suppressed:arbitration": lost.suppressed["arbitration"]})
    assert contacts.claim(store.engine, Shard(low), "outbound_call", "outbound", None).claimed == 0
    # by default they are deferred to the next step
    middle = running(store, 50)
    contacts.claim(store.engine, Shard(middle), "sms_broadcast", "sms", None)
    assert contacts.claim(store.engine, Shard(middle), "outbound_call", "outbound", None).claimed == len(
        members(store, middle))


def test_a_hall_offer_budget_opens_the_windows_day_by_day(store, sim):
    seed(store, subscribers=600)
    made = two_campaigns_of(store, {50: 250})
    channels.set_rules(store.engine, "hall", daily_capacity=100)
    clock = Clock(local(24, 10))
    step = CampaignActivities(store.engine, adapters(sim), batch_size=40, timezone=TZ, clock=clock)
    hall = StepInput(ShardRef(made[50], 0, 0, 0, LAST_ID), "hall_window", "hall", "RBT_DOWNLOAD", "RBT_HALL",
                     window_seconds=7 * 86_400)
    opened = []
    for day in (24, 25, 26):
        clock.at = local(day, 10)
        result = ActivityEnvironment().run(step.run_step, hall)
        opened.append((result.sent, result.waiting_for))
    assert opened == [(100, "capacity"), (100, "capacity"), (50, None)]
    assert set(ledger(store, made[50])["hall_window"].values()) == {"open"}
    with store.engine.connect() as conn:
        reached = conn.execute(text("SELECT count(*) FROM campaign_members WHERE campaign_id = :c "
                                    "AND state = 'contacted'"), {"c": made[50]}).scalar_one()
    assert reached == 250
