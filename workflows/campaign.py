"""One workflow per campaign (id `campaign-<id>`).

It cuts each cohort of the audience into shards and runs each shard as a child
`ShardWorkflow`, a bounded number at a time, and forwards pause, resume and cancel to
them. Cohort 0 is the audience at launch; members admitted later form cohort 1, 2, …,
which run the plan from its first step on their own timeline (signal `cohort_added`).

Shards are started with parent-close policy ABANDON and report back by signal (each step's
result, then `shard_finished`), so this workflow can continue-as-new whenever its history
grows long, carrying only `CampaignState`, while the shards run on.

Customers' answers arrive in batches (`responses_recorded`, one signal per campaign per
flush, never one per member); they feed the progress query and wake the shards' waits,
which end early once nobody in the shard can still be contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import timedelta

from temporalio import workflow
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities, CohortInput, ShardRef, StatusInput, StepResult
    from workflows import attributes
    from workflows.shard import DB_TIMEOUT, STEP_RETRY, ShardInput, ShardWorkflow


@dataclass
class CampaignProgress:
    status: str
    members: int = 0
    cohorts: int = 0
    shards: int = 0
    shards_done: int = 0
    #: per step, the shards' results added up
    steps: dict[str, StepResult] = field(default_factory=dict)
    #: customers' answers reported so far, by "channel:outcome" (e.g. "hall:accepted")
    responses: dict[str, int] = field(default_factory=dict)


@dataclass
class CampaignState:
    """Everything a run hands on to the next one when it continues as new."""

    progress: CampaignProgress
    cohorts_to_open: list[int] = field(default_factory=list)
    cohorts_opened: list[int] = field(default_factory=list)
    #: shards opened and waiting for a free slot
    queued: list[ShardRef] = field(default_factory=list)
    #: workflow ids of the shards started and not finished
    running: list[str] = field(default_factory=list)
    paused: bool = False
    cancelled: bool = False
    #: answers have arrived that the running shards were not told about yet
    recheck_due: bool = False


@dataclass
class CampaignInput:
    campaign_id: int
    plan: dict
    shard_size: int = 50_000
    max_running_shards: int = 50
    #: demo runs shrink the plan's waits by this factor
    time_scale: float = 1.0
    heartbeat_seconds: int = 60
    #: shards' waits are woken by new answers at most this often
    recheck_seconds: int = 60
    #: continue as new beyond this many history events (Temporal's hard limit: 51,200)
    history_limit: int = 10_000
    #: channel → task queue of its own workers (TOUCHWAVE_CHANNEL_QUEUES), for the shards
    channel_queues: dict[str, str] = field(default_factory=dict)
    #: None on the first run; the previous run's state after continue-as-new
    state: CampaignState | None = None


def history_full(limit: int) -> bool:
    """Time to continue as new: the history passed `limit` events, or the server says so."""
    info = workflow.info()
    return info.get_current_history_length() > limit or info.is_continue_as_new_suggested()


async def set_status(campaign_id: int, progress: CampaignProgress, status: str) -> None:
    """The campaign's status in its progress, its search attribute and the store."""
    progress.status = status
    workflow.upsert_search_attributes([attributes.STATUS.value_set(status)])
    await workflow.execute_activity_method(
        CampaignActivities.set_status, StatusInput(campaign_id, status),
        start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
    )


def add_step_result(steps: dict[str, StepResult], result: StepResult) -> None:
    """Add what a shard (or a trigger campaign's pass) did at a step to the campaign's progress."""
    steps.setdefault(result.step_id, StepResult(result.step_id, result.channel)).add(result)


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, input: CampaignInput) -> None:
        # signals can arrive before `run` starts: everything they need is set here
        self.input = input
        self.state = input.state or CampaignState(CampaignProgress(status="starting"), cohorts_to_open=[0])
        self.last_recheck = workflow.now() - timedelta(seconds=input.recheck_seconds)

    @workflow.run
    async def run(self, input: CampaignInput) -> CampaignProgress:
        state = self.state
        while not self._finished():
            with contextlib.suppress(asyncio.TimeoutError):  # the timeout only paces the rechecks
                await workflow.wait_condition(self._has_work,
                                              timeout=self._until_recheck() if state.recheck_due else None)
            if self._cohort_to_open():
                await self._open_cohort(state.cohorts_to_open.pop(0))
            while self._shard_to_start():
                await self._start_shard(state.queued.pop(0))
            if self._recheck_now():
                await self._recheck_shards()
            if self._history_full():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(replace(input, state=state))
        if state.cancelled:
            await workflow.execute_activity_method(
                CampaignActivities.withdraw_campaign, input.campaign_id,
                start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
            )
        await self._set_status("cancelled" if state.cancelled else "finished")
        return state.progress

    def _finished(self) -> bool:
        s = self.state
        return not s.running and (s.cancelled or (not s.cohorts_to_open and not s.queued))

    def _has_work(self) -> bool:
        return (self._finished() or self._cohort_to_open() or self._shard_to_start() or self._recheck_now()
                or self._history_full())

    def _cohort_to_open(self) -> bool:
        return bool(self.state.cohorts_to_open) and not self.state.cancelled

    def _shard_to_start(self) -> bool:
        s = self.state
        return bool(s.queued) and len(s.running) < self.input.max_running_shards and not s.cancelled

    def _recheck_now(self) -> bool:
        return self.state.recheck_due and self._until_recheck() is None

    def _history_full(self) -> bool:
        return history_full(self.input.history_limit)

    def _until_recheck(self) -> timedelta | None:
        """How long until the shards may be woken again (None: now)."""
        left = self.last_recheck + timedelta(seconds=self.input.recheck_seconds) - workflow.now()
        return left if left > timedelta(0) else None

    async def _open_cohort(self, number: int) -> None:
        cohort = await workflow.execute_activity_method(
            CampaignActivities.open_cohort, CohortInput(self.input.campaign_id, number, self.input.shard_size),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
        )
        self.state.cohorts_opened.append(number)
        progress = self.state.progress
        progress.members += cohort.members
        progress.cohorts += 1
        progress.shards += len(cohort.shards)
        self.state.queued.extend(cohort.shards)
        if progress.status == "starting":
            await self._set_status("running")

    async def _start_shard(self, ref: ShardRef) -> None:
        shard_id = f"{workflow.info().workflow_id}/cohort-{ref.cohort}/shard-{ref.index}"
        paused = self.state.paused
        await workflow.start_child_workflow(
            ShardWorkflow.run,
            ShardInput(ref, self.input.plan, self.input.time_scale, parent_id=workflow.info().workflow_id,
                       heartbeat_seconds=self.input.heartbeat_seconds, paused=paused,
                       channel_queues=self.input.channel_queues),
            id=shard_id,
            parent_close_policy=ParentClosePolicy.ABANDON,
        )
        self.state.running.append(shard_id)
        # a cancel or pause that arrived while the shard was starting told the running
        # shards only: this one hears it now
        shard = workflow.get_external_workflow_handle(shard_id)
        if self.state.cancelled:
            await shard.signal(ShardWorkflow.cancel)
        elif self.state.paused != paused:
            await shard.signal(ShardWorkflow.pause if self.state.paused else ShardWorkflow.resume)

    async def _recheck_shards(self) -> None:
        self.state.recheck_due = False
        self.last_recheck = workflow.now()
        await self._tell_shards(ShardWorkflow.recheck)

    async def _set_status(self, status: str) -> None:
        await set_status(self.input.campaign_id, self.state.progress, status)

    async def _tell_shards(self, signal) -> None:
        await asyncio.gather(*(workflow.get_external_workflow_handle(shard_id).signal(signal)
                               for shard_id in list(self.state.running)))

    @workflow.signal
    async def pause(self) -> None:
        self.state.paused = True
        await self._tell_shards(ShardWorkflow.pause)
        await self._set_status("paused")

    @workflow.signal
    async def resume(self) -> None:
        self.state.paused = False
        await self._tell_shards(ShardWorkflow.resume)
        await self._set_status("running")

    @workflow.signal
    async def cancel(self) -> None:
        self.state.cancelled = True
        self.state.queued.clear()
        self.state.progress.status = "cancelling"
        await self._tell_shards(ShardWorkflow.cancel)

    @workflow.signal
    def cohort_added(self, cohort: int) -> None:
        """Cohorts up to `cohort` exist: each one not opened yet runs the plan from the
        start. One signal per sync, and a cohort whose signal was lost opens at the next."""
        numbers = range(1, cohort + 1) if workflow.patched("cohort-added-up-to") else [cohort]
        for number in numbers:
            if number not in self.state.cohorts_to_open and number not in self.state.cohorts_opened:
                self.state.cohorts_to_open.append(number)

    @workflow.signal
    def responses_recorded(self, counts: dict[str, int]) -> None:
        """A batch of customers' answers, by "channel:outcome"."""
        responses = self.state.progress.responses
        for key, count in counts.items():
            responses[key] = responses.get(key, 0) + count
        self.state.recheck_due = True

    @workflow.signal
    def shard_step_done(self, result: StepResult) -> None:
        add_step_result(self.state.progress.steps, result)

    @workflow.signal
    def shard_finished(self, shard_id: str) -> None:
        if shard_id in self.state.running:
            self.state.running.remove(shard_id)
            self.state.progress.shards_done += 1

    @workflow.query
    def status(self) -> CampaignProgress:
        return self.state.progress
