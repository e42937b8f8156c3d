"""Frequency caps: how often one subscriber may be contacted for marketing, across campaigns.

Counted from the contact ledger: contacts claimed, being sent, sent or delivered
through active channels (SMS, outbound, app) since the period began. A claim writes a
`suppressed` row (reason `cap:<name>`) for every member a cap has used up; the member
goes on to the template's next step. Race-free across campaigns dispatching at once:
on PostgreSQL a capped claim first locks the shard's subscriber rows, in id order, so a
second campaign's claim of the same subscribers waits and then counts what the first
committed; on SQLite the count and the insert are one statement, and SQLite has one
writer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from touchwave.errors import UserError
from touchwave.store.models import FrequencyCap, utcnow

ACTIVE = ("sms", "outbound", "app")
COUNTED = ("claimed", "sending", "sent", "delivered")
_DAYS = re.compile(r"^P([1-9]\d{0,2})D$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Cap:
    name: str
    #: an active channel, or None for contacts through any of them
    channel: str | None
    max_contacts: int
    #: "P<n>D" (rolling days) or "month" (the calendar month)
    period: str

    def since(self, now: datetime, timezone: str) -> datetime:
        """When the period that contains `now` began."""
        if self.period == "month":
            local = now.astimezone(ZoneInfo(timezone))
            # in UTC, as the ledger stores times (SQLite compares them as text)
            return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        return now - timedelta(days=int(_DAYS.match(self.period).group(1)))


def cap(name: str, channel: str | None, max_contacts: int, period: str) -> Cap:
    """A checked cap, or a clear refusal."""
    if not _NAME.match(name):
        raise UserError(f"{name!r} is not a cap name (lower-case letters, digits, '_')")
    if channel in ("any", ""):
        channel = None
    if channel is not None and channel not in ACTIVE:
        raise UserError(f"{channel!r}: caps count active channels ({', '.join(ACTIVE)}) or any")
    if max_contacts < 0:
        raise UserError("a cap allows 0 or more contacts")
    if period != "month" and not _DAYS.match(period):
        raise UserError(f"{period!r} is not a period: P<days>D (rolling, e.g. P7D) or month")
    return Cap(name, channel, max_contacts, period)


def set_cap(engine: Engine, new: Cap) -> None:
    row = {"name": new.name, "channel": new.channel, "max_contacts": new.max_contacts, "period": new.period,
           "updated_at": utcnow()}
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(FrequencyCap.__table__).values(row)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["name"], set_={c: statement.excluded[c] for c in row if c != "name"}))


def remove_cap(engine: Engine, name: str) -> bool:
    with engine.begin() as conn:
        return conn.execute(delete(FrequencyCap).where(FrequencyCap.name == name)).rowcount > 0


def caps_for(conn: Connection, channel: str | None = None) -> list[Cap]:
    """Every cap, or those a contact through `channel` counts against."""
    query = select(FrequencyCap).order_by(FrequencyCap.name)
    if channel is not None:
        query = query.where(or_(FrequencyCap.channel.is_(None), FrequencyCap.channel == channel))
    return [Cap(r.name, r.channel, r.max_contacts, r.period) for r in conn.execute(query)]


def used_up_sql(caps: list[Cap], now: datetime, timezone: str) -> tuple[str, str, dict[str, Any]]:
    """For a claim: the SQL condition "a cap is used up for member m", the SQL reason
    naming the first such cap, and their parameters."""
    tests, params = [], {}
    for i, c in enumerate(caps):
        channels = f"c.channel = :cap_channel_{i}" if c.channel else \
            "c.channel IN (" + ", ".join(f"'{a}'" for a in ACTIVE) + ")"
        counted = ", ".join(f"'{s}'" for s in COUNTED)
        tests.append(f"(SELECT count(*) FROM contact_ledger c WHERE c.subscriber_id = m.subscriber_id "
                     f"AND {channels} AND c.status IN ({counted}) AND c.at >= :cap_since_{i}) >= :cap_max_{i}")
        params |= {f"cap_since_{i}": c.since(now, timezone), f"cap_max_{i}": c.max_contacts,
                   f"cap_reason_{i}": f"cap:{c.name}", **({f"cap_channel_{i}": c.channel} if c.channel else {})}
    condition = "(" + " OR ".join(tests) + ")"
    reason = "CASE " + " ".join(f"WHEN {t} THEN :cap_reason_{i}" for i, t in enumerate(tests)) + " END"
    return condition, reason, params
