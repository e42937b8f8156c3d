"""Named segments: versioned rules, membership recomputed set-wise with who joined and who left.

A segment's members are those of its last refresh (`segment_members`); each refresh
records its diff (`segment_changes`) so running campaigns can take in the joiners and
let go of the leavers. A refresh is one transaction: the new set goes to a temporary
table, the two anti-joins against the old set are the diff, and the old set is patched
by the diff — rows that did not change are not rewritten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    func,
    insert,
    select,
    text,
    update,
)

from touchwave.errors import UserError
from touchwave.logs import mask_msisdn
from touchwave.segments.rules import Vocabulary
from touchwave.store.db import analyze
from touchwave.store.models import (
    Campaign,
    CampaignStatus,
    FlowchartTemplate,
    Segment,
    SegmentMember,
    SegmentRefresh,
    SegmentVersion,
    Subscriber,
    utcnow,
)

#: campaigns in these states keep their segments refreshed
LIVE = (CampaignStatus.APPROVED, CampaignStatus.RUNNING, CampaignStatus.PAUSED)
#: refreshes whose join/leave lists are kept per segment (a cold refresh lists every member)
KEEP_CHANGES = 30
_NEW = Table("tw_segment_new", MetaData(), Column("subscriber_id", BigInteger, primary_key=True),
             prefixes=["TEMPORARY"])


@dataclass(frozen=True)
class SegmentVersionInfo:
    name: str
    version: int
    rule: dict[str, Any]
    description: str
    author: str
    created_at: datetime


@dataclass(frozen=True)
class Refresh:
    segment: str
    version: int
    refresh_id: int
    members: int
    joined: int
    left: int
    seconds: float


@dataclass(frozen=True)
class Preview:
    count: int
    #: masked MSISDN, region, plan and the values of the fields the rule names
    sample: list[dict[str, Any]]


def save(engine: Engine, name: str, rule: dict[str, Any], author: str, description: str = "") -> tuple[int, bool]:
    """Store `rule` as the segment's next version (checked against the catalog first);
    the same rule as the latest version stores nothing. Returns (version, created)."""
    if not name or len(name) > 100:
        raise UserError("a segment's name is 1 to 100 characters")
    with engine.begin() as conn:
        Vocabulary.load(conn).subscribers(rule)
        segment_id = conn.scalar(select(Segment.id).where(Segment.name == name))
        if segment_id is None:
            segment_id = conn.execute(insert(Segment).values(name=name, created_at=utcnow())
                                      .returning(Segment.id)).scalar_one()
        latest = _latest(conn, segment_id)
        if latest is not None and latest.rule == rule:
            return latest.version, False
        version = (latest.version if latest else 0) + 1
        conn.execute(insert(SegmentVersion).values(segment_id=segment_id, version=version, rule=rule,
                                                   description=description, author=author, created_at=utcnow()))
        return version, True


def get(conn: Connection, name: str, version: int | None = None) -> SegmentVersionInfo:
    segment_id = conn.scalar(select(Segment.id).where(Segment.name == name))
    found = _latest(conn, segment_id, version) if segment_id is not None else None
    if found is None:
        raise UserError(f"no segment {name!r}" + (f" version {version}" if version and segment_id else ""))
    return SegmentVersionInfo(name, found.version, found.rule, found.description, found.author, found.created_at)


def _latest(conn: Connection, segment_id: int, version: int | None = None):
    query = select(SegmentVersion).where(SegmentVersion.segment_id == segment_id)
    query = query.where(SegmentVersion.version == version) if version else \
        query.order_by(SegmentVersion.version.desc()).limit(1)
    return conn.execute(query).first()


def list_segments(engine: Engine) -> list[dict[str, Any]]:
    """Each segment's latest version and its last refresh."""
    with engine.connect() as conn:
        names = conn.execute(select(Segment.id, Segment.name).order_by(Segment.name)).all()
        result = []
        for segment_id, name in names:
            latest = _latest(conn, segment_id)
            last = conn.execute(select(SegmentRefresh).where(SegmentRefresh.segment_id == segment_id)
                                .order_by(SegmentRefresh.id.desc()).limit(1)).first()
            result.append({"name": name, "version": latest.version, "author": latest.author,
                           "members": last.members if last else None, "refreshed_at": last.at if last else None})
        return result


def members_of(name: str) -> Any:
    """SELECT the subscriber ids of the segment's last refresh (for campaign audiences)."""
    return (select(SegmentMember.subscriber_id).join(Segment, Segment.id == SegmentMember.segment_id)
            .where(Segment.name == name))


def refresh(engine: Engine, name: str, today: date | None = None) -> Refresh:
    """Recompute the segment from its latest rule and the current tags; record the diff."""
    started = time.perf_counter()
    with engine.begin() as conn:
        segment = get(conn, name)
        segment_id = conn.scalar(select(Segment.id).where(Segment.name == name))
        vocabulary = Vocabulary.load(conn)
        query = vocabulary.subscribers(segment.rule, today, path=f"segment {name} v{segment.version}")
        conn.exec_driver_sql("DROP TABLE IF EXISTS tw_segment_new")
        _NEW.create(conn)
        members = conn.execute(insert(_NEW).from_select(["subscriber_id"], query)
                               .execution_options(preserve_rowcount=True)).rowcount
        analyze(conn, "tw_segment_new")
        refresh_id = conn.execute(insert(SegmentRefresh).values(
            segment_id=segment_id, version=segment.version,
            snapshot_id=vocabulary.snapshot.id if vocabulary.snapshot else None,
            members=members, joined=0, left=0, seconds=0.0, at=utcnow(),
        ).returning(SegmentRefresh.id)).scalar_one()
        keys = {"refresh": refresh_id, "segment": segment_id}
        joined = conn.execute(text(
            "INSERT INTO segment_changes (refresh_id, subscriber_id, change) "
            "SELECT :refresh, n.subscriber_id, 'joined' FROM tw_segment_new n WHERE NOT EXISTS "
            "(SELECT 1 FROM segment_members m WHERE m.segment_id = :segment AND m.subscriber_id = n.subscriber_id)"
        ), keys).rowcount
        left = conn.execute(text(
            "INSERT INTO segment_changes (refresh_id, subscriber_id, change) "
            "SELECT :refresh, m.subscriber_id, 'left' FROM segment_members m WHERE m.segment_id = :segment "
            "AND NOT EXISTS (SELECT 1 FROM tw_segment_new n WHERE n.subscriber_id = m.subscriber_id)"
        ), keys).rowcount
        conn.execute(text(
            "DELETE FROM segment_members WHERE segment_id = :segment AND subscriber_id IN "
            "(SELECT subscriber_id FROM segment_changes WHERE refresh_id = :refresh AND change = 'left')"
        ), keys)
        conn.execute(text(
            "INSERT INTO segment_members (segment_id, subscriber_id) "
            "SELECT :segment, subscriber_id FROM segment_changes WHERE refresh_id = :refresh AND change = 'joined'"
        ), keys)
        _NEW.drop(conn)
        seconds = time.perf_counter() - started
        conn.execute(update(SegmentRefresh).where(SegmentRefresh.id == refresh_id)
                     .values(joined=joined, left=left, seconds=seconds))
        conn.execute(text(
            "DELETE FROM segment_changes WHERE refresh_id IN (SELECT id FROM segment_refreshes "
            "WHERE segment_id = :segment AND id NOT IN (SELECT id FROM segment_refreshes "
            "WHERE segment_id = :segment ORDER BY id DESC LIMIT :keep))"
        ), {**keys, "keep": KEEP_CHANGES})
        if joined or left:
            analyze(conn, "segment_members")
    return Refresh(name, segment.version, refresh_id, members, joined, left, seconds)


def changes(engine: Engine, refresh_id: int) -> dict[str, list[int]]:
    """Who joined and who left at one refresh (subscriber ids)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT change, subscriber_id FROM segment_changes WHERE refresh_id = :r "
                                 "ORDER BY subscriber_id"), {"r": refresh_id}).all()
    diff: dict[str, list[int]] = {"joined": [], "left": []}
    for change, subscriber_id in rows:
        diff[change].append(subscriber_id)
    return diff


def in_use(engine: Engine) -> list[str]:
    """Segments that approved, running or paused campaigns target."""
    with engine.connect() as conn:
        plans = conn.execute(select(FlowchartTemplate.plan).join(Campaign, Campaign.template_id == FlowchartTemplate.id)
                             .where(Campaign.status.in_(LIVE))).scalars()
        return sorted({plan["audience"]["segment"] for plan in plans if plan["audience"].get("segment")})


def preview(engine: Engine, rule_or_name: dict[str, Any] | str, today: date | None = None,
            sample: int = 10) -> Preview:
    """How many subscribers a rule (or a named segment's latest rule) selects now, and a few of them."""
    with engine.connect() as conn:
        rule = get(conn, rule_or_name).rule if isinstance(rule_or_name, str) else rule_or_name
        vocabulary = Vocabulary.load(conn)
        selected = vocabulary.subscribers(rule, today).subquery()
        count = conn.scalar(select(func.count()).select_from(selected)) or 0
        named = sorted(_fields(rule) - {"msisdn", "region", "plan"})
        columns = [Subscriber.msisdn, Subscriber.region, Subscriber.plan,
                   *(vocabulary.fields[name].column.label(name) for name in named)]
        query = select(*columns).where(Subscriber.id.in_(select(selected.c.id))).order_by(Subscriber.id).limit(sample)
        if vocabulary.snapshot is not None:
            table = vocabulary.snapshot.table
            query = query.select_from(Subscriber.__table__.outerjoin(table, table.c.subscriber_id == Subscriber.id))
        rows = [dict(row) for row in conn.execute(query).mappings()]
    for row in rows:
        row["msisdn"] = mask_msisdn(row["msisdn"])
    return Preview(count, rows)


def _fields(rule: dict[str, Any]) -> set[str]:
    if "field" in rule:
        return {rule["field"]}
    parts = rule.get("all") or rule.get("any") or [rule.get("not")]
    return set().union(*(_fields(part) for part in parts if isinstance(part, dict)))
