"""Campaigns: a template version put to work on the subscribers its audience selects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import Engine, func, insert, literal, select, update

from touchwave.errors import UserError
from touchwave.segments.rules import to_clause
from touchwave.store import Store
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
        members = select(
            literal(campaign.id), Subscriber.id, literal(0), literal(MemberState.PENDING.value), literal(utcnow())
        ).where(to_clause(plan.audience.rule, today))
        session.execute(
            insert(CampaignMember).from_select(
                ["campaign_id", "subscriber_id", "cohort", "state", "updated_at"], members
            )
        )
        count = session.scalar(select(func.count()).where(CampaignMember.campaign_id == campaign.id))
        return CampaignInfo(campaign.id, campaign.name, stored.name, stored.version, campaign.status, count or 0, plan)


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
