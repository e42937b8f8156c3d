"""Campaigns: a template version put to work on the subscribers its audience selects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Boolean, Connection, Engine, Select, func, insert, literal, literal_column, select, text, update

from touchwave import contacts
from touchwave.errors import UserError
from touchwave.segments import named
from touchwave.segments.rules import Vocabulary
from touchwave.store import Store
from touchwave.control import control_sql
from touchwave.store.db import analyze
from touchwave.store.models import (
    Campaign,
    CampaignAudit,
    CampaignMember,
    CampaignStatus,
    FlowchartTemplate,
    MemberState,
    utcnow,
)
from touchwave.store.templates import get_template
from touchwave.templates.plan import Plan


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    template: str
    template_version: int
    status: CampaignStatus
    members: int
    plan: Plan

    @property
    def workflow_id(self) -> str:
        return workflow_id(self.id)


def workflow_id(campaign_id: int) -> str:
    return f"campaign-{campaign_id}"


def create(store: Store, template: str, created_by: str, version: int | None = None, name: str | None = None,
           today: date | None = None) -> CampaignInfo:
    """Create a campaign and its members (one INSERT … SELECT over the audience).

    A named segment is refreshed first, so the campaign starts from its members as of now
    and later syncs take in only what changes after."""
    with store.session() as session:
        plan = get_template(session, template, version).plan
    if plan.audience.segment:
        named.refresh(store.engine, plan.audience.segment, today)
    with store.session.begin() as session:
        stored = get_template(session, template, version)
        template_id = session.scalars(
            select(FlowchartTemplate.id).where(FlowchartTemplate.name == stored.name,
                                               FlowchartTemplate.version == stored.version)
        ).one()
        campaign = Campaign(name=name or f"{plan.title} ({stored.name} v{stored.version})", template_id=template_id,
                            priority=plan.priority, business_line=plan.business_line, created_by=created_by)
        session.add(campaign)
        session.flush()
        session.add(CampaignAudit(campaign_id=campaign.id, actor=created_by, action="create", from_status=None,
                                  to_status=CampaignStatus.DRAFT.value))
        # a trigger campaign starts empty: events enter its members one by one
        count = 0 if plan.trigger else _add_members(session.connection(), campaign.id, plan, cohort=0, today=today)
        return CampaignInfo(campaign.id, campaign.name, stored.name, stored.version, campaign.status, count, plan)


def _audience(conn: Connection, plan: Plan, today: date | None) -> Select:
    """SELECT the ids of the subscribers the campaign targets now: its segment's last
    refresh, or its inline rule over the current tags."""
    if plan.audience.segment:
        return named.members_of(plan.audience.segment)
    return Vocabulary.load(conn).subscribers(plan.audience.rule or {}, today, path="/audience/rule")


def _add_members(conn: Connection, campaign_id: int, plan: Plan, cohort: int, today: date | None) -> int:
    """One INSERT … SELECT: the audience's subscribers who are not members yet join as
    `cohort`. The template's `control_share` of them are held out (`control`, state
    `suppressed`, reason `control`) by a hash of campaign and subscriber, so who is held
    out is the same however often the audience is refreshed or the campaign re-created.
    Returns how many joined."""
    audience = _audience(conn, plan, today).subquery("audience")
    member = CampaignMember.__table__.alias("already")
    # NOT EXISTS, not NOT IN: PostgreSQL plans NOT IN over a million ids as a subplan per row
    already = select(1).where(member.c.campaign_id == campaign_id, member.c.subscriber_id == audience.c[0]).exists()
    held_out = control_sql(conn.dialect.name, campaign_id, f"audience.{audience.c[0].name}", plan.control_share)
    members = select(
        literal(campaign_id), audience.c[0], literal(cohort),
        literal_column(f"CASE WHEN {held_out} THEN 'suppressed' ELSE 'pending' END"),
        literal_column(f"CASE WHEN {held_out} THEN 'control' END"),
        literal_column(held_out, Boolean), literal(utcnow()),
    ).where(~already)
    joined = conn.execute(
        insert(CampaignMember).from_select(
            ["campaign_id", "subscriber_id", "cohort", "state", "reason", "control", "updated_at"], members)
        .execution_options(preserve_rowcount=True)  # SQLAlchemy reports -1 for INSERT … SELECT otherwise
    ).rowcount
    analyze(conn, "campaign_members")
    return joined


def _let_go(conn: Connection, campaign_id: int, plan: Plan, today: date | None) -> int:
    """Members still to be contacted who no longer match leave (state `left`): no step
    claims them again and their claimed or open contacts are withdrawn. Returns how many."""
    audience = _audience(conn, plan, today).subquery()
    left = conn.execute(
        update(CampaignMember)
        .where(CampaignMember.campaign_id == campaign_id, CampaignMember.state.in_(contacts.ELIGIBLE),
               ~select(1).where(audience.c[0] == CampaignMember.subscriber_id).exists())
        .values(state=MemberState.LEFT, reason="left_audience", updated_at=utcnow())
    ).rowcount
    if left:
        conn.execute(text(
            "UPDATE contact_ledger SET status = 'withdrawn', reason = 'left_audience' "
            "WHERE campaign_id = :campaign AND status IN ('claimed', 'open') AND subscriber_id IN "
            "(SELECT subscriber_id FROM campaign_members WHERE campaign_id = :campaign AND state = 'left')"
        ), {"campaign": campaign_id})
    return left


@dataclass(frozen=True)
class Sync:
    """What one audience sync changed in a campaign."""

    campaign_id: int
    #: the cohort the joiners form (0 when nobody joined)
    cohort: int
    joined: int
    left: int
    #: the campaign's newest cohort (0: only the launch audience)
    latest_cohort: int = 0


def sync(store: Store, campaign_id: int, today: date | None = None) -> Sync:
    """Subscribers who match the audience now and are not members join a running campaign
    as its next cohort (its workflow runs the plan for them from the first step once
    signalled `cohort_added`); members who stopped matching leave if the template says
    `on_leave: stop`. Nobody already a member is added again, and nobody who left rejoins."""
    info = get(store, campaign_id)
    if info.status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        raise UserError(f"campaign {campaign_id} is {info.status}: only a running or paused campaign takes in members")
    if info.plan.trigger:
        raise UserError(f"campaign {campaign_id} is event-triggered: its events enter its members, not a sync")
    with store.engine.begin() as conn:
        cohort = (conn.scalar(select(func.max(CampaignMember.cohort))
                              .where(CampaignMember.campaign_id == campaign_id)) or 0) + 1
        left = _let_go(conn, campaign_id, info.plan, today) if info.plan.audience.on_leave == "stop" else 0
        joined = _add_members(conn, campaign_id, info.plan, cohort, today)
    return Sync(campaign_id, cohort if joined else 0, joined, left, cohort if joined else cohort - 1)


def get(store: Store, campaign_id: int) -> CampaignInfo:
    with store.session() as session:
        row = session.execute(
            select(Campaign, FlowchartTemplate).join(FlowchartTemplate, Campaign.template_id == FlowchartTemplate.id)
            .where(Campaign.id == campaign_id)
        ).first()
        if row is None:
            raise UserError(f"no campaign {campaign_id}")
        campaign, template = row
        count = session.scalar(select(func.count()).where(CampaignMember.campaign_id == campaign_id))
        return CampaignInfo(campaign.id, campaign.name, template.name, template.version, campaign.status,
                            count or 0, Plan.from_dict(template.plan))


def set_status(engine: Engine, campaign_id: int, status: CampaignStatus) -> None:
    """The campaign's status; the first time it runs is its start (effect reports count
    orders placed outside the campaign from then on)."""
    values = {"status": status, "updated_at": utcnow()}
    if status == CampaignStatus.RUNNING:
        values["starts_at"] = func.coalesce(Campaign.starts_at, utcnow())
    with engine.begin() as conn:
        conn.execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))


@dataclass(frozen=True)
class CampaignRow:
    id: int
    name: str
    template: str
    template_version: int
    status: CampaignStatus
    business_line: str
    created_by: str
    updated_at: datetime


def listed(engine: Engine, limit: int = 200) -> list[CampaignRow]:
    """The newest campaigns first, without their members (a list page's row each)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Campaign.id, Campaign.name, FlowchartTemplate.name, FlowchartTemplate.version, Campaign.status,
                   Campaign.business_line, Campaign.created_by, Campaign.updated_at)
            .join(FlowchartTemplate, Campaign.template_id == FlowchartTemplate.id)
            .order_by(Campaign.id.desc()).limit(limit)).all()
    return [CampaignRow(r[0], r[1], r[2], r[3], CampaignStatus(r[4]), r[5], r[6], r[7]) for r in rows]
