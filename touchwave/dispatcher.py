"""The order dispatcher: takes due orders from the outbox, submits them to BOSS at BOSS's
pace, settles them. Runs beside the workers (`touchwave worker`, the embedded stack) or
alone (`touchwave orders dispatch`).

The rate limit (`TOUCHWAVE_BOSS_RATE`, orders/s; seed 004's flow controller) is the
dispatcher's own: run one dispatcher per BOSS (it is light), or give each of N
dispatchers 1/N of the rate.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from channel_adapters.base import ChannelError
from channel_adapters.boss import BossAdapter, OrderRequest
from touchwave import orders
from touchwave.logs import mask_msisdn
from touchwave.store.models import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dispatched:
    taken: int
    delivered: int
    failed: int
    retrying: int


def dispatch_once(engine: Engine, boss: BossAdapter, now: datetime | None = None, limit: int = 200,
                  lease: timedelta = orders.LEASE) -> Dispatched:
    """One batch: take due orders, submit them, settle them."""
    now = now or utcnow()
    taken = orders.take_due(engine, limit, now, lease)
    if not taken:
        return Dispatched(0, 0, 0, 0)
    requests = [OrderRequest(o.idempotency_key, o.msisdn, o.offer, o.campaign_id) for o in taken]
    try:
        answers = boss.submit(requests)
    except ChannelError as exc:
        log.warning("BOSS did not take a batch of orders; they will be retried",
                    extra={"orders": len(taken), "error": str(exc)})
        orders.settle(engine, taken, None, now, error=str(exc))
        return Dispatched(len(taken), 0, 0, len(taken))
    orders.settle(engine, taken, answers, now)
    refused = 0
    for answer, order in zip(answers, taken, strict=True):
        if not answer.accepted:
            refused += 1
            log.warning("BOSS refused an order", extra={"order": order.id, "msisdn": mask_msisdn(order.msisdn),
                                                        "reason": answer.reason})
    return Dispatched(len(taken), len(taken) - refused, refused, 0)


def run_dispatcher(engine: Engine, boss: BossAdapter, stop: threading.Event, idle_seconds: float = 1.0,
                   limit: int = 200) -> None:
    """Dispatch until `stop` is set; sleeps only when nothing is due."""
    while not stop.is_set():
        try:
            done = dispatch_once(engine, boss, limit=limit)
        except Exception:  # the database was unreachable: log it and try again, do not die
            log.exception("order dispatch failed; retrying")
            done = Dispatched(0, 0, 0, 0)
        if done.taken < limit:
            stop.wait(idle_seconds)
