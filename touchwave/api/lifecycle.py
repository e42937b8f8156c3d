"""Templates and campaigns over HTTP: upload and validate templates, create campaigns,
and walk them through their lifecycle by role — the CLI and any console are clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from temporalio.client import Client

from touchwave import campaigns, contacts, effect, effect_html, lifecycle
from touchwave.config import Settings
from touchwave.errors import UserError
from touchwave.store import Store
from touchwave.store.catalog import read_catalog
from touchwave.store.db import session_factory
from touchwave.store.models import Role
from touchwave.store.templates import upload
from touchwave.templates.compiler import compile_template
from touchwave.templates.problems import TemplateInvalid

R = Role
#: ids are 32-bit in the store: a bigger one is a 422, not a database error
INT32 = 2**31 - 1
CampaignId = Annotated[int, Path(gt=0, le=INT32, description="a campaign's id")]
#: who may take each lifecycle step
STEP_ROLES: dict[str, tuple[Role, ...]] = {
    "submit": (R.CONFIGURER,), "approve": (R.APPROVER,), "reject": (R.APPROVER,),
    "start": (R.OPERATOR,), "pause": (R.OPERATOR,), "resume": (R.OPERATOR,), "cancel": (R.OPERATOR,),
}
READERS = (R.ANALYST, R.OPERATOR, R.CONFIGURER, R.APPROVER)


class TemplateOut(BaseModel):
    name: str
    version: int | None = None
    new: bool | None = None
    title: str
    steps: int


class CampaignIn(BaseModel):
    template: str = Field(min_length=1, max_length=100)
    version: int | None = Field(default=None, gt=0, le=INT32)
    name: str | None = Field(default=None, max_length=200)


class CampaignOut(BaseModel):
    id: int
    name: str
    template: str
    template_version: int
    status: str
    members: int
    workflow_id: str
    progress: dict[str, Any] | None = None


class StepIn(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)


class StepOut(BaseModel):
    campaign_id: int
    action: str
    from_status: str
    to_status: str


def _invalid(exc: TemplateInvalid) -> HTTPException:
    """Every problem next to its JSON path, as the CLI prints them."""
    return HTTPException(422, [{"path": p.path, "message": p.message} for p in exc.problems])


def router(engine: Engine, allow, temporal: Callable[[], Client | None] = lambda: None,
           task_queue: str = "touchwave-campaigns") -> APIRouter:
    api = APIRouter(prefix="/v1")
    store = Store(engine, session_factory(engine))

    @api.post("/templates/validate", response_model=TemplateOut)
    def validate(document: dict[str, Any] = Body(...), _=allow(R.CONFIGURER)) -> TemplateOut:
        """Compile the template against the catalog without storing it."""
        with store.session() as session:
            try:
                plan = compile_template(document, read_catalog(session))
            except TemplateInvalid as exc:
                raise _invalid(exc) from None
        return TemplateOut(name=plan.template, title=plan.title, steps=len(plan.steps))

    @api.post("/templates", response_model=TemplateOut, status_code=201)
    def upload_template(document: dict[str, Any] = Body(...), who=allow(R.CONFIGURER)) -> TemplateOut:
        """Store the template; a changed one becomes its next version."""
        with store.session.begin() as session:
            try:
                version, new = upload(session, document, author=who.user)
            except TemplateInvalid as exc:
                raise _invalid(exc) from None
            return TemplateOut(name=version.name, version=version.version, new=new, title=version.plan.title,
                               steps=len(version.plan.steps))

    @api.post("/campaigns", response_model=CampaignOut, status_code=201)
    def create(body: CampaignIn, who=allow(R.CONFIGURER)) -> CampaignOut:
        """A draft campaign of a template version, its audience resolved now."""
        try:
            made = campaigns.create(store, body.template, created_by=who.user, version=body.version, name=body.name)
        except UserError as exc:
            raise HTTPException(404, str(exc)) from None
        return _out(made)

    @api.get("/campaigns", response_model=list[campaigns.CampaignRow])
    def campaign_list(limit: int = Query(200, ge=1, le=1000), _=allow(*READERS)) -> list[campaigns.CampaignRow]:
        """The newest campaigns first."""
        return campaigns.listed(engine, limit)

    @api.get("/campaigns/{campaign_id}", response_model=CampaignOut)
    def show(campaign_id: CampaignId, _=allow(*READERS)) -> CampaignOut:
        """The campaign with its live funnel: contacts per step by status and reason,
        members by state, answers by channel."""
        return _out(_campaign(campaign_id), contacts.progress(engine, campaign_id))

    @api.get("/campaigns/{campaign_id}/audit", response_model=list[lifecycle.AuditEntry])
    def audit(campaign_id: CampaignId, _=allow(*READERS)) -> list[lifecycle.AuditEntry]:
        """Every lifecycle step: who, when, from which status to which, and why."""
        _campaign(campaign_id)
        return lifecycle.audit(engine, campaign_id)

    @api.get("/campaigns/{campaign_id}/report", response_model=dict[str, Any])
    def report(campaign_id: CampaignId, _=allow(*READERS)) -> dict[str, Any]:
        """The effect report: funnel per wave and channel, conversion of the treated and
        the control group, uplift with its 95% interval, cost per acceptance."""
        _campaign(campaign_id)
        return jsonable_encoder(effect.report(store, campaign_id, Settings.from_env().timezone).to_dict())

    @api.get("/campaigns/{campaign_id}/report.html", response_class=HTMLResponse)
    def report_page(campaign_id: CampaignId, _=allow(*READERS)) -> str:
        """The effect report as a self-contained page with its charts."""
        _campaign(campaign_id)
        return effect_html.render(effect.report(store, campaign_id, Settings.from_env().timezone))

    def _campaign(campaign_id: int) -> campaigns.CampaignInfo:
        try:
            return campaigns.get(store, campaign_id)
        except UserError as exc:
            raise HTTPException(404, str(exc)) from None

    for action, roles in STEP_ROLES.items():
        _step_endpoint(api, engine, store, action, allow(*roles), temporal, task_queue)
    return api


class TemporalUnavailable(UserError):
    """The API has no link to Temporal, so it cannot start or signal a workflow."""


async def take_step(engine: Engine, store: Store, campaign_id: int, action: str, actor: str, comment: str | None,
                    temporal: Client | None, task_queue: str) -> lifecycle.Step:
    """A lifecycle step by `actor`: the rules checked, the workflow told (start, pause,
    resume, cancel of a live campaign), then the status and the audit row. The API and
    the console both take steps through here."""
    current = await asyncio.to_thread(lifecycle.check, engine, campaign_id, action, actor)
    if action in ("start", "pause", "resume") or (action == "cancel" and current in _LIVE):
        await _tell_workflow(store, campaign_id, action, temporal, task_queue)
    return await asyncio.to_thread(lifecycle.take, engine, campaign_id, action, actor, comment)


def _step_endpoint(api: APIRouter, engine: Engine, store: Store, action: str, allowed,
                   temporal: Callable[[], Client | None], task_queue: str) -> None:
    async def step(campaign_id: CampaignId, body: StepIn | None = None, who=allowed) -> StepOut:
        comment = body.comment if body else None
        try:
            taken = await take_step(engine, store, campaign_id, action, who.user, comment, temporal(), task_queue)
        except lifecycle.CampaignNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except lifecycle.NotAllowedNow as exc:
            raise HTTPException(403 if "another approver" in str(exc) else 409, str(exc)) from None
        except TemporalUnavailable as exc:
            raise HTTPException(503, str(exc)) from None
        return StepOut(campaign_id=campaign_id, action=action, from_status=taken.from_status.value,
                       to_status=taken.to_status.value)

    step.__name__ = f"{action}_campaign"
    step.__doc__ = STEP_DOCS[action]
    api.post(f"/campaigns/{{campaign_id}}/{action}", response_model=StepOut)(step)


#: what each step does, for the API's documentation and the console's buttons
STEP_DOCS = {
    "submit": "A configurer submits a draft for approval.",
    "approve": "An approver approves a submitted campaign (never one they created).",
    "reject": "An approver sends a submitted campaign back to draft (say why in the comment).",
    "start": "An operator starts an approved campaign: its workflow begins.",
    "pause": "An operator pauses a running campaign: every step stops between batches.",
    "resume": "An operator resumes a paused campaign.",
    "cancel": "An operator cancels a campaign: a running one withdraws every pending contact.",
}


_LIVE = frozenset({lifecycle.S.RUNNING, lifecycle.S.PAUSED})
Action = Literal["start", "pause", "resume", "cancel"]


async def _tell_workflow(store: Store, campaign_id: int, action: Action, temporal: Client | None,
                         task_queue: str) -> None:
    from touchwave.temporal import start_campaign
    from workflows.campaign import CampaignWorkflow

    if temporal is None:
        raise TemporalUnavailable("this API is not connected to Temporal (TOUCHWAVE_TEMPORAL_ADDRESS)")
    campaign = await asyncio.to_thread(campaigns.get, store, campaign_id)
    if action == "start":
        await start_campaign(temporal, campaign, task_queue)
        return
    signal = {"pause": CampaignWorkflow.pause, "resume": CampaignWorkflow.resume, "cancel": CampaignWorkflow.cancel}
    await temporal.get_workflow_handle(campaign.workflow_id).signal(signal[action])


def _out(campaign: campaigns.CampaignInfo, progress: dict | None = None) -> CampaignOut:
    return CampaignOut(id=campaign.id, name=campaign.name, template=campaign.template,
                       template_version=campaign.template_version, status=str(campaign.status),
                       members=campaign.members, workflow_id=campaign.workflow_id, progress=progress)
