"""Building the Temporal worker: workflows, activities, and the channel adapters they use."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from activities.campaign import CampaignActivities
from channel_adapters.base import ChannelAdapter
from workflows.campaign import CampaignWorkflow
from workflows.shard import ShardWorkflow
from workflows.trigger import TriggerWorkflow, journeys_queue

TASK_QUEUE = "touchwave-campaigns"


class Workers:
    """The campaigns' workers: workflows and steps on the task queue, and trigger campaigns'
    serving (`serve_journeys`) on `journeys_queue(task_queue)` with threads of its own —
    each running trigger campaign holds one for seconds at a time, which on the shared
    slots would keep bulk waves' steps waiting. Used like a `Worker`."""

    def __init__(self, *workers: Worker) -> None:
        self.workers = workers

    async def run(self) -> None:
        await asyncio.gather(*(w.run() for w in self.workers))

    async def shutdown(self) -> None:
        await asyncio.gather(*(w.shutdown() for w in self.workers))

    async def __aenter__(self) -> Workers:
        # one that fails to start stops those already started
        async with contextlib.AsyncExitStack() as started:
            for worker in self.workers:
                await started.enter_async_context(worker)
            self._started = started.pop_all()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._started.__aexit__(*exc)


def build_worker(client: Client, engine: Engine, adapters: Mapping[str, ChannelAdapter],
                 task_queue: str = TASK_QUEUE, batch_size: int = 1000, threads: int = 8,
                 trigger_campaigns: int = 64) -> Workers:
    """`trigger_campaigns`: how many trigger campaigns this worker serves at once."""
    activities = CampaignActivities(engine, adapters, batch_size=batch_size)
    return Workers(
        _worker(client, task_queue, threads, [CampaignWorkflow, ShardWorkflow, TriggerWorkflow], activities.all),
        _worker(client, journeys_queue(task_queue), trigger_campaigns, [], [activities.serve_journeys]),
    )


def build_channel_worker(client: Client, engine: Engine, adapters: Mapping[str, ChannelAdapter], task_queue: str,
                         batch_size: int = 1000, threads: int = 8) -> Worker:
    """A worker that only sends: the channel steps of the campaigns' shards that the
    workflows route to `task_queue` (TOUCHWAVE_CHANNEL_QUEUES), so a gateway with a rate
    limit of its own gets as many (or as few) senders as it can take."""
    activities = CampaignActivities(engine, adapters, batch_size=batch_size)
    return _worker(client, task_queue, threads, [], [activities.run_step])


#: how long a thread may hold the GIL while another wants it (Python's default: 5 ms).
#: A step thread holding the store's one SQLite connection needs the GIL back after every
#: statement, behind the threads encoding and posting other batches: at the default it
#: waited up to 5 ms a statement with the connection held and idle. Bulk waves, (b) of
#: bench/bulk_waves.py at 400,000 members, interleaved runs: 5 ms 35.8k and 42.1k
#: customer-steps/s, 1 ms 45.8k and 51.1k. At 1,000,000 members a batch of 2,000 is
#: eight statements and commits, each up to an interval of waiting: interleaved runs,
#: 1 ms 93.2k and 97.9k, 0.2 ms 98.7k to 103.0k, 0.05 ms 105.1k and 105.2k.
GIL_SWITCH_SECONDS = 0.00005

#: net allocations between young collections of the garbage collector (Python's default:
#: 700). Eight step threads each hold a batch of 2,000 contacts in flight (taken, sent,
#: answered) across an HTTP call; at the default a young collection found them alive
#: every few hundred allocations and promoted them, and their promotion set off a full
#: collection of the worker's heap every 0.7 s, each about 110 ms with the GIL held: the
#: store's connection idle or held the while. Bench (b) at 400,000 members: 33 full
#: collections, 3.7 s of a 25.6 s run; at 20,000, none, and 0.05 s of young ones.
GC_YOUNG_THRESHOLD = 20_000


def _worker(client: Client, task_queue: str, threads: int, workflows: list, activities: list) -> Worker:
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, GC_YOUNG_THRESHOLD), *older)
    return Worker(client, task_queue=task_queue, workflows=workflows, activities=activities,
                  activity_executor=ThreadPoolExecutor(threads), max_concurrent_activities=threads)
