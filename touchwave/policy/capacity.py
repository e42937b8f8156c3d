"""Daily capacity of a channel, shared out best-first across campaigns.

A capacity-limited step claims all its eligible members at once (ledger rows `claimed`:
the channel's queue), then hands out only the contacts that rank inside what is left of
today's capacity. The queue is ranked across every running campaign: higher priority
first, then the older campaign, then claim order. What does not fit waits for tomorrow
(reason `capacity`); a higher-priority campaign that claims later still goes first the
next day. A paused campaign's queue is passed over, so it does not hold capacity.

The count of contacts handed out per day is one row (`channel_usage`), locked by the
statement that raises it: two steps never share out the same capacity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, Date, Engine, bindparam, text

from touchwave import contacts
from touchwave.contacts import Outgoing, Shard
from touchwave.store.models import queued_sql, utc_binds

#: the channel's queue across running campaigns, best first (uses ix_contact_ledger_queued)
_QUEUE = (
    "queue AS (SELECT c.id, c.campaign_id, c.step_id, c.subscriber_id,"
    " row_number() OVER (ORDER BY k.priority DESC, c.campaign_id, c.id) AS rank"
    " FROM contact_ledger c JOIN campaigns k ON k.id = c.campaign_id"
    f" WHERE {queued_sql('c.')} AND c.channel = :channel"
    " AND k.status = 'running')"
)

#: the shard's next contacts inside what is left of today's capacity
_HAND_OUT = (
    f"WITH {_QUEUE} "
    "SELECT c.id, c.subscriber_id, c.idempotency_key, c.address FROM queue q JOIN contact_ledger c ON c.id = q.id"
    " WHERE q.rank <= :allowance AND q.campaign_id = :campaign AND q.step_id = :step"
    " AND q.subscriber_id BETWEEN :first AND :last ORDER BY q.subscriber_id LIMIT :limit"
)

_PLANNED = text(
    f"WITH {_QUEUE} "
    "SELECT step_id, (rank - 1 + :used) / :capacity AS day, count(*) AS contacts FROM queue "
    "WHERE campaign_id = :campaign GROUP BY 1, 2 ORDER BY 1, 2"
)


@contextmanager
def _usage(conn: Connection, channel: str, day: date) -> Iterator[int]:
    """Today's count for the channel, locked until the transaction ends (SQLite: the
    store's one connection is the lock)."""
    params = {"channel": channel, "day": day}
    day_param = bindparam("day", type_=Date)
    conn.execute(text("INSERT INTO channel_usage (channel, day, used) VALUES (:channel, :day, 0) "
                      "ON CONFLICT (channel, day) DO NOTHING").bindparams(day_param), params)
    lock = " FOR UPDATE" if conn.dialect.name == "postgresql" else ""
    yield conn.execute(text(f"SELECT used FROM channel_usage WHERE channel = :channel AND day = :day{lock}")
                       .bindparams(day_param), params).scalar_one()


def hand_out(engine: Engine, shard: Shard, step_id: str, channel: str, capacity: int, day: date, limit: int,
             window: timedelta | None = None) -> list[Outgoing]:
    """The next contacts of this shard's step that fit in today's capacity, taken from
    the queue (`claimed → sending`; passive channels: `claimed → open` for `window`,
    and the members count as contacted). Empty once today's share is handed out."""
    now = contacts.now()
    with engine.begin() as conn, _usage(conn, channel, day) as used:
        allowance = capacity - used
        if allowance <= 0:
            return []
        params = {**shard.params, "channel": channel, "step": step_id, "allowance": allowance,
                  "limit": limit, "now": now}
        if window is None:
            taken = contacts.take_picked(conn, _HAND_OUT, "status = 'sending', at = :now", params, *utc_binds("now"))
        else:
            taken = contacts.take_picked(
                conn, _HAND_OUT, "status = 'open', reason = NULL, at = :now, window_ends_at = :ends",
                {**params, "ends": now + window}, *utc_binds("now", "ends"))
            contacts.mark_contacted(conn, shard.campaign_id, [t.subscriber_id for t in taken])
        if taken:
            conn.execute(text("UPDATE channel_usage SET used = used + :n WHERE channel = :channel AND day = :day")
                         .bindparams(bindparam("day", type_=Date)), {"n": len(taken), "channel": channel, "day": day})
        return taken


@dataclass(frozen=True)
class PlannedDay:
    step_id: str
    day: date
    contacts: int


def planned_days(engine: Engine, campaign_id: int, channel: str, capacity: int, today: date) -> list[PlannedDay]:
    """Which day the campaign's queued contacts of `channel` are due, if nobody ahead of
    them changes: their rank in the queue after what today has already used."""
    with engine.connect() as conn:
        used = conn.execute(text("SELECT used FROM channel_usage WHERE channel = :channel AND day = :day")
                            .bindparams(bindparam("day", type_=Date)), {"channel": channel, "day": today}
                            ).scalar_one_or_none() or 0
        rows = conn.execute(_PLANNED, {"channel": channel, "used": used, "capacity": capacity,
                                       "campaign": campaign_id}).all()
    return [PlannedDay(step, today + timedelta(days=int(offset)), count) for step, offset, count in rows]
