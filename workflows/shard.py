"""One shard of one cohort walks the campaign's plan on its own timeline.

All per-member state is in the database; this workflow only holds the timeline:
which step comes next, the durable waits, pause and cancel. A split runs its branches
side by side, each on the members the split routed there.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities, ShardRef, SplitInput, StepInput, StepResult
    from touchwave.templates.plan import Plan, Step

STEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                         maximum_interval=timedelta(minutes=1))
DB_TIMEOUT = timedelta(minutes=5)


@dataclass
class ShardInput:
    shard: ShardRef
    plan: dict
    #: demo runs shrink the plan's waits by this factor
    time_scale: float = 1.0
    parent_id: str | None = None
    #: how soon a dead worker's step is noticed and retried elsewhere
    heartbeat_seconds: int = 60
    #: started while the campaign is paused
    paused: bool = False
    #: channel → task queue of the workers that send on it (TOUCHWAVE_CHANNEL_QUEUES);
    #: a channel not named runs on the campaign's own queue
    channel_queues: dict[str, str] = field(default_factory=dict)


@dataclass
class ShardSummary:
    steps: list[StepResult] = field(default_factory=list)
    cancelled: bool = False


@workflow.defn
class ShardWorkflow:
    @workflow.init
    def __init__(self, input: ShardInput) -> None:
        self.paused = input.paused
        self.cancelled = False
        self.answers_arrived = False
        self.summary = ShardSummary()
        self.position: dict[str, str] = {}
        #: routes whose step waits for the channel's rules: "quiet_hours until …"
        self.waiting: dict[str, str] = {}

    @workflow.run
    async def run(self, input: ShardInput) -> ShardSummary:
        self.input = input
        self.plan = Plan.from_dict(input.plan)
        await self._walk(self.plan.entry, route=None)
        self.summary.cancelled = self.cancelled
        if input.parent_id:
            parent = workflow.get_external_workflow_handle(input.parent_id)
            await parent.signal("shard_finished", workflow.info().workflow_id)
        return self.summary

    async def _walk(self, node_id: str | None, route: str | None) -> None:
        while node_id is not None:
            await workflow.wait_condition(lambda: not self.paused or self.cancelled)
            if self.cancelled:
                return
            step = self.plan.step(node_id)
            self.position[route or "main"] = node_id
            if step.channel:
                await self._run_step(step, route)
            elif step.kind == "wait":
                await self._wait(step)
            elif step.kind == "split":
                branches = {b.outcome: b.next for b in step.branches}
                offers = {b.outcome: self.plan.step(b.next).offer or "" for b in step.branches} \
                    if step.by == "best_channel" else {}
                await workflow.execute_activity_method(
                    CampaignActivities.route_split,
                    SplitInput(self.input.shard, route, branches, step.by, step.objective, offers),
                    start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
                )
                targets = list(dict.fromkeys(b.next for b in step.branches))
                await asyncio.gather(*(self._walk(target, route=target) for target in targets))
                return
            node_id = step.next

    async def _run_step(self, step: Step, route: str | None) -> None:
        """Run a channel step; pause cancels it and resume runs it again (it picks up
        where it stopped: claims and contacts are idempotent). A step stopped by the
        channel's rules (quiet hours, today's capacity used up) sleeps on a durable timer
        until the time it names, then runs again."""
        while not self.cancelled:
            await workflow.wait_condition(lambda: not self.paused or self.cancelled)
            if self.cancelled:
                return
            handle = workflow.start_activity_method(
                CampaignActivities.run_step,
                StepInput(self.input.shard, step.id, step.kind, step.offer or "", step.script or "", route,
                          round(step.window_seconds * self.input.time_scale) if step.window_seconds else None,
                          self.plan.timezone or "", step.when_limited),
                task_queue=self.input.channel_queues.get(step.kind),
                start_to_close_timeout=timedelta(hours=6),
                heartbeat_timeout=timedelta(seconds=self.input.heartbeat_seconds),
                retry_policy=STEP_RETRY,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            # cancel only once this activation holds no result for the activity: a cancel
            # requested in the same activation as its completion names an activity the
            # server has closed, fails the workflow task (ACTIVITY_UNKNOWN), and the retry
            # replays the same race — the shard never closed
            await workflow.wait_condition(lambda: handle.done() or self.paused or self.cancelled)
            if not handle.done():
                handle.cancel()
            try:
                result = await handle
            except ActivityError as error:
                if not isinstance(error.cause, CancelledError):
                    raise
                continue
            self.summary.steps.append(result)
            if self.input.parent_id:
                parent = workflow.get_external_workflow_handle(self.input.parent_id)
                await parent.signal("shard_step_done", result)
            if result.resume_at is None:
                return
            self.waiting[route or "main"] = f"{result.waiting_for} until {_iso(result.resume_at)}"
            sleep = timedelta(seconds=result.resume_at - workflow.now().timestamp())
            if sleep > timedelta(0):
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self.cancelled, timeout=sleep)
            self.waiting.pop(route or "main", None)

    async def _wait(self, step: Step) -> None:
        """A durable timer that ends early once no member of the shard can be contacted:
        checked as the wait begins, a few times during it, and whenever the campaign says
        answers came in."""
        total = timedelta(seconds=(step.wait_seconds or 0) * self.input.time_scale)
        deadline = workflow.now() + total
        check_every = max(total / 4, timedelta(minutes=1))
        while not self.cancelled and workflow.now() < deadline:
            anyone = await workflow.execute_activity_method(
                CampaignActivities.anyone_left, self.input.shard,
                start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
            )
            remaining = deadline - workflow.now()
            if not anyone or remaining <= timedelta(0):
                return
            self.answers_arrived = False
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(lambda: self.cancelled or self.answers_arrived,
                                              timeout=min(check_every, remaining))

    @workflow.signal
    def pause(self) -> None:
        self.paused = True

    @workflow.signal
    def recheck(self) -> None:
        """Customers have answered: a wait looks at once whether anyone is left to contact."""
        self.answers_arrived = True

    @workflow.signal
    def resume(self) -> None:
        self.paused = False

    @workflow.signal
    def cancel(self) -> None:
        self.cancelled = True

    @workflow.query
    def where(self) -> dict[str, str]:
        """The node each route of this shard is at, and what it waits for if it does."""
        return {route: node + (f" ({self.waiting[route]})" if route in self.waiting else "")
                for route, node in self.position.items()}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="minutes")
