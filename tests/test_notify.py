"""The entry notifier tells a trigger campaign at once, then at most once per gap: a
stream of events costs a signal per campaign per gap, and nothing entered goes untold."""

from __future__ import annotations

import asyncio

from touchwave.notify import EntryNotifier


class Signals:
    """Stands in for the Temporal client: records the signals each workflow gets."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, dict]] = []

    def get_workflow_handle(self, workflow_id: str):
        signals = self

        class Handle:
            async def signal(self, name: str, counts: dict) -> None:
                signals.got.append((workflow_id, name, counts))

        return Handle()


async def test_a_campaign_is_told_at_once_then_at_most_once_per_gap_with_the_sum():
    signals = Signals()
    notifier = EntryNotifier(signals)
    notifier.min_gap_seconds = 0.3
    notifier.entered(1, 3)
    assert await notifier.flush() == 1
    notifier.entered(1, 2)
    notifier.entered(2, 1)
    # campaign 1 was told a moment ago: held; campaign 2 never was: told at once
    assert await notifier.flush() == 1
    notifier.entered(1, 4)
    await asyncio.sleep(0.3)
    assert await notifier.flush() == 1
    assert signals.got == [("campaign-1", "entries_added", {"entered": 3}),
                           ("campaign-2", "entries_added", {"entered": 1}),
                           ("campaign-1", "entries_added", {"entered": 6})]


async def test_the_last_flush_tells_everything_held():
    signals = Signals()
    notifier = EntryNotifier(signals, every_seconds=0.01)
    running = asyncio.create_task(notifier.run())
    notifier.entered(7, 1)
    await asyncio.sleep(0.05)
    notifier.entered(7, 2)  # within the gap: held until the gap is over, or the notifier stops
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert signals.got == [("campaign-7", "entries_added", {"entered": 1}),
                           ("campaign-7", "entries_added", {"entered": 2})]
