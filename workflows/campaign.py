"""One workflow per campaign (id `campaign-<id>`): it cuts the audience into shards and
runs each as a child `ShardWorkflow`, a bounded number at a time, and forwards pause,
resume and cancel to them. Progress is reported by the shards after every step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.campaign import CampaignActivities, CohortInput, ShardRef, StatusInput, StepResult
    from workflows.shard import DB_TIMEOUT, STEP_RETRY, ShardInput, ShardWorkflow


@dataclass
class CampaignInput:
    campaign_id: int
    plan: dict
    shard_size: int = 50_000
    max_running_shards: int = 50
    time_scale: float = 1.0
    heartbeat_seconds: int = 60


@dataclass
class CampaignProgress:
    status: str
    members: int = 0
    shards: int = 0
    shards_done: int = 0
    #: per step, the shards' results added up
    steps: dict[str, StepResult] = field(default_factory=dict)


@workflow.defn
class CampaignWorkflow:
    @workflow.init
    def __init__(self, input: CampaignInput) -> None:
        # signals can arrive before `run` starts: everything they need is set here
        self.campaign_id = input.campaign_id
        self.progress = CampaignProgress(status="starting")
        self.paused = False
        self.cancelled = False
        self.children: dict[str, workflow.ChildWorkflowHandle] = {}

    @workflow.run
    async def run(self, input: CampaignInput) -> CampaignProgress:
        cohort = await workflow.execute_activity_method(
            CampaignActivities.open_cohort, CohortInput(input.campaign_id, 0, input.shard_size),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
        )
        self.progress.members, self.progress.shards = cohort.members, len(cohort.shards)
        await self._set_status(input.campaign_id, "running")
        shards = []
        for ref in cohort.shards:
            await workflow.wait_condition(lambda: len(self.children) < input.max_running_shards or self.cancelled)
            if self.cancelled:
                break
            shards.append(asyncio.create_task(self._run_shard(input, ref)))
        await asyncio.gather(*shards)
        if self.cancelled:
            await workflow.execute_activity_method(
                CampaignActivities.withdraw_campaign, input.campaign_id,
                start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
            )
        await self._set_status(input.campaign_id, "cancelled" if self.cancelled else "finished")
        return self.progress

    async def _run_shard(self, input: CampaignInput, ref: ShardRef) -> None:
        shard_id = f"{workflow.info().workflow_id}/cohort-{ref.cohort}/shard-{ref.index}"
        handle = await workflow.start_child_workflow(
            ShardWorkflow.run,
            ShardInput(ref, input.plan, input.time_scale, parent_id=workflow.info().workflow_id,
                       heartbeat_seconds=input.heartbeat_seconds),
            id=shard_id,
        )
        self.children[shard_id] = handle
        if self.paused:
            await handle.signal(ShardWorkflow.pause)
        try:
            await handle
        finally:
            del self.children[shard_id]
            self.progress.shards_done += 1

    async def _set_status(self, campaign_id: int, status: str) -> None:
        self.progress.status = status
        await workflow.execute_activity_method(
            CampaignActivities.set_status, StatusInput(campaign_id, status),
            start_to_close_timeout=DB_TIMEOUT, retry_policy=STEP_RETRY,
        )

    async def _tell_shards(self, signal) -> None:
        await asyncio.gather(*(handle.signal(signal) for handle in list(self.children.values())))

    @workflow.signal
    async def pause(self) -> None:
        self.paused = True
        await self._tell_shards(ShardWorkflow.pause)
        await self._set_status(self.campaign_id, "paused")

    @workflow.signal
    async def resume(self) -> None:
        self.paused = False
        await self._tell_shards(ShardWorkflow.resume)
        await self._set_status(self.campaign_id, "running")

    @workflow.signal
    async def cancel(self) -> None:
        self.cancelled = True
        self.progress.status = "cancelling"
        await self._tell_shards(ShardWorkflow.cancel)

    @workflow.signal
    def shard_step_done(self, result: StepResult) -> None:
        step = self.progress.steps.setdefault(result.step_id, StepResult(result.step_id, result.channel))
        step.claimed += result.claimed
        step.sent += result.sent
        step.failed += result.failed
        for reason, count in result.reasons.items():
            step.reasons[reason] = step.reasons.get(reason, 0) + count

    @workflow.query
    def status(self) -> CampaignProgress:
        return self.progress
