"""Building the Temporal worker: workflows, activities, and the channel adapters they use."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.campaign import CampaignActivities
from channel_adapters.base import ChannelAdapter
from workflows.campaign import CampaignWorkflow
from workflows.shard import ShardWorkflow
from workflows.trigger import TriggerWorkflow

TASK_QUEUE = "touchwave-campaigns"


def build_worker(client: Client, engine: Engine, adapters: Mapping[str, ChannelAdapter],
                 task_queue: str = TASK_QUEUE, batch_size: int = 1000, threads: int = 8) -> Worker:
    activities = CampaignActivities(engine, adapters, batch_size=batch_size)
    return _worker(client, task_queue, threads, [CampaignWorkflow, ShardWorkflow, TriggerWorkflow], activities.all)


def build_channel_worker(client: Client, engine: Engine, adapters: Mapping[str, ChannelAdapter], task_queue: str,
                         batch_size: int = 1000, threads: int = 8) -> Worker:
    """A worker that only sends: the channel steps of the campaigns' shards that the
    workflows route to `task_queue` (TOUCHWAVE_CHANNEL_QUEUES), so a gateway with a rate
    limit of its own gets as many (or as few) senders as it can take."""
    activities = CampaignActivities(engine, adapters, batch_size=batch_size)
    return _worker(client, task_queue, threads, [], [activities.run_step])


def _worker(client: Client, task_queue: str, threads: int, workflows: list, activities: list) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=workflows, activities=activities,
                  activity_executor=ThreadPoolExecutor(threads), max_concurrent_activities=threads)
