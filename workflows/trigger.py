"""One workflow per event-triggered campaign (id `campaign-<id>`, like a bulk campaign).

Events enter subscribers into the campaign's members at any moment (the ingest writes
them, due at the first node now); this workflow holds the campaign's clock. It runs a
pass over whoever is due — a new entry's first contact, a wait that is over — then
sleeps until the next member is due or `entries_added` says events came in, whichever
is first, and looks anyway every `look_every_seconds` in case a signal was lost. No
timer and no workflow per member: the cost is per pass, not per event.

Pause stops the passes (and the ingest enters nobody into a campaign that is not
running); cancel withdraws every pending contact. The history is bounded by
continue-as-new.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities, JourneyInput, JourneyPass
    from workflows.campaign import CampaignProgress, add_step_result, history_full, set_status
    from workflows.shard import DB_TIMEOUT, STEP_RETRY


@dataclass
class TriggerState:
    progress: CampaignProgress
    paused: bool = False
    cancelled: bool = False
    #: events entered subscribers since the last pass
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
    #: a busy stream costs a few passes a second per campaign, not one per flush
    pass_spacing_seconds: float = 0.5
    #: continue as new beyond this many history events
    history_limit: int = 10_000
    state: TriggerState | None = field(default=None)


@workflow.defn
class TriggerWorkflow:
    @workflow.init
    def __init__(self, input: TriggerInput) -> None:
        self.input = input
        self.state = input.state or TriggerState(CampaignProgress(status="starting"))
        self.last_pass: datetime | None = None

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
            if self.last_pass is not None:
                spacing = self.last_pass + timedelta(seconds=input.pass_spacing_seconds) - workflow.now()
                if spacing > timedelta(0):
                    await workflow.sleep(spacing)
            self.last_pass = workflow.now()
            state.news = False
            done = await workflow.execute_activity_method(
                CampaignActivities.advance_journeys,
                JourneyInput(input.campaign_id, input.plan, input.time_scale),
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
        self.state.paused = False
        self.state.news = True
        await self._set_status("running")

    @workflow.signal
    def cancel(self) -> None:
        self.state.cancelled = True
        self.state.progress.status = "cancelling"

    @workflow.query
    def status(self) -> CampaignProgress:
        return self.state.progress
