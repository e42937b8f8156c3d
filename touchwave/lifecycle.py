"""A campaign's lifecycle: draft → submitted (pending_approval) → approved → running ⇄
paused → finished | cancelled, every step in the audit log.

Each step is one conditional UPDATE (the status must still be one the step starts from)
plus its audit row, in one transaction: two approvers clicking at once approve once. An
approver never approves their own campaign. Starting, pausing, resuming and cancelling a
running campaign also tell its workflow; the caller does that (`touchwave.api`), this
module keeps the rules and the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select, update

from touchwave.errors import UserError
from touchwave.store.models import Campaign, CampaignAudit, CampaignStatus, utcnow

S = CampaignStatus

#: action → (the statuses it starts from, the status it leads to)
STEPS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "submit": (frozenset({S.DRAFT}), S.PENDING_APPROVAL),
    "approve": (frozenset({S.PENDING_APPROVAL}), S.APPROVED),
    "reject": (frozenset({S.PENDING_APPROVAL}), S.DRAFT),
    "start": (frozenset({S.APPROVED}), S.RUNNING),
    "pause": (frozenset({S.RUNNING}), S.PAUSED),
    "resume": (frozenset({S.PAUSED}), S.RUNNING),
    "cancel": (frozenset({S.DRAFT, S.PENDING_APPROVAL, S.APPROVED, S.RUNNING, S.PAUSED}), S.CANCELLED),
}


class CampaignNotFound(UserError):
    pass


class NotAllowedNow(UserError):
    """The step does not start from the campaign's current status (or approver = author)."""


@dataclass(frozen=True)
class Step:
    campaign_id: int
    action: str
    from_status: CampaignStatus
    to_status: CampaignStatus


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    comment: str | None


def status_of(engine: Engine, campaign_id: int) -> tuple[CampaignStatus, str]:
    """The campaign's status and author."""
    with engine.connect() as conn:
        row = conn.execute(select(Campaign.status, Campaign.created_by).where(Campaign.id == campaign_id)).first()
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return CampaignStatus(row.status), row.created_by


def check(engine: Engine, campaign_id: int, action: str, actor: str) -> CampaignStatus:
    """Whether `actor` may take `action` now; the current status if so."""
    starts, _ = STEPS[action]
    status, author = status_of(engine, campaign_id)
    if status not in starts:
        raise NotAllowedNow(f"campaign {campaign_id} is {status.value}: it cannot {action} "
                            f"(only from {', '.join(sorted(s.value for s in starts))})")
    if action == "approve" and actor == author:
        raise NotAllowedNow(f"{actor} created campaign {campaign_id}: another approver must approve it")
    return status


def take(engine: Engine, campaign_id: int, action: str, actor: str, comment: str | None = None) -> Step:
    """Take the step: the status changes only if it is still one the step starts from."""
    starts, to = STEPS[action]
    current = check(engine, campaign_id, action, actor)
    now = utcnow()
    with engine.begin() as conn:
        changed = conn.execute(update(Campaign).where(Campaign.id == campaign_id, Campaign.status.in_(starts))
                               .values(status=to, updated_at=now)).rowcount
        if not changed:
            raise NotAllowedNow(f"campaign {campaign_id} changed meanwhile: look again before you {action} it")
        conn.execute(CampaignAudit.__table__.insert().values(
            campaign_id=campaign_id, actor=actor, action=action, from_status=current.value, to_status=to.value,
            comment=comment, at=now))
    return Step(campaign_id, action, current, to)



def audit(engine: Engine, campaign_id: int) -> list[AuditEntry]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(CampaignAudit.at, CampaignAudit.actor, CampaignAudit.action, CampaignAudit.from_status,
                   CampaignAudit.to_status, CampaignAudit.comment)
            .where(CampaignAudit.campaign_id == campaign_id).order_by(CampaignAudit.id)).all()
    return [AuditEntry(*row) for row in rows]
