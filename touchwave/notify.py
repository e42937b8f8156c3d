"""Telling campaign workflows about customers' answers, in batches.

Answers arrive one by one from halls, 10086 and gateways; a campaign workflow wants to
know (for its progress and to end a wait early once nobody is left to contact) but must
not get one signal per member. The notifier counts answers per campaign and sends one
`responses_recorded` signal per campaign per flush.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from touchwave.campaigns import workflow_id

log = logging.getLogger(__name__)


class ResponseNotifier:
    #: the campaign workflow's signal that takes the counts
    signal = "responses_recorded"

    #: a campaign told less than this long ago is told again only after it (0: every flush)
    min_gap_seconds: float = 0.0

    def __init__(self, client: Client, every_seconds: float = 1.0,
                 workflow_of: Callable[[int], str] = workflow_id) -> None:
        self.client = client
        self.every_seconds = every_seconds
        self.workflow_of = workflow_of
        self._pending: dict[int, Counter[str]] = {}
        self._told: dict[int, float] = {}  # campaign → when it was last told (monotonic)
        self._lock = threading.Lock()  # answers are added from the API's worker threads

    def add(self, campaign_id: int, channel: str, outcome: str) -> None:
        with self._lock:
            self._pending.setdefault(campaign_id, Counter())[f"{channel}:{outcome}"] += 1

    async def flush(self, everything: bool = False) -> int:
        """Signal every campaign with answers since the last flush (but those told less
        than `min_gap_seconds` ago, unless `everything`); returns how many were told.
        A campaign whose workflow is gone is dropped; on other errors its counts wait for
        the next flush."""
        now = time.monotonic()
        with self._lock:
            pending = {c: n for c, n in self._pending.items()
                       if everything or c not in self._told or now - self._told[c] >= self.min_gap_seconds}
            for campaign_id in pending:
                del self._pending[campaign_id]
        told = 0
        for campaign_id, counts in pending.items():
            try:
                await self.client.get_workflow_handle(self.workflow_of(campaign_id)).signal(
                    self.signal, dict(counts))
                self._told[campaign_id] = now
                told += 1
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    continue  # finished or never started: nothing is waiting for these answers
                log.warning("could not tell the campaign about answers; will retry",
                            extra={"campaign": campaign_id, "error": exc.message})
                with self._lock:
                    self._pending.setdefault(campaign_id, Counter()).update(counts)
        return told

    async def run(self) -> None:
        """Flush every `every_seconds` until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(self.every_seconds)
                await self.flush()
        finally:
            await asyncio.shield(self.flush(everything=True))


class EntryNotifier(ResponseNotifier):
    """Tells trigger campaigns' workflows that events entered subscribers (`entries_added`):
    they act at once instead of at their next look. Flushed often, since the first
    contact should follow the event within a second, but a campaign is told at most once
    a second: a campaign told a moment ago is serving (`TriggerInput.idle_seconds`, which
    is longer) and finds its new members in the store without being told, so a stream of
    events costs Temporal a signal a second per campaign, not one per flush."""

    signal = "entries_added"
    min_gap_seconds = 1.0

    def __init__(self, client: Client, every_seconds: float = 0.05,
                 workflow_of: Callable[[int], str] = workflow_id) -> None:
        super().__init__(client, every_seconds, workflow_of)

    def entered(self, campaign_id: int, count: int) -> None:
        with self._lock:
            self._pending.setdefault(campaign_id, Counter())["entered"] += count
