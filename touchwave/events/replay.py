"""`touchwave events replay FILE`: bulk or back-filled events from a JSON Lines file (one
event per line, .gz allowed), ingested in batches exactly as `POST /v1/events` does."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client

from touchwave.config import Settings
from touchwave.errors import UserError
from touchwave.events.ingest import BATCH_LIMIT, Ingested, Rejected, ingest
from touchwave.notify import EntryNotifier


@dataclass
class Replayed(Ingested):
    #: why the campaigns' workflows could not be told (None: they were)
    untold: str | None = None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("rb") as probe:
            zipped = probe.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rt", encoding="utf-8") if zipped else path.open(encoding="utf-8")) as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield number, line
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None


async def _client(settings: Settings) -> tuple[Client | None, str | None]:
    try:
        return await asyncio.wait_for(Client.connect(settings.temporal_address,
                                                     namespace=settings.temporal_namespace), 5), None
    except (RuntimeError, OSError, asyncio.TimeoutError):
        return None, f"nothing answers at {settings.temporal_address}"


async def replay(engine: Engine, settings: Settings, file: str | Path, batch_size: int = BATCH_LIMIT) -> Replayed:
    """Ingest every line; a line that is not JSON or not a good event is reported with its
    number (index = line - 1) and the rest go on."""
    batch_size = min(batch_size, BATCH_LIMIT)
    client, untold = await _client(settings)
    notifier = EntryNotifier(client) if client else None
    total = Replayed(untold=untold)
    batch: list[Any] = []
    numbers: list[int] = []

    async def flush() -> None:
        result = await asyncio.to_thread(ingest, engine, batch)
        total.received += result.received
        total.accepted += result.accepted
        total.duplicates += result.duplicates
        total.expired += result.expired
        total.rejected += [Rejected(numbers[r.index] - 1, r.id, r.reason) for r in result.rejected]
        for campaign_id, count in result.entered.items():
            total.entered[campaign_id] = total.entered.get(campaign_id, 0) + count
            if notifier:
                notifier.entered(campaign_id, count)
        if notifier:
            await notifier.flush()
        batch.clear()
        numbers.clear()

    for number, line in _lines(Path(file)):
        try:
            batch.append(json.loads(line))
        except json.JSONDecodeError as exc:
            total.received += 1
            total.rejected.append(Rejected(number - 1, None, f"not JSON: {exc.msg}"))
            continue
        numbers.append(number)
        if len(batch) == batch_size:
            await flush()
    if batch:
        await flush()
    return total
