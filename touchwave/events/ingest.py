"""Receiving customer events and entering the subscribers they concern into the running
trigger campaigns that match.

A batch is checked event by event (a bad event is rejected with its reason and the rest
go on), stored in one statement that ignores ids already received, and matched in the
same transaction: the payload conditions in Python, then per campaign one INSERT …
SELECT that takes the subscribers the campaign's audience admits and whose re-entry
limit allows, due at the flowchart's first node now. The caller tells those campaigns'
workflows (`entries_added`); contact policy applies when the first step claims them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import (Boolean, Connection, Engine, Integer, Select, String, bindparam, case, literal, literal_column,
                        null, select)
from sqlalchemy.dialects import postgresql, sqlite

from touchwave.control import control_sql
from touchwave.errors import UserError
from touchwave.events import catalog
from touchwave.events.catalog import EventKind
from touchwave.events.conditions import Predicate, compile_conditions
from touchwave.segments.rules import Vocabulary, to_clause
from touchwave.store.models import Campaign, CampaignMember, CampaignStatus, Event, Segment, SegmentMember, Subscriber
from touchwave.store.subscribers import normalise_msisdn
from touchwave.store.templates import plan_of
from touchwave.templates.plan import Plan

#: the most events one call takes
BATCH_LIMIT = 1000


class EventIn(BaseModel):
    """One event as producers send it."""

    id: str = Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$",
                    description="the producer's unique id (printable ASCII): a resent event is ignored")
    type: str = Field(min_length=1, max_length=64)
    msisdn: str = Field(min_length=11, max_length=16)
    occurred_at: datetime = Field(description="when it happened (ISO 8601 with a zone; none: UTC)")
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    index: int
    id: str | None
    reason: str


@dataclass
class Ingested:
    received: int = 0
    #: new events stored
    accepted: int = 0
    #: ids already received (now or before): ignored
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    #: events too old for a campaign whose trigger they matched
    expired: int = 0
    #: subscribers entered, by trigger campaign id
    entered: dict[int, int] = field(default_factory=dict)


def ingest(engine: Engine, batch: Sequence[Any], now: datetime | None = None) -> Ingested:
    """Check, store and act on up to `BATCH_LIMIT` events."""
    if len(batch) > BATCH_LIMIT:
        raise UserError(f"at most {BATCH_LIMIT} events per batch, not {len(batch)}")
    now = now or datetime.now(UTC)
    result = Ingested(received=len(batch))
    with engine.begin() as conn:
        kinds = catalog.load(conn)
        events = _checked(batch, kinds, result)
        fresh = _store(conn, events, now)
        result.accepted = len(fresh)
        result.duplicates = len(batch) - len(result.rejected) - len(fresh)
        triggers = _running_triggers(conn, {e.type for e in fresh}) if fresh else []
        if triggers:
            vocabulary: list[Vocabulary] = []  # the tags, read once per batch if a rule needs them
            ids = dict(conn.execute(select(Subscriber.msisdn, Subscriber.id).where(
                Subscriber.msisdn.in_({e.msisdn for e in fresh}))).all())
            for campaign_id, plan in triggers:
                chosen = _matching(plan, kinds[plan.trigger.event], fresh, now, result)
                subscribers = [ids[m] for m in chosen if m in ids]
                if subscribers:
                    entered = _enter(conn, campaign_id, plan, chosen, subscribers, now, vocabulary)
                    if entered:
                        result.entered[campaign_id] = entered
    return result


def _checked(batch: Sequence[Any], kinds: dict[str, EventKind], result: Ingested) -> list[EventIn]:
    """The events that are well-formed, of a known type, with a payload their schema accepts."""
    good: list[EventIn] = []
    seen: set[str] = set()
    for index, raw in enumerate(batch):
        raw_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "event"
            result.rejected.append(Rejected(index, raw_id if isinstance(raw_id, str) else None,
                                            f"{where}: {problem['msg']}"))
            continue
        reason = _problem(event, kinds)
        if reason:
            result.rejected.append(Rejected(index, event.id, reason))
        elif event.id not in seen:
            seen.add(event.id)
            good.append(event)
    return good


def _problem(event: EventIn, kinds: dict[str, EventKind]) -> str | None:
    kind = kinds.get(event.type)
    if kind is None:
        return f'type: no event type "{event.type}" in the catalog'
    msisdn = normalise_msisdn(event.msisdn)
    if msisdn is None:
        return f"msisdn: {event.msisdn!r} is not a mainland mobile number"
    event.msisdn = msisdn
    if event.occurred_at.tzinfo is None:
        event.occurred_at = event.occurred_at.replace(tzinfo=UTC)
    if not _finite(event.payload):
        return "payload: numbers must be finite (no Infinity or NaN)"
    error = best_match(_validator(kind).iter_errors(event.payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        return f"payload{'/' + where if where else ''}: {error.message}"
    return None


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


_VALIDATORS: dict[str, tuple[dict, Draft202012Validator]] = {}


def _validator(kind: EventKind) -> Draft202012Validator:
    cached = _VALIDATORS.get(kind.name)
    if cached is None or cached[0] != kind.payload_schema:
        cached = _VALIDATORS[kind.name] = (kind.payload_schema, Draft202012Validator(kind.payload_schema))
    return cached[1]


def _insert(conn: Connection, table):
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def _store(conn: Connection, events: list[EventIn], now: datetime) -> list[EventIn]:
    """Store the events; those whose id was already received are left out."""
    if not events:
        return []
    rows = [{"id": e.id, "type": e.type, "msisdn": e.msisdn, "occurred_at": e.occurred_at, "received_at": now,
             "payload": e.payload} for e in events]
    statement = _insert(conn, Event.__table__).on_conflict_do_nothing(index_elements=["id"]).returning(Event.id)
    stored = set(conn.execute(statement, rows).scalars())
    return [e for e in events if e.id in stored]


def _running_triggers(conn: Connection, types: set[str]) -> list[tuple[int, Plan]]:
    rows = conn.execute(select(Campaign.id, Campaign.template_id).where(Campaign.status == CampaignStatus.RUNNING))
    found = []
    for campaign_id, template_id in rows.all():
        plan = plan_of(conn, template_id)
        if plan.trigger is not None and plan.trigger.event in types:
            found.append((campaign_id, plan))
    return found


_CONDITIONS: dict[tuple[str, str], Predicate] = {}


def _matching(plan: Plan, kind: EventKind, events: list[EventIn], now: datetime,
              result: Ingested) -> dict[str, EventIn]:
    """The campaign's events that pass its trigger's age limit and payload conditions,
    one per subscriber (the first)."""
    trigger = plan.trigger
    check = None
    if trigger.when_json:
        key = (trigger.event, trigger.when_json)
        check = _CONDITIONS.get(key) or _CONDITIONS.setdefault(key, compile_conditions(trigger.when, kind))
    oldest = now - timedelta(seconds=trigger.expires_seconds) if trigger.expires_seconds else None
    chosen: dict[str, EventIn] = {}
    for event in events:
        if event.type != trigger.event or event.msisdn in chosen:
            continue
        if oldest is not None and event.occurred_at < oldest:
            result.expired += 1
            continue
        if check is None or check(event.payload):
            chosen[event.msisdn] = event
    return chosen


def _admitted(conn: Connection, source: Select, plan: Plan, vocabulary: list[Vocabulary]) -> Select:
    """`source` (over the batch's events and their subscribers) narrowed to the subscribers
    the campaign's audience admits: joined, not `IN (subquery)`, so the events' ids drive
    the plan rather than, say, an index on the rule's region."""
    if plan.audience.segment:
        return (source.join(SegmentMember, SegmentMember.subscriber_id == Subscriber.id)
                .join(Segment, Segment.id == SegmentMember.segment_id).where(Segment.name == plan.audience.segment))
    if not vocabulary:
        vocabulary.append(Vocabulary.load(conn))
    tags = vocabulary[0]
    if tags.snapshot is not None:
        table = tags.snapshot.table
        source = source.outerjoin(table, table.c.subscriber_id == Subscriber.id)
    return source.where(to_clause(plan.audience.rule or {}, tags, date.today(), "/audience/rule"))


#: each trigger campaign's entry statement, by store, campaign, tag snapshot and day (a
#: rule's relative dates): built once, run with each batch's parameters
_ENTRY_STATEMENTS: dict[tuple, Any] = {}


def _enter(conn: Connection, campaign_id: int, plan: Plan, chosen: dict[str, EventIn], subscribers: list[int],
           now: datetime, vocabulary: list[Vocabulary]) -> int:
    """One INSERT … SELECT: the chosen events' subscribers whom the audience admits become
    members due at the first node now; a member already in enters again only when the
    re-entry limit allows (then as entry n+1: their contacts get new idempotency keys)."""
    if not plan.audience.segment and not vocabulary:
        vocabulary.append(Vocabulary.load(conn))
    snapshot = vocabulary[0].snapshot.id if vocabulary and vocabulary[0].snapshot else None
    key = (str(conn.engine.url), campaign_id, snapshot, date.today())
    statement = _ENTRY_STATEMENTS.get(key)
    if statement is None:
        statement = _ENTRY_STATEMENTS[key] = _entry_statement(conn, campaign_id, plan, vocabulary)
    reentry = plan.trigger.reentry_seconds
    params = {"campaign": campaign_id, "now": now, "node": plan.entry, "events": [e.id for e in chosen.values()],
              "subscribers": subscribers,
              **({"cutoff": now - timedelta(seconds=reentry)} if reentry is not None else {})}
    return conn.execute(statement, params).rowcount


def _entry_statement(conn: Connection, campaign_id: int, plan: Plan, vocabulary: list[Vocabulary]):
    members = CampaignMember.__table__
    when = members.c.due_at.type
    # the control group: held out at entry (by campaign and subscriber, so at every
    # re-entry too), entered but due nowhere
    held = literal_column(control_sql(conn.dialect.name, campaign_id, "subscribers.id", plan.control_share), Boolean)
    source = (
        select(bindparam("campaign", type_=Integer), Subscriber.id, literal(0, Integer),
               case((held, literal("suppressed", String)), else_=literal("pending", String)),
               case((held, literal("control", String)), else_=null()), held,
               bindparam("now", type_=when), literal(1, Integer),
               case((held, null()), else_=bindparam("node", type_=String)),
               case((held, null()), else_=bindparam("now", type_=when)),
               bindparam("now", type_=when), Event.id)
        .select_from(Event).join(Subscriber, Subscriber.msisdn == Event.msisdn)
        # the subscribers' ids, looked up beforehand: the planner then starts from them by
        # primary key (SQLite without statistics preferred an index on the rule's region)
        .where(Event.id.in_(bindparam("events", expanding=True)),
               Subscriber.id.in_(bindparam("subscribers", expanding=True)))
    )
    source = _admitted(conn, source, plan, vocabulary)
    columns = ["campaign_id", "subscriber_id", "cohort", "state", "reason", "control", "updated_at", "entry",
               "at_node", "due_at", "entered_at", "event_id"]
    statement = _insert(conn, members).from_select(columns, source)
    if plan.trigger.reentry_seconds is None:
        statement = statement.on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
    else:
        again = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=["campaign_id", "subscriber_id"],
            set_={"entry": members.c.entry + 1, "state": again.state, "reason": again.reason, "route": None, "cohort": 0,
                  "at_node": again.at_node, "due_at": again.due_at, "entered_at": again.entered_at,
                  "event_id": again.event_id, "updated_at": again.updated_at},
            where=members.c.entered_at <= bindparam("cutoff", type_=when),
        )
    return statement.execution_options(preserve_rowcount=True)
