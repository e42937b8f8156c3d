"""The order outbox: accepted offers delivered to BOSS exactly once, at BOSS's pace.

An accepted answer writes its order in the transaction that records the answer
(`place`), so no "yes" is ever lost between the marketing system and billing. A
dispatcher takes due orders in batches (`pending → sending`, with a lease), submits them
through the BOSS adapter and settles them (`delivered`, `failed` with the reason, or back
to `pending` with backoff after a transient error). A dispatcher that dies mid-batch
leaves its orders `sending`; when the lease runs out any dispatcher takes them again,
and BOSS, keyed by the order's idempotency key, acknowledges a repeat without ordering
twice: delivered once, none lost.

The dispatcher itself is `touchwave.dispatcher`; this module is the outbox's SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, select, text

from touchwave.errors import UserError
from touchwave.store.models import Campaign, FlowchartTemplate, utc_binds, utcnow

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=5)


def order_key(campaign_id: int, subscriber_id: int) -> str:
    return f"order:{campaign_id}:{subscriber_id}"


def offer_of(conn: Connection, campaign_id: int, channel: str) -> str:
    """The offer the customer said yes to: that of the campaign's step in the channel they
    answered through, else the campaign's first offer ("target, offer, script" is one offer
    in every channel in the seeds' campaigns)."""
    plan = conn.execute(select(FlowchartTemplate.plan).join(Campaign, Campaign.template_id == FlowchartTemplate.id)
                        .where(Campaign.id == campaign_id)).scalar_one()
    offers = [(s["kind"], s["offer"]) for s in plan["steps"] if s.get("offer")]
    return next((offer for kind, offer in offers if kind == channel), offers[0][1])


def place(conn: Connection, campaign_id: int, subscriber_id: int, msisdn: str, channel: str) -> None:
    """Write the order for an accepted offer, in the caller's transaction (one per
    customer per campaign: a repeat is a no-op)."""
    now = utcnow()
    conn.execute(text(
        "INSERT INTO orders (campaign_id, subscriber_id, msisdn, offer, channel, idempotency_key, status, attempts,"
        " due_at, created_at, updated_at) VALUES (:campaign, :subscriber, :msisdn, :offer, :channel, :key,"
        " 'pending', 0, :now, :now, :now) ON CONFLICT (idempotency_key) DO NOTHING").bindparams(*utc_binds("now")),
        {"campaign": campaign_id, "subscriber": subscriber_id, "msisdn": msisdn, "channel": channel,
         "offer": offer_of(conn, campaign_id, channel), "key": order_key(campaign_id, subscriber_id), "now": now})


@dataclass(frozen=True)
class Answer:
    """BOSS's word on one order."""

    idempotency_key: str
    accepted: bool
    boss_order_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class OrderRow:
    id: int
    campaign_id: int
    msisdn: str
    offer: str
    idempotency_key: str
    attempts: int
    status: str = "sending"
    last_error: str | None = None


def take_due(engine: Engine, limit: int, now: datetime, lease: timedelta = LEASE) -> list[OrderRow]:
    """Orders due now, and orders whose dispatcher's lease ran out: `sending` under a new
    lease, attempts counted. PostgreSQL skips rows another dispatcher is taking."""
    skip = " FOR UPDATE SKIP LOCKED" if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        rows = conn.execute(text(
            "UPDATE orders SET status = 'sending', due_at = :lease_end, attempts = attempts + 1, updated_at = :now "
            "WHERE id IN (SELECT id FROM orders WHERE status IN ('pending', 'sending') AND due_at <= :now "
            f"ORDER BY due_at, id LIMIT :limit{skip}) "
            "RETURNING id, campaign_id, msisdn, offer, idempotency_key, attempts"
        ).bindparams(*utc_binds("now", "lease_end")), {"now": now, "lease_end": now + lease, "limit": limit}).all()
    return sorted((OrderRow(*row) for row in rows), key=lambda o: o.id)


def settle(engine: Engine, taken: Sequence[OrderRow], answers: Sequence[Answer] | None, now: datetime,
           error: str | None = None, max_attempts: int = MAX_ATTEMPTS, backoff: timedelta = BACKOFF) -> None:
    """BOSS's answers (or, with `error`, a batch that did not get through) for taken orders."""
    by_key = {o.idempotency_key: o for o in taken}
    answered = [{"status": "delivered" if a.accepted else "failed", "boss": a.boss_order_id,
                 "reason": None if a.accepted else a.reason, "now": now, "id": by_key[a.idempotency_key].id}
                for a in answers or ()]
    failed = [{"status": "failed" if o.attempts >= max_attempts else "pending", "error": error[:500], "now": now,
               "id": o.id, "due": now + backoff * 2 ** (o.attempts - 1)} for o in taken] if error is not None else []
    # one executemany per kind of outcome: the driver sends the batch, not a round trip per order
    with engine.begin() as conn:
        if answered:
            conn.execute(text(
                "UPDATE orders SET status = :status, boss_order_id = :boss, last_error = :reason, updated_at = :now "
                "WHERE id = :id AND status = 'sending'").bindparams(*utc_binds("now")), answered)
        if failed:
            conn.execute(text(
                "UPDATE orders SET status = :status, due_at = :due, last_error = :error, updated_at = :now "
                "WHERE id = :id AND status = 'sending'").bindparams(*utc_binds("now", "due")), failed)


def listed(engine: Engine, status: str | None = None, limit: int = 100) -> list[OrderRow]:
    condition = "WHERE status = :status " if status else ""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, campaign_id, msisdn, offer, idempotency_key, attempts, status, last_error FROM orders "
            f"{condition}ORDER BY id LIMIT :limit"), {"status": status, "limit": limit}).all()
    return [OrderRow(*row) for row in rows]


def retry(engine: Engine, ids: Sequence[int] | None = None) -> int:
    """Failed orders (these, or all) go back to the outbox, due now, attempts reset."""
    if ids is not None and not ids:
        raise UserError("name the orders to retry, or --all-failed")
    which = "AND id IN :ids" if ids is not None else ""
    statement = text(f"UPDATE orders SET status = 'pending', attempts = 0, due_at = :now, updated_at = :now "
                     f"WHERE status = 'failed' {which}").bindparams(*utc_binds("now"))
    if ids is not None:
        statement = statement.bindparams(bindparam("ids", expanding=True))
    with engine.begin() as conn:
        return conn.execute(statement, {"now": utcnow(), **({"ids": list(ids)} if ids is not None else {})}).rowcount
