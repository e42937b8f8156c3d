"""One workflow per event-triggered campaign (id `campaign-<id>`, like a bulk campaign).

Events enter subscribers into the campaign's members at any moment (the ingest writes
them, due at the first node now); this workflow holds the campaign's clock. While
members are due it runs the `serve_journeys` activity, which passes over whoever is due
— a new entry's first contact, a wait that is over — a few times a second for a while,
with no Temporal round trip per pass. Between servings it sleeps until the next member
is due or `entries_added` says events came in, whichever is first, and looks anyway
every `look_every_seconds` in case a signal was lost. No timer and no workflow per
member: the cost is per pass, not per event.

Serving runs on a task queue of its own (`journeys_queue`), so trigger campaigns, each
holding an activity for seconds at a time, never take the slots of bulk waves' steps.

Pause and cancel write the campaign's status to the store first: serving stops at its
next look, and the ingest enters nobody into a campaign that is not running. Cancel
then withdraws every pending contact. The history is bounded by continue-as-new.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities, JourneyInput, JourneyPass, StatusInput
    from workflows.campaign import CampaignProgress, add_step_result, history_full, set_status
    from workflows.shard import DB_TIMEOUT, STEP_RETRY


@dataclass
class TriggerState:
    progress: CampaignProgress
    paused: bool = False
    cancelled: bool = False
    #: events entered subscribers since serving last began
    news: bool = True
    #: when the next member is due (UTC epoch seconds)
    next_due_at: float | None = None
    passes: int = 0
    entered: int = 0


@dataclass
class TriggerInput:
    campaign_id: int
    plan: dict
    #: demo runs shrink the plan's waits and windows by this factor
    time_scale: float = 1.0
    heartbeat_seconds: int = 60
    #: a pass at least this often even without news (a lost `entries_added` costs no more)
    look_every_seconds: float = 60.0
    #: passes start at most this often: entries arriving meanwhile join the next one, so
    #: a busy stream costs a few passes a second per campaign, not one per event
    pass_spacing_seconds: float = 0.2
    #: serving ends after this long with nobody due (0: after one pass, as the
    #: time-skipping test server needs: it skips time only while no activity runs)
    idle_seconds: float = 2.0
    #: serving reports its results at least this often
    serve_seconds: float = 10.0
    #: continue as new beyond this many history events
    history_limit: int = 10_000
    state: TriggerState | None = field(default=None)


def journeys_queue(task_queue: str) -> str:
    """The task queue of the trigger campaigns' serving, next to the campaigns' own."""
    return f"{task_queue}.journeys"


@workflow.defn
class TriggerWorkflow:
    @workflow.init
    def __init__(self, input: TriggerInput) -> None:
        self.input = input
        self.state = input.state or TriggerState(CampaignProgress(status="starting"))

    @workflow.run
    async def run(self, input: TriggerInput) -> CampaignProgress:
        state = self.state
        if state.progress.status == "starting":
            await self._set_status("running")
        while not state.cancelled:
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(self._pass_due, timeout=self._until_next_look())
            if state.cancelled:
                break
            if state.paused:
                continue
            state.news = False
            done = await workflow.execute_activity_method(
                CampaignActivities.serve_journeys,
                JourneyInput(input.campaign_id, input.plan, input.time_scale, input.pass_spacing_seconds,
                             input.idle_seconds, input.serve_seconds),
                task_queue=journeys_queue(workflow.info().task_queue),
                start_to_close_timeout=timedelta(hours=1),
                heartbeat_timeout=timedelta(seconds=input.heartbeat_seconds),
                retry_policy=STEP_RETRY,
            )
            self._count(done)
            if history_full(input.history_limit):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(replace(input, state=state))
        await workflow.execute_activity_method(
            CampaignActivities.withdraw_campaign, input.campaign_id,
            start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
        )
        await self._set_status("cancelled")
        return state.progress

    def _pass_due(self) -> bool:
        s = self.state
        if s.cancelled:
            return True
        if s.paused:
            return False
        return s.news or (s.next_due_at is not None and s.next_due_at <= workflow.now().timestamp())

    def _until_next_look(self) -> timedelta | None:
        if self.state.paused:
            return None
        look = timedelta(seconds=self.input.look_every_seconds)
        if self.state.next_due_at is None:
            return look
        until_due = datetime.fromtimestamp(self.state.next_due_at, UTC) - workflow.now()
        return max(min(look, until_due), timedelta(milliseconds=1))

    def _count(self, done: JourneyPass) -> None:
        self.state.passes += 1
        self.state.next_due_at = done.next_due_at
        for result in done.steps:
            add_step_result(self.state.progress.steps, result)

    async def _set_status(self, status: str) -> None:
        await set_status(self.input.campaign_id, self.state.progress, status)

    @workflow.signal
    def entries_added(self, counts: dict[str, int]) -> None:
        """Events entered subscribers (one signal per campaign per flush of the ingest)."""
        self.state.entered += counts.get("entered", 0)
        self.state.progress.members = self.state.entered
        self.state.news = True

    @workflow.signal
    def responses_recorded(self, counts: dict[str, int]) -> None:
        responses = self.state.progress.responses
        for key, count in counts.items():
            responses[key] = responses.get(key, 0) + count

    @workflow.signal
    async def pause(self) -> None:
        self.state.paused = True
        await self._set_status("paused")

    @workflow.signal
    async def resume(self) -> None:
        # the store first: serving begun before it says running would end at once
        await self._set_status("running")
        self.state.paused = False
        self.state.news = True

    @workflow.signal
    async def cancel(self) -> None:
        self.state.cancelled = True
        self.state.progress.status = "cancelling"
        # the store first: serving and the ingest stop at once, before the withdrawal
        await workflow.execute_activity_method(
            CampaignActivities.set_status, StatusInput(self.input.campaign_id, "cancelled"),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
        )

    @workflow.query
    def status(self) -> CampaignProgress:
        return self.state.progress
