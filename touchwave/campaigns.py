"""Campaigns: a template version put to work on the subscribers its audience selects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, func, insert, literal, select, update
from sqlalchemy.orm import Session

from touchwave.errors import UserError
from touchwave.segments.rules import to_clause
from touchwave.store import Store
from touchwave.store.db import analyze
from touchwave.store.models import (
    Campaign,
    CampaignMember,
    CampaignStatus,
    FlowchartTemplate,
    MemberState,
    Subscriber,
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
    """Create a campaign and its members (one INSERT … SELECT over the audience rule)."""
    with store.session.begin() as session:
        stored = get_template(session, template, version)
        plan = stored.plan
        if plan.audience.rule is None:
            raise UserError(f'template "{template}" targets segment "{plan.audience.segment}"; '
                            "named segments arrive with the segments issue — use an inline rule")
        template_id = session.scalars(
            select(FlowchartTemplate.id).where(FlowchartTemplate.name == stored.name,
                                               FlowchartTemplate.version == stored.version)
        ).one()
        campaign = Campaign(name=name or f"{plan.title} ({stored.name} v{stored.version})", template_id=template_id,
                            priority=plan.priority, business_line=plan.business_line, created_by=created_by)
        session.add(campaign)
        session.flush()
        count = _add_members(session, campaign.id, plan, cohort=0, today=today)
        return CampaignInfo(campaign.id, campaign.name, stored.name, stored.version, campaign.status, count, plan)


def _add_members(session: Session, campaign_id: int, plan: Plan, cohort: int, today: date | None) -> int:
    """One INSERT … SELECT: the subscribers the audience selects who are not members yet
    join as `cohort`. Returns how many joined."""
    already = select(CampaignMember.subscriber_id).where(CampaignMember.campaign_id == campaign_id)
    members = select(
        literal(campaign_id), Subscriber.id, literal(cohort), literal(MemberState.PENDING.value), literal(utcnow())
    ).where(to_clause(plan.audience.rule, today), Subscriber.id.not_in(already))
    session.execute(
        insert(CampaignMember).from_select(["campaign_id", "subscriber_id", "cohort", "state", "updated_at"], members)
    )
    analyze(session.connection(), "campaign_members")
    return session.scalar(select(func.count()).where(CampaignMember.campaign_id == campaign_id,
                                                     CampaignMember.cohort == cohort)) or 0


@dataclass(frozen=True)
class Admission:
    campaign_id: int
    cohort: int
    members: int


def admit(store: Store, campaign_id: int, today: date | None = None) -> Admission:
    """Subscribers who match the audience now but did not at launch join a running
    campaign as its next cohort; the campaign's workflow then runs the plan for them from
    the first step (signal `cohort_added`). Nobody already a member is added again."""
    info = get(store, campaign_id)
    if info.status not in (CampaignStatus.RUNNING, CampaignStatus.PAUSED):
        raise UserError(f"campaign {campaign_id} is {info.status}: only a running or paused campaign admits members")
    if info.plan.audience.rule is None:
        raise UserError(f"campaign {campaign_id} targets a named segment; segments arrive with the segments issue")
    with store.session.begin() as session:
        cohort = (session.scalar(select(func.max(CampaignMember.cohort))
                                 .where(CampaignMember.campaign_id == campaign_id)) or 0) + 1
        joined = _add_members(session, campaign_id, info.plan, cohort, today)
    return Admission(campaign_id, cohort, joined)


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
    with engine.begin() as conn:
        conn.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=status, updated_at=utcnow()))
