"""Do-not-disturb: numbers that active channels must not contact.

An entry holds one number at one scope — `global`, `channel:<channel>` or
`business_line:<line>` — with its source and an optional expiry. Active channels (SMS,
outbound, app push) never contact a number with an entry in force for the channel or
the campaign's business line: the claim writes its ledger row as `suppressed` (reason
`dnd`) in the same transaction, so no later statement sends it. Passive channels still
show the offer when the customer comes to us, flagged so the agent does not push.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, DateTime, Engine, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite

from touchwave.csvfile import open_csv
from touchwave.errors import UserError
from touchwave.store.models import Channel, DndSource, DoNotDisturb, as_utc, utcnow
from touchwave.store.subscribers import normalise_msisdn

if TYPE_CHECKING:
    from channel_adapters.outbound import OutboundAdapter

log = logging.getLogger(__name__)

GLOBAL = "global"

def _in_force(channel_sql: str) -> str:
    """Entry `d` is in force for the channel `channel_sql` or the business line of campaign `k`."""
    return (f"d.scope IN ('global', 'channel:' || {channel_sql}, 'business_line:' || k.business_line) "
            "AND (d.expires_at IS NULL OR d.expires_at > :now)")


#: an entry in force for contact `m` (a campaign member, with `s` its subscriber and `k`
#: its campaign) on channel :channel, evaluated in the claim's own statement
def in_force_sql(channel_sql: str = "CAST(:channel AS VARCHAR)") -> str:
    """An entry in force covers subscriber `s` of campaign `k` for the channel
    `channel_sql` (the bound :channel, or a column when several channels are weighed)."""
    return f"EXISTS (SELECT 1 FROM dnd_entries d WHERE d.msisdn = s.msisdn AND {_in_force(channel_sql)})"


IN_FORCE_SQL = in_force_sql()


def any_in_force(conn: Connection, campaign_id: int, channel: str, now: datetime) -> bool:
    """Some entry is in force for `channel` or campaign's business line, for anyone.

    A claim asks first, in its own transaction: with none, the per-member test (an index
    probe for every eligible member, 1 µs each) cannot suppress anybody and is left out."""
    return conn.execute(text(
        "SELECT 1 FROM dnd_entries d JOIN campaigns k ON k.id = :campaign "
        f"WHERE {_in_force('CAST(:channel AS VARCHAR)')} LIMIT 1"
    ).bindparams(bindparam("now", type_=DateTime(timezone=True))),
        {"campaign": campaign_id, "channel": channel, "now": now}).first() is not None


@dataclass(frozen=True)
class DndEntry:
    msisdn: str
    scope: str
    source: DndSource
    note: str | None = None
    expires_at: datetime | None = None


def parse_scope(raw: str) -> str:
    """`global`, `channel:<channel>` or `business_line:<line>`, or a clear refusal."""
    scope = raw.strip()
    if scope == GLOBAL:
        return scope
    kind, _, value = scope.partition(":")
    if kind == "channel" and value in {c.value for c in Channel}:
        return scope
    if kind == "business_line" and 0 < len(value) <= 64:
        return scope
    raise UserError(f"{raw!r} is not a do-not-disturb scope: global, channel:<{'|'.join(c.value for c in Channel)}> "
                    "or business_line:<line>")


def entry(msisdn: str, scope: str, source: str, note: str | None = None,
          expires: str | date | datetime | None = None) -> DndEntry:
    """A checked entry from what a person typed or a file held."""
    number = normalise_msisdn(msisdn)
    if number is None:
        raise UserError(f"{msisdn!r} is not a mainland mobile number")
    try:
        kind = DndSource(source)
    except ValueError:
        raise UserError(f"{source!r} is not a do-not-disturb source ({', '.join(s.value for s in DndSource)})") from None
    return DndEntry(number, parse_scope(scope), kind, note or None, _expiry(expires))


def _expiry(value: str | date | datetime | None) -> datetime | None:
    """A date means the end of that day (UTC); a datetime without zone is UTC."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise UserError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO timestamp") from None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.max)
    return as_utc(value)


@dataclass(frozen=True)
class Added:
    #: distinct (number, scope) entries stored
    stored: int
    #: contacts claimed but not yet sent that the new entries now cover
    suppressed: int
    #: call tasks queued at the call centre for covered numbers, withdrawn there
    withdrawn_calls: int


_COVERED = (
    "subscriber_id IN (SELECT s.id FROM subscribers s JOIN dnd_entries n ON n.msisdn = s.msisdn "
    "WHERE n.created_at = :stamp) "
    "AND EXISTS (SELECT 1 FROM dnd_entries d JOIN campaigns k ON k.id = contact_ledger.campaign_id "
    "WHERE d.msisdn = contact_ledger.address "
    "AND d.scope IN ('global', 'channel:' || contact_ledger.channel, 'business_line:' || k.business_line) "
    "AND (d.expires_at IS NULL OR d.expires_at > :stamp))"
)
_SUPPRESS_CLAIMED = text(
    "UPDATE contact_ledger SET status = 'suppressed', reason = 'dnd' "
    f"WHERE status = 'claimed' AND channel IN ('sms', 'outbound', 'app') AND {_COVERED}"
).bindparams(bindparam("stamp", type_=DateTime(timezone=True)))
_QUEUED_CALLS = text(
    "SELECT external_id FROM contact_ledger WHERE channel = 'outbound' AND status = 'sent' "
    f"AND external_id IS NOT NULL AND {_COVERED}"
).bindparams(bindparam("stamp", type_=DateTime(timezone=True)))


def add(engine: Engine, entries: Iterable[DndEntry], created_by: str, outbound: OutboundAdapter | None = None,
        batch_size: int = 1000) -> Added:
    """Create or update entries, in one transaction: the same number and scope again
    takes the newer source, note and expiry (within `entries` too: the last one wins).

    The same transaction suppresses the covered contacts a running step has claimed
    but not yet sent; call tasks already queued at the call centre are withdrawn there
    afterwards (with `outbound`), as for a completed customer.
    """
    stamp = utcnow()
    latest = {(e.msisdn, e.scope): e for e in entries}
    rows = [{"msisdn": e.msisdn, "scope": e.scope, "source": e.source.value, "note": e.note,
             "expires_at": e.expires_at, "created_by": created_by, "created_at": stamp} for e in latest.values()]
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        for start in range(0, len(rows), batch_size):
            statement = dialect.insert(DoNotDisturb.__table__).values(rows[start:start + batch_size])
            conn.execute(statement.on_conflict_do_update(
                index_elements=["msisdn", "scope"],
                set_={c: statement.excluded[c] for c in ("source", "note", "expires_at", "created_by", "created_at")},
            ))
        suppressed = conn.execute(_SUPPRESS_CLAIMED, {"stamp": stamp}).rowcount if rows else 0
        queued = list(conn.execute(_QUEUED_CALLS, {"stamp": stamp}).scalars()) if rows else []
    # here, not at the top: the claim (touchwave.contacts) reads this module's SQL, and the
    # channel adapters read touchwave.contacts
    from channel_adapters.base import ChannelError
    from touchwave import contacts

    withdrawn: list[str] = []
    if queued and outbound is not None:
        try:
            withdrawn = outbound.withdraw(queued)
        except ChannelError as exc:
            log.warning("could not withdraw queued calls of do-not-disturb numbers",
                        extra={"calls": len(queued), "error": str(exc)})
        else:
            contacts.mark_withdrawn(engine, withdrawn, "dnd")
    return Added(len(rows), suppressed, len(withdrawn))


def remove(engine: Engine, msisdn: str, scope: str) -> bool:
    number = normalise_msisdn(msisdn)
    if number is None:
        raise UserError(f"{msisdn!r} is not a mainland mobile number")
    with engine.begin() as conn:
        return conn.execute(delete(DoNotDisturb).where(DoNotDisturb.msisdn == number,
                                                       DoNotDisturb.scope == parse_scope(scope))).rowcount > 0


def entries_for(conn: Connection, msisdn: str, in_force_only: bool = False) -> list[DndEntry]:
    query = select(DoNotDisturb).where(DoNotDisturb.msisdn == msisdn).order_by(DoNotDisturb.scope)
    rows = [DndEntry(r.msisdn, r.scope, DndSource(r.source), r.note, r.expires_at)
            for r in conn.execute(query)]
    if in_force_only:
        moment = utcnow()
        rows = [e for e in rows if e.expires_at is None or as_utc(e.expires_at) > moment]
    return rows


def applies(entries: Iterable[DndEntry], channel: str, business_line: str) -> bool:
    """Whether any of a number's entries in force covers this channel or business line."""
    scopes = {GLOBAL, f"channel:{channel}", f"business_line:{business_line}"}
    return any(e.scope in scopes for e in entries)


def read_csv(path: str | Path) -> list[DndEntry]:
    """Entries from a CSV with msisdn, scope, source and optional expires_at and note;
    a bad row stops the import with its line (nothing is stored)."""
    with open_csv(path, ("msisdn", "scope", "source")) as reader:
        entries = []
        for record in reader:
            try:
                entries.append(entry(record["msisdn"] or "", record["scope"] or "", record["source"] or "",
                                     record.get("note"), record.get("expires_at")))
            except UserError as exc:
                raise UserError(f"{path}, line {reader.line_num}: {exc}") from None
        return entries
