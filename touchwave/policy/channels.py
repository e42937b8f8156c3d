"""Per-channel rules that do not depend on the subscriber: quiet hours and daily capacity.

Quiet hours: no active contact (SMS, outbound call, app push) between `quiet_from` and
`quiet_until` in the campaign's time zone (default 21:00–08:00, seeded by the migration).
A step that meets them stops between batches and its shard sleeps on a durable timer
until the window opens; nothing is dropped.

Daily capacity: how many contacts the channel takes per day across all campaigns (the
call centre's seats × calls per seat; a hall's or 10086's offer budget). A step larger
than what is left today hands out today's share and waits for tomorrow. Shares go
best-first across campaigns: higher priority, then the older campaign, then claim order.
Days are the operator's (`TOUCHWAVE_TIMEZONE`): the call centre's day does not change with
a campaign's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from touchwave.errors import UserError
from touchwave.store.models import CAPACITY_CHANNELS, Channel, ChannelPolicy, utcnow

#: channels whose contacts can be held back by quiet hours (passive ones wait for the customer)
QUIET_CHANNELS = ("sms", "outbound", "app")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"{name!r} is not a time zone (IANA names such as Asia/Shanghai)") from None


def _clock(text: str) -> time:
    match = _CLOCK.match(text)
    if not match:
        raise UserError(f"{text!r} is not a time of day (HH:MM, 24-hour)")
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class ChannelRules:
    channel: str
    #: "HH:MM" local times; the window may run over midnight (21:00–08:00)
    quiet_from: str | None = None
    quiet_until: str | None = None
    #: contacts per day across all campaigns; None: unlimited
    daily_capacity: int | None = None
    #: what one contact costs (effect reports); None: not configured
    unit_cost: float | None = None

    def quiet_until_at(self, now: datetime, timezone: str) -> datetime | None:
        """When the quiet window that holds `now` opens again (UTC), or None outside it."""
        if not self.quiet_from or not self.quiet_until:
            return None
        local = now.astimezone(zone(timezone))
        start, end, at = _clock(self.quiet_from), _clock(self.quiet_until), local.time()
        inside = (start <= at < end) if start < end else (at >= start or at < end)
        if not inside:
            return None
        opens = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
        if opens <= local:
            opens = datetime.combine(local.date() + timedelta(days=1), end, tzinfo=local.tzinfo)
        return opens.astimezone(UTC)


def day_of(now: datetime, timezone: str) -> date:
    """The operator's day `now` falls in: capacity is counted per such day."""
    return now.astimezone(zone(timezone)).date()


def day_starts(now: datetime, timezone: str, later: int = 0) -> datetime:
    """Midnight of the operator's day holding `now` (`later` days on), as UTC, the
    ledger's clock: arbitration's "today" starts there, a capacity wait ends there."""
    tz = zone(timezone)
    day = now.astimezone(tz).date() + timedelta(days=later)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def rules_for(conn: Connection, channel: str) -> ChannelRules:
    table = ChannelPolicy.__table__
    row = conn.execute(select(table).where(table.c.channel == channel)).first()
    if row is None:
        return ChannelRules(channel)
    return ChannelRules(channel, row.quiet_from, row.quiet_until, row.daily_capacity,
                        None if row.unit_cost is None else float(row.unit_cost))


def every_rule(conn: Connection) -> list[ChannelRules]:
    stored = {r.channel: r for r in (rules_for(conn, c.value) for c in Channel)}
    return [stored[c.value] for c in Channel]


def quiet_window(text: str | None) -> tuple[str | None, str | None]:
    """`21:00-08:00` as its two ends; `none`/empty lifts quiet hours."""
    if text is None or text.strip().lower() in ("", "none", "off"):
        return None, None
    parts = [p.strip() for p in text.split("-")]
    if len(parts) != 2:
        raise UserError(f"{text!r} is not a quiet window: give FROM-UNTIL, e.g. 21:00-08:00, or none")
    start, end = (_clock(p) for p in parts)
    if start == end:
        raise UserError(f"{text!r}: a quiet window must not start and end at the same time")
    return parts[0], parts[1]


def set_rules(engine: Engine, channel: str, *, quiet: str | None | type[...] = ...,
              daily_capacity: int | None | type[...] = ...,
              unit_cost: float | None | type[...] = ...) -> ChannelRules:
    """Change a channel's quiet hours, capacity and/or unit cost (`...`: leave as it is)."""
    try:
        kind = Channel(channel)
    except ValueError:
        raise UserError(f"{channel!r} is not a channel ({', '.join(c.value for c in Channel)})") from None
    with engine.begin() as conn:
        current = rules_for(conn, kind.value)
        quiet_from, quiet_until = (current.quiet_from, current.quiet_until) if quiet is ... else quiet_window(quiet)
        if quiet_from and kind.passive:
            raise UserError(f"{channel} is passive (the customer comes to us): quiet hours do not apply")
        capacity = current.daily_capacity if daily_capacity is ... else daily_capacity
        if capacity is not None and kind.value not in CAPACITY_CHANNELS:
            raise UserError(f"{channel} has no daily capacity: it applies to {', '.join(CAPACITY_CHANNELS)}")
        if capacity is not None and capacity < 1:
            raise UserError("a daily capacity is at least 1 contact (or none for unlimited)")
        cost = current.unit_cost if unit_cost is ... else unit_cost
        if cost is not None and not (0 <= cost < 1e6):
            raise UserError("a unit cost is a non-negative amount per contact (or none)")
        values = {"quiet_from": quiet_from, "quiet_until": quiet_until, "daily_capacity": capacity,
                  "unit_cost": cost, "updated_at": utcnow()}
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(ChannelPolicy.__table__).values(channel=kind.value, **values)
        conn.execute(statement.on_conflict_do_update(index_elements=["channel"], set_=values))
    return ChannelRules(kind.value, quiet_from, quiet_until, capacity, cost)


def lift_quiet_hours(engine: Engine) -> None:
    """Every channel with default quiet hours open at any hour: for tests, which run at
    any time of day (the quiet-hours tests set windows of their own)."""
    for channel in QUIET_CHANNELS:
        set_rules(engine, channel, quiet=None)
