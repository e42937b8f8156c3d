"""The campaign's side effects, as methods of an object the worker builds with its
engine and channel adapters (tests build it with the simulator's transport)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select
from temporalio import activity

from channel_adapters.base import ChannelAdapter, Message
from channel_adapters.outbound import OutboundAdapter
from touchwave import campaigns, contacts, journeys, metrics, routing
from touchwave.config import Settings
from touchwave.policy import capacity, channels
from touchwave.contacts import Delivery, Shard
from touchwave.store.models import CampaignStatus, ContactStatus, Offer, Script
from touchwave.templates.plan import Plan

log = logging.getLogger(__name__)


@dataclass
class ShardRef:
    """Which members a shard workflow works on: a subscriber-id range of one cohort."""

    campaign_id: int
    cohort: int
    index: int
    first: int
    last: int
    #: a trigger campaign's members in hand (see `contacts.Shard.in_hand`)
    in_hand: bool = False

    @property
    def shard(self) -> Shard:
        return Shard(self.campaign_id, self.cohort, self.first, self.last, self.in_hand)


@dataclass
class CohortInput:
    campaign_id: int
    cohort: int
    shard_size: int


@dataclass
class Cohort:
    cohort: int
    members: int
    shards: list[ShardRef]


@dataclass
class StepInput:
    shard: ShardRef
    step_id: str
    channel: str
    offer: str
    script: str
    route: str | None = None
    window_seconds: int | None = None
    #: the campaign's time zone for quiet hours ("": the operator's)
    timezone: str = ""
    #: members capped or lost to arbitration: "next_step" or "leave" the campaign
    when_limited: str = "next_step"


@dataclass
class StepResult:
    step_id: str
    channel: str
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    #: failures and suppressions by reason, e.g. {"number not in service": 1, "dnd": 3}
    reasons: dict[str, int] = field(default_factory=dict)
    #: the step stopped before its end: why (quiet_hours, capacity) and until when (UTC epoch seconds)
    waiting_for: str | None = None
    resume_at: float | None = None

    def add(self, other: StepResult) -> None:
        """Count what another shard or pass did at this step in; the latest report says
        whether the step waits for the channel's rules."""
        self.claimed += other.claimed
        self.sent += other.sent
        self.failed += other.failed
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        self.waiting_for, self.resume_at = other.waiting_for, other.resume_at

    def wait(self, reason: str, until: datetime) -> StepResult:
        self.waiting_for, self.resume_at = reason, until.timestamp()
        return self


@dataclass
class SplitInput:
    shard: ShardRef
    route: str | None
    branches: dict[str, str]
    #: "outcome", or "best_channel": branches are channels, routed by the CPC model
    by: str = "outcome"
    objective: str = "conversion"
    #: best_channel: the offer each channel's step makes (its product and price)
    offers: dict[str, str] = field(default_factory=dict)


@dataclass
class StatusInput:
    campaign_id: int
    status: str


@dataclass
class JourneyInput:
    """A trigger campaign's members served for a while: pass after pass over whoever is due."""

    campaign_id: int
    plan: dict
    #: the campaign's `TriggerInput` says these: its time scale (demos), how often passes
    #: may start, how long serving goes on with nobody due (0: end as soon as nobody is
    #: due now) and at most
    time_scale: float
    pass_spacing_seconds: float
    idle_seconds: float
    serve_seconds: float
    #: with nobody due, the store is looked at this often for new entries
    poll_seconds: float = 0.05


@dataclass
class JourneyPass:
    #: what the channel steps did in the passes served, one result per step
    steps: list[StepResult] = field(default_factory=list)
    #: when the next member is due (UTC epoch seconds; None: nobody is on their way, or
    #: the campaign is not running)
    next_due_at: float | None = None

    def add(self, result: StepResult) -> None:
        """Count a pass's result at a step in with the earlier passes'."""
        step = next((s for s in self.steps if s.step_id == result.step_id), None)
        if step is None:
            self.steps.append(result)
        else:
            step.add(result)


def _count(result: StepResult, deliveries: list[Delivery]) -> tuple[int, int]:
    """Add the batch's deliveries to the step's result; the batch's (sent, failed)."""
    sent, failed = result.sent, result.failed
    for delivery in deliveries:
        if delivery.status == ContactStatus.FAILED:
            reason = delivery.reason or "failed"
            result.failed += 1
            result.reasons[reason] = result.reasons.get(reason, 0) + 1
        else:
            result.sent += 1
    return result.sent - sent, result.failed - failed


def step_clock() -> Callable[[], datetime]:
    """A step's clock: the server's time when this attempt was scheduled, advanced by how
    long the attempt has run. It is the workflow's clock, so quiet hours and capacity
    days follow the time-skipping test server as they follow the real one."""
    start, began = activity.info().current_attempt_scheduled_time, time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - began)


class CampaignActivities:
    def __init__(self, engine: Engine, adapters: Mapping[str, ChannelAdapter], batch_size: int = 1000,
                 timezone: str | None = None, clock: Callable[[], Callable[[], datetime]] | None = None) -> None:
        self.engine = engine
        self.adapters = adapters
        self.batch_size = batch_size
        #: the operator's time zone: capacity days, and quiet hours of campaigns that name none
        self.timezone = timezone or Settings.from_env().timezone
        self.clock = clock or step_clock

    @activity.defn
    def open_cohort(self, input: CohortInput) -> Cohort:
        """Cut a cohort (0: the members present at launch) into subscriber-id ranges of
        `shard_size` members each."""
        members, starts = contacts.cohort_boundaries(self.engine, input.campaign_id, input.cohort, input.shard_size)
        ends = [start - 1 for start in starts[1:]] + [contacts.LAST_ID]
        shards = [ShardRef(input.campaign_id, input.cohort, index, first, last)
                  for index, (first, last) in enumerate(zip([0, *starts[1:]], ends, strict=True))]
        return Cohort(input.cohort, members, shards)

    @activity.defn
    def set_status(self, input: StatusInput) -> None:
        campaigns.set_status(self.engine, input.campaign_id, CampaignStatus(input.status))

    @activity.defn
    def run_step(self, input: StepInput) -> StepResult:
        """A channel step on one shard (`_run_step`), counted in the worker's metrics."""
        started = time.monotonic()
        result = self._run_step(input)
        metrics.STEP_SECONDS.labels(input.channel).observe(time.monotonic() - started)
        return result

    def _run_step(self, input: StepInput) -> StepResult:
        """Claim the eligible members of the shard in one statement, then hand them to the
        channel in batches. Safe to retry: claims and contacts are keyed per member.

        The channel's rules can stop a step between batches: quiet hours (in the
        campaign's time zone) and a daily capacity used up. The step then returns
        `resume_at` and its shard sleeps on a durable timer until then; the contacts
        still claimed carry the reason they wait for.

        Pause and cancel stop a step between batches, never inside one: the SDK raises
        cancellation inside a thread wherever it happens to be, which in the middle of a
        transaction would hand a connection back to the pool half-used.
        """
        shard = input.shard.shard
        result = StepResult(input.step_id, input.channel)
        clock = self.clock()
        with activity.shield_thread_cancel_exception():
            with self.engine.connect() as conn:
                rules = channels.rules_for(conn, input.channel)
        quiet_tz = input.timezone or self.timezone
        opens = rules.quiet_until_at(clock(), quiet_tz)
        if opens:
            return result.wait("quiet_hours", opens)
        window = timedelta(seconds=input.window_seconds) if input.window_seconds else None
        if window and rules.daily_capacity is None:
            with activity.shield_thread_cancel_exception():
                result.claimed = contacts.claim(self.engine, shard, input.step_id, input.channel, input.route,
                                                contacts.now() + window).claimed
            metrics.contacted(input.shard.campaign_id, input.channel, result.claimed, 0, passive=True)
            return result
        adapter = None if window else self.adapters[input.channel]
        with activity.shield_thread_cancel_exception():
            # a channel with a daily capacity calls its most promising members first
            product = self._product(input.offer) if rules.daily_capacity is not None else None
            claimed = contacts.claim(self.engine, shard, input.step_id, input.channel, input.route,
                                     leave_when_limited=input.when_limited == "leave", timezone=self.timezone,
                                     rank_for_product=product)
            result.claimed = claimed.claimed
            result.reasons.update(claimed.suppressed)
            metrics.suppressed(input.shard.campaign_id, input.channel, claimed.suppressed)
            contacts.recover_step(self.engine, shard, input.step_id)
            pending = contacts.anyone_pending(self.engine, shard)
            message = Message(input.shard.campaign_id, input.step_id, input.offer, self._script_text(input.script))
        after = -1
        while True:
            with activity.shield_thread_cancel_exception():
                now = clock()
                opens = rules.quiet_until_at(now, quiet_tz)
                if opens:
                    contacts.mark_waiting(self.engine, shard, input.step_id, "quiet_hours")
                    return result.wait("quiet_hours", opens)
                if rules.daily_capacity is None:
                    batch = contacts.take_batch(self.engine, shard, input.step_id, self.batch_size, after)
                else:
                    batch = capacity.hand_out(self.engine, shard, input.step_id, input.channel, rules.daily_capacity,
                                              channels.day_of(now, self.timezone), self.batch_size, window)
                    if not batch and contacts.mark_waiting(self.engine, shard, input.step_id, "capacity"):
                        return result.wait("capacity", channels.day_starts(now, self.timezone, later=1))
                if not batch:
                    return result
                last = rules.daily_capacity is None and len(batch) < self.batch_size  # nothing claimed is left
                after = batch[-1].subscriber_id
                if adapter is None:
                    result.sent += len(batch)  # offers shown: windows opened
                    metrics.contacted(input.shard.campaign_id, input.channel, len(batch), 0, passive=True)
                else:
                    deliveries = adapter.send(batch, message)
                    contacts.record(self.engine, input.shard.campaign_id, batch, deliveries, mark_reached=pending)
                    metrics.contacted(input.shard.campaign_id, input.channel, *_count(result, deliveries))
                activity.heartbeat(result.sent + result.failed)
                if last:
                    return result

    def _product(self, offer: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(Offer.product).where(Offer.code == offer))

    def _script_text(self, code: str) -> str:
        with self.engine.connect() as conn:
            return conn.scalar(select(Script.text).where(Script.code == code)) or ""

    @activity.defn
    def serve_journeys(self, input: JourneyInput) -> JourneyPass:
        """A trigger campaign's members, served for up to `serve_seconds`: a pass whenever
        someone is due (a new entry, a wait that is over), at most one per
        `pass_spacing_seconds`, the store polled in between. Passes cost no Temporal round
        trip, so an event's first contact follows within a spacing and a pass. Ends
        early when nobody was due for `idle_seconds`, when the campaign is not running
        in the store (paused, cancelled), or when cancelled (the worker stopping)."""
        plan = Plan.from_dict(input.plan)
        step_clock = self.clock()

        def clock() -> datetime:
            # entries are stamped by the ingest's clock, waits run on the workflow's
            # (the Temporal server's): the later of the two holds neither back by skew
            return max(step_clock(), datetime.now(UTC))

        done = JourneyPass()
        began = last_work = time.monotonic()
        while True:
            with activity.shield_thread_cancel_exception():
                due_now = journeys.due_nodes(self.engine, input.campaign_id, clock())
            if due_now is None:
                return done  # not running: next_due_at stays None, the workflow waits for news
            if due_now:
                passed = time.monotonic()
                for result in self._journey_pass(plan, input, due_now, clock):
                    done.add(result)
                last_work = time.monotonic()
                pause = input.pass_spacing_seconds - (last_work - passed)
            else:
                pause = input.poll_seconds
            now = time.monotonic()
            if (now - began >= input.serve_seconds or now - last_work >= input.idle_seconds
                    or activity.is_cancelled() or activity.is_worker_shutdown()):
                break
            activity.heartbeat()
            activity.wait_for_cancelled_sync(max(pause, 0.0))
        with activity.shield_thread_cancel_exception():
            due = journeys.next_due(self.engine, input.campaign_id)
        done.next_due_at = due.timestamp() if due else None
        return done

    def _journey_pass(self, plan: Plan, input: JourneyInput, due_now: set[str],
                      clock: Callable[[], datetime]) -> list[StepResult]:
        """One pass, node by node in flowchart order: the members due there are put in hand
        and worked on as a shard (a channel step claims and sends exactly as in a bulk
        wave: idempotent, under contact policy), then move on to the next node, due after
        the waits in between. A member can go from entry to first contact within one pass."""
        campaign_id, results = input.campaign_id, []
        for step in plan.steps:
            if step.id not in due_now:
                continue
            with activity.shield_thread_cancel_exception():
                journeys.take_due(self.engine, campaign_id, step.id, clock())
                if step.kind == "split":
                    due_now |= journeys.route(self.engine, plan, campaign_id, step.id, clock(), input.time_scale)
                    continue
            resume_at = None
            if step.channel:
                window = round(step.window_seconds * input.time_scale) if step.window_seconds else None
                ran = self.run_step(StepInput(
                    ShardRef(campaign_id, journeys.IN_HAND, 0, 0, contacts.LAST_ID, in_hand=True), step.id,
                    step.kind, step.offer or "", step.script or "", None, window, plan.timezone or "",
                    step.when_limited))
                results.append(ran)
                resume_at = datetime.fromtimestamp(ran.resume_at, UTC) if ran.resume_at is not None else None
            with activity.shield_thread_cancel_exception():
                reached = journeys.move_on(self.engine, plan, campaign_id, step.id, clock(), input.time_scale,
                                           resume_at)
            if reached:
                due_now.add(reached)
        return results

    @activity.defn
    def route_split(self, input: SplitInput) -> None:
        if input.by == "best_channel":
            routed = routing.route_best(self.engine, input.shard.shard, input.route, input.branches, input.offers,
                                        input.objective)
            log.info("routed members to their best channel", extra={"routed": routed})
            return
        contacts.route_split(self.engine, input.shard.shard, input.route, input.branches)

    @activity.defn
    def anyone_left(self, input: ShardRef) -> bool:
        return contacts.anyone_left(self.engine, input.shard)

    @activity.defn
    def withdraw_campaign(self, campaign_id: int) -> int:
        """Cancel: withdraw every claimed and open contact, and the call tasks still queued."""
        queued = contacts.withdraw_campaign(self.engine, campaign_id)
        outbound = self.adapters.get("outbound")
        if queued and isinstance(outbound, OutboundAdapter):
            contacts.mark_withdrawn(self.engine, outbound.withdraw(queued), "cancelled")
        return len(queued)

    @property
    def all(self) -> list:
        """Every activity but `serve_journeys` (it runs on a queue of its own), for the worker."""
        return [self.open_cohort, self.set_status, self.run_step, self.route_split, self.anyone_left,
                self.withdraw_campaign]


