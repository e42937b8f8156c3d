"""The console's pages and forms (see the package docstring for why they look like this)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import Engine
from temporalio.client import Client

from touchwave import campaigns, effect, effect_html, funnel, lifecycle, tokens
from touchwave.api.lifecycle import STEP_DOCS, STEP_ROLES, TemporalUnavailable, take_step
from touchwave.errors import UserError
from touchwave.store import Store
from touchwave.store.catalog import read_catalog
from touchwave.store.db import session_factory
from touchwave.store.models import CampaignStatus, Role
from touchwave.store.templates import get_template, list_templates, upload
from touchwave.templates.compiler import compile_template, parse_template
from touchwave.templates.diagram import as_svg
from touchwave.templates.problems import TemplateInvalid
from touchwave.templates.render import as_text
from touchwave.tokens import Principal

HERE = Path(__file__).parent
COOKIE = "touchwave_token"
#: a template pasted or uploaded in the console may be this big
MAX_TEMPLATE_BYTES = 512 * 1024
READERS = (Role.CONFIGURER, Role.APPROVER, Role.OPERATOR, Role.ANALYST)
LIVE = (CampaignStatus.RUNNING, CampaignStatus.PAUSED)


@dataclass(frozen=True)
class ConsoleLinks:
    """Where the console points outside itself: the Temporal Web UI of this stack."""

    temporal_ui: str
    namespace: str = "default"

    def workflow(self, workflow_id: str) -> str:
        return f"{self.temporal_ui.rstrip('/')}/namespaces/{quote(self.namespace)}/workflows/{quote(workflow_id)}"


class _SignIn(Exception):
    """No live token in the cookie: the page sends the browser to sign in."""


class _NotFound(Exception):
    """No such template or campaign: a page that says so (404), not an API error body."""


def mount(app: FastAPI, engine: Engine, temporal: Callable[[], Client | None], task_queue: str,
          links: ConsoleLinks, timezone: str) -> None:
    """Add the console's pages at `/` and its assets at `/console-static`."""
    pages = Jinja2Templates(directory=HERE / "templates")
    app.mount("/console-static", StaticFiles(directory=HERE / "static"), name="console_static")
    app.include_router(_router(pages, engine, temporal, task_queue, links, timezone))

    @app.exception_handler(_SignIn)
    async def sign_in_first(_request: Request, _exc: _SignIn) -> Response:
        return RedirectResponse("/", status_code=303)

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, exc: _NotFound) -> Response:
        return pages.TemplateResponse(request, "notfound.html", {"who": None, "error": str(exc)}, status_code=404)


def _router(pages: Jinja2Templates, engine: Engine, temporal: Callable[[], Client | None], task_queue: str,
            links: ConsoleLinks, timezone: str) -> APIRouter:
    store = Store(engine, session_factory(engine))
    ui = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    def signed_in(request: Request) -> Principal:
        token = request.cookies.get(COOKIE)
        if token:
            with engine.connect() as conn:
                principal = tokens.verify(conn, token)
            if principal is not None and principal.may(*READERS):
                return principal
        raise _SignIn()

    def page(request: Request, name: str, who: Principal | None, status_code: int = 200, **context: Any) -> Response:
        context.setdefault("message", request.query_params.get("message"))
        context.setdefault("error", request.query_params.get("error"))
        return pages.TemplateResponse(request, name, {"who": who, **context}, status_code=status_code)

    @ui.get("/")
    def home(request: Request) -> Response:
        try:
            signed_in(request)
        except _SignIn:
            return page(request, "signin.html", None)
        return RedirectResponse("/campaigns", status_code=303)

    @ui.post("/signin")
    def sign_in(request: Request, token: str = Form(...)) -> Response:
        with engine.connect() as conn:
            principal = tokens.verify(conn, token.strip())
        if principal is None:
            return page(request, "signin.html", None, 401, error="That token is unknown or revoked.")
        if not principal.may(*READERS):
            return page(request, "signin.html", None, 403, error=(
                f"Role {principal.role.value} has no console pages: agents use the offer view of their hall "
                "or 10086 screen, producers post events."))
        response = RedirectResponse("/campaigns", status_code=303)
        response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    @ui.post("/signout")
    def sign_out() -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- templates ------------------------------------------------------------------

    def templates_page(request: Request, who: Principal, status_code: int = 200, **context: Any) -> Response:
        with store.session() as session:
            stored = list_templates(session)
        return page(request, "templates.html", who, status_code, section="templates", templates=stored,
                    may_configure=who.may(Role.CONFIGURER), **context)

    @ui.get("/templates")
    def templates(request: Request, who: Principal = Depends(signed_in)) -> Response:
        return templates_page(request, who)

    @ui.post("/templates")
    async def upload_template(request: Request, who: Principal = Depends(signed_in), intent: str = Form("validate"),
                              document: str = Form(""), file: UploadFile | None = File(None)) -> Response:
        """Validate or store a template; every problem is shown next to its JSON path and
        the text stays in the form, so nothing typed is lost."""
        if not who.may(Role.CONFIGURER):
            return templates_page(request, who, 403, error=f"Role {who.role.value} may not upload templates.")
        source = "the pasted template"
        if file is not None and file.filename:
            raw = await file.read(MAX_TEMPLATE_BYTES + 1)
            source = file.filename
            try:
                document = raw.decode("utf-8")
            except UnicodeDecodeError:
                return templates_page(request, who, 422, document="", problems=[
                    {"path": "/", "message": f"{file.filename} is not UTF-8 text"}])
        if len(document.encode("utf-8")) > MAX_TEMPLATE_BYTES:
            return templates_page(request, who, 413, error=f"A template may be {MAX_TEMPLATE_BYTES // 1024} KiB at most.")
        try:
            return await asyncio.to_thread(_upload_or_preview, request, who, intent, document, source)
        except TemplateInvalid as exc:
            return templates_page(request, who, 422, document=document,
                                  problems=[{"path": p.path, "message": p.message} for p in exc.problems])

    def _upload_or_preview(request: Request, who: Principal, intent: str, text: str, source: str) -> Response:
        parsed = parse_template(text, source)
        if intent == "upload":
            with store.session.begin() as session:
                version, new = upload(session, parsed, author=who.user, source=f"console: {source}")
            message = (f"Stored {version.name} v{version.version}." if new
                       else f"Unchanged: this is {version.name} v{version.version} already.")
            return RedirectResponse(f"/templates/{quote(version.name)}?"
                                    + urlencode({"version": version.version, "message": message}), status_code=303)
        with store.session() as session:
            plan = compile_template(parsed, read_catalog(session))
        return templates_page(request, who, document=text, preview=plan, preview_svg=Markup(as_svg(plan)))

    @ui.get("/templates/{name}")
    def template(request: Request, name: str, version: int | None = None,
                 who: Principal = Depends(signed_in)) -> Response:
        try:
            with store.session() as session:
                stored = get_template(session, name, version)
        except UserError as exc:
            raise _NotFound(str(exc)) from None
        return page(request, "template.html", who, section="templates", version=stored, plan=stored.plan,
                    svg=Markup(as_svg(stored.plan)), text=as_text(stored.plan, stored.version),
                    may_configure=who.may(Role.CONFIGURER))

    # -- campaigns ------------------------------------------------------------------

    @ui.get("/campaigns")
    def campaign_list(request: Request, who: Principal = Depends(signed_in)) -> Response:
        return page(request, "campaigns.html", who, section="campaigns", rows=campaigns.listed(engine),
                    may_configure=who.may(Role.CONFIGURER))

    @ui.post("/campaigns")
    def create_campaign(template: str = Form(...), version: int | None = Form(None), name: str = Form(""),
                        who: Principal = Depends(signed_in)) -> Response:
        back = f"/templates/{quote(template)}"
        if not who.may(Role.CONFIGURER):
            return _redirect(back, error=f"Role {who.role.value} may not draft campaigns.")
        try:
            made = campaigns.create(store, template, created_by=who.user, version=version, name=name.strip() or None)
        except UserError as exc:
            return _redirect(back, error=str(exc))
        return _redirect(f"/campaigns/{made.id}", message=f"Draft campaign {made.id} created with {made.members} members.")

    def _campaign(campaign_id: int) -> campaigns.CampaignInfo:
        try:
            return campaigns.get(store, campaign_id)
        except UserError as exc:
            raise _NotFound(str(exc)) from None

    def funnel_context(info: campaigns.CampaignInfo) -> dict[str, Any]:
        return {"funnel": funnel.funnel(engine, info.id, info.plan, timezone), "member_states": funnel.MEMBER_STATES,
                "now": datetime.now(UTC), "status": info.status.value}

    @ui.get("/campaigns/{campaign_id}")
    def campaign(request: Request, campaign_id: int, who: Principal = Depends(signed_in)) -> Response:
        info = _campaign(campaign_id)
        actions = [(action, STEP_DOCS[action]) for action, roles in STEP_ROLES.items()
                   if who.may(*roles) and info.status in lifecycle.STEPS[action][0]]
        return page(request, "campaign.html", who, section="campaigns", campaign=info, actions=actions,
                    svg=Markup(as_svg(info.plan)), audit=lifecycle.audit(engine, campaign_id),
                    temporal_url=links.workflow(info.workflow_id), **funnel_context(info))

    @ui.get("/campaigns/{campaign_id}/funnel")
    def campaign_funnel(request: Request, campaign_id: int, who: Principal = Depends(signed_in)) -> Response:
        return pages.TemplateResponse(request, "funnel.html", funnel_context(_campaign(campaign_id)))

    @ui.post("/campaigns/{campaign_id}/step")
    async def campaign_step(campaign_id: int, action: str = Form(...), comment: str = Form(""),
                            who: Principal = Depends(signed_in)) -> Response:
        here = f"/campaigns/{campaign_id}"
        if action not in STEP_ROLES:
            return _redirect(here, error=f"There is no step {action!r}.")
        if not who.may(*STEP_ROLES[action]):
            return _redirect(here, error=f"Role {who.role.value} may not {action} a campaign.")
        try:
            taken = await take_step(engine, store, campaign_id, action, who.user, comment.strip() or None, temporal(),
                                    task_queue)
        except lifecycle.CampaignNotFound as exc:
            raise _NotFound(str(exc)) from None
        except (lifecycle.NotAllowedNow, TemporalUnavailable) as exc:
            return _redirect(here, error=str(exc))
        return _redirect(here, message=f"Campaign {campaign_id}: {taken.from_status.value} → {taken.to_status.value}.")

    @ui.get("/campaigns/{campaign_id}/report")
    def report(campaign_id: int, _who: Principal = Depends(signed_in)) -> str:
        _campaign(campaign_id)
        return effect_html.render(effect.report(store, campaign_id, timezone))

    return ui


def _redirect(path: str, **query: str) -> RedirectResponse:
    """Post, then redirect, then get: a reload never repeats a step."""
    return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)
