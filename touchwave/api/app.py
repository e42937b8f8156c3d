"""HTTP API, versioned under /v1.

Customers' answers from any channel, the offers a passive channel shows, the shared
contact trail, do-not-disturb entries, tokens; templates and the campaign lifecycle
(`touchwave.api.lifecycle`). Every /v1 endpoint needs a bearer token with a fitting role
(`touchwave.api.auth`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy import Engine, text
from temporalio.client import Client

from channel_adapters.outbound import OutboundAdapter
from touchwave.contacts import NotTargeted
from touchwave.errors import UserError
from touchwave.events.ingest import BATCH_LIMIT, ingest
from touchwave.notify import EntryNotifier, ResponseNotifier
from touchwave.policy import dnd
from touchwave.responses import record_response
from touchwave import console, metrics, offer_view, tokens
from touchwave.config import Settings
from touchwave.console.routes import ConsoleLinks
from touchwave.api.auth import Credentials, authorise, bearer, roles_check
from touchwave.api.lifecycle import INT32
from touchwave.api.lifecycle import router as lifecycle_router
from touchwave.store.models import PASSIVE_CHANNELS, Channel, DndSource, Outcome, Role
from touchwave.store.subscribers import normalise_msisdn
from touchwave.trail import trail

log = logging.getLogger(__name__)


class ResponseIn(BaseModel):
    campaign_id: int = Field(gt=0, le=INT32)
    msisdn: str = Field(min_length=11, max_length=16)
    outcome: Outcome
    channel: Channel
    agent: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, max_length=2000)


class ResponseOut(BaseModel):
    campaign_id: int
    outcome: Outcome
    #: False when this exact answer was already recorded
    recorded: bool
    withdrawn_calls: int


_OFFERS = TypeAdapter(list[offer_view.Offer])


class EventsIn(BaseModel):
    #: each event is checked on its own: a bad one is rejected with its reason, the rest go on
    events: list[Any] = Field(max_length=BATCH_LIMIT, description=(
        "up to 1,000 events {id, type, msisdn, occurred_at, payload}; ids already received are ignored"))


class RejectedOut(BaseModel):
    index: int
    id: str | None
    reason: str


class EventsOut(BaseModel):
    received: int
    accepted: int
    duplicates: int
    expired: int = Field(description="events too old for a trigger they matched")
    rejected: list[RejectedOut]
    #: subscribers entered, by trigger campaign id
    entered: dict[int, int]


class TrailOut(BaseModel):
    at: datetime
    kind: str = Field(description="contact, response or order")
    campaign_id: int
    campaign: str
    channel: str
    what: str = Field(description="a contact's status, a response's outcome, an order's status")
    detail: str | None = Field(default=None, description="a contact's step, an order's offer")
    reason: str | None = Field(default=None, description="why a contact was suppressed, failed or withdrawn")
    agent: str | None = None
    note: str | None = None


class TokenIn(BaseModel):
    user: str = Field(min_length=1, max_length=100)
    role: Role


class TokenOut(TokenIn):
    token: str


class DndIn(BaseModel):
    scope: str = Field(description="global, channel:<channel> or business_line:<line>", max_length=80)
    source: DndSource
    note: str | None = Field(default=None, max_length=2000)
    expires_at: datetime | None = Field(default=None, description="none: until removed")
    created_by: str = Field(default="api", max_length=100)


class DndOut(BaseModel):
    msisdn: str
    scope: str
    source: DndSource
    note: str | None
    expires_at: datetime | None


@dataclasses.dataclass
class _Temporal:
    """The API's link to Temporal: given by the embedded stack, or connected when the app
    starts (`touchwave api`); None while there is none."""

    client: Client | None
    notifier: ResponseNotifier | None
    entries: EntryNotifier | None = None


def create_app(engine: Engine, outbound: OutboundAdapter | None = None,
               notifier: ResponseNotifier | None = None, temporal: Client | None = None,
               task_queue: str = "touchwave-campaigns",
               connect: Callable[[], Awaitable[Client]] | None = None,
               temporal_ui: str | None = None) -> FastAPI:
    """The API; with a `notifier`, campaign workflows hear about answers in batches (its
    flush loop runs for the app's lifetime); with `temporal`, operators start, pause,
    resume and cancel campaigns through it; with `connect` instead, the app connects when
    it starts and notifies through that client. Every /v1 endpoint takes a bearer token
    whose role may do what the endpoint does. The console's pages are at `/`, linking to
    the Temporal Web UI at `temporal_ui` (default TOUCHWAVE_TEMPORAL_UI)."""
    allow = roles_check(engine)
    link = _Temporal(temporal, notifier)
    readers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="offer-view")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if connect is not None and link.client is None:
            try:
                link.client = await connect()
            except (RuntimeError, OSError) as exc:
                log.warning("no Temporal: starting, pausing and cancelling campaigns answer 503",
                            extra={"error": str(exc)})
            else:
                link.notifier = link.notifier or ResponseNotifier(link.client)
        if link.client is not None:
            link.entries = EntryNotifier(link.client)
        flushing = [asyncio.create_task(n.run()) for n in (link.notifier, link.entries) if n]
        yield
        readers.shutdown(wait=False)
        for task in flushing:
            task.cancel()
        await asyncio.gather(*flushing, return_exceptions=True)

    app = FastAPI(title="touchwave", version="1", description="Multi-channel campaign engine", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with where and what, not the input echoed back (it may not even be JSON
        that can be written out again: a bare `Infinity` made the default handler fail)."""
        return JSONResponse(status_code=422, content={"detail": [
            {"loc": [str(part) for part in e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]})

    @app.get("/healthz")
    def health() -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    scrape = metrics.registry_for_scrape(engine)

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus's scrape: answers, offer-view latency, events, the order outbox (and,
        in the embedded stack, the worker's contacts and steps: one process)."""
        return Response(metrics.exposition(scrape), media_type=metrics.CONTENT_TYPE)

    @app.post("/v1/responses", response_model=ResponseOut)
    def post_response(body: ResponseIn, _=allow(Role.AGENT)) -> ResponseOut:
        """Accepted or declined ends the campaign for the customer in every channel at once;
        considering keeps them in and re-offers at the next contact. Idempotent."""
        msisdn = _msisdn(body.msisdn)
        try:
            completion = record_response(engine, body.campaign_id, msisdn, body.outcome, body.channel.value,
                                         outbound=outbound, agent=body.agent, note=body.note)
        except NotTargeted as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        if completion.recorded:
            metrics.RESPONSES.labels(str(body.campaign_id), body.channel.value, body.outcome.value).inc()
            if link.notifier:
                link.notifier.add(body.campaign_id, body.channel.value, body.outcome.value)
        return ResponseOut(campaign_id=body.campaign_id, outcome=body.outcome, recorded=completion.recorded,
                           withdrawn_calls=len(completion.queued_calls))

    @app.get("/v1/customers/{msisdn}/offers", response_model=list[offer_view.Offer])
    async def offers(msisdn: str, channel: Channel = Query(...),
                     credentials: Credentials = Depends(bearer)) -> Response:
        """What a passive channel shows this customer now: open offer windows of campaigns
        they have not completed, highest priority first. (Agents only.)"""
        started = time.perf_counter()
        number = _msisdn(msisdn)
        shown = await asyncio.get_running_loop().run_in_executor(readers, _offers, credentials, number, channel)
        body = _OFFERS.dump_json(shown)
        metrics.OFFER_VIEW_SECONDS.labels(channel.value).observe(time.perf_counter() - started)
        return Response(body, media_type="application/json")

    def _offers(credentials: Credentials, msisdn: str, channel: Channel) -> list[offer_view.Offer]:
        # read on every walk-in and call: the token and the offers on one connection, in
        # one trip to a thread of its own (the generic thread pool costs twice as much)
        with engine.connect() as conn:
            authorise(conn, credentials, (Role.AGENT,))
            if channel not in PASSIVE_CHANNELS:
                raise HTTPException(status_code=422, detail=f"{channel.value} is not a passive channel")
            return offer_view.open_offers(conn, msisdn, channel.value)

    @app.post("/v1/events", response_model=EventsOut)
    def post_events(body: EventsIn, _=allow(Role.PRODUCER)) -> EventsOut:
        """Customer events (data use, top-ups, logins…): each is checked against its type's
        schema and stored once per id; those matching a running trigger campaign enter
        their subscriber, whose first contact follows within a second."""
        result = ingest(engine, body.events)
        for outcome, count in (("accepted", result.accepted), ("duplicate", result.duplicates),
                               ("expired", result.expired), ("rejected", len(result.rejected))):
            if count:
                metrics.EVENTS.labels(outcome).inc(count)
        if link.entries:
            for campaign_id, count in result.entered.items():
                link.entries.entered(campaign_id, count)
        return EventsOut(**dataclasses.asdict(result))

    @app.get("/v1/customers/{msisdn}/trail", response_model=list[TrailOut])
    def customer_trail(msisdn: str, limit: int = Query(200, ge=1, le=1000),
                       _=allow(Role.AGENT, Role.ANALYST, Role.OPERATOR)) -> list[TrailOut]:
        """Every contact, suppression, answer and order of this customer across channels
        and campaigns, newest first."""
        entries = trail(engine, _msisdn(msisdn), limit)
        if entries is None:
            raise HTTPException(status_code=404, detail=f"{msisdn} is not a subscriber")
        return [TrailOut(**dataclasses.asdict(e)) for e in entries]

    @app.put("/v1/dnd/{msisdn}", response_model=DndOut)
    def put_dnd(msisdn: str, body: DndIn, _=allow(Role.AGENT, Role.OPERATOR)) -> DndOut:
        """Add (or update) a do-not-disturb entry: active channels stop contacting the
        number at this scope from the next claim on."""
        try:
            entry = dnd.entry(msisdn, body.scope, body.source.value, body.note, body.expires_at)
        except UserError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        dnd.add(engine, [entry], body.created_by, outbound=outbound)
        return DndOut(**dataclasses.asdict(entry))

    @app.get("/v1/dnd/{msisdn}", response_model=list[DndOut])
    def get_dnd(msisdn: str, _=allow(Role.AGENT, Role.OPERATOR, Role.ANALYST)) -> list[DndOut]:
        """Every entry of the number, expired ones included."""
        with engine.connect() as conn:
            return [DndOut(**dataclasses.asdict(e)) for e in dnd.entries_for(conn, _msisdn(msisdn))]

    @app.delete("/v1/dnd/{msisdn}", status_code=204)
    def delete_dnd(msisdn: str, scope: str = Query(...), _=allow(Role.AGENT, Role.OPERATOR)) -> None:
        try:
            removed = dnd.remove(engine, msisdn, scope)
        except UserError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        if not removed:
            raise HTTPException(status_code=404, detail=f"no do-not-disturb entry for {msisdn} at {scope}")

    @app.post("/v1/tokens", response_model=TokenOut, status_code=201)
    def create_token(body: TokenIn, _=allow(Role.ADMIN)) -> TokenOut:
        """A new token; the response is the only time it is shown."""
        return TokenOut(user=body.user, role=body.role, token=tokens.create(engine, body.user, body.role.value))

    app.include_router(lifecycle_router(engine, allow, lambda: link.client, task_queue))
    settings = Settings.from_env()
    console.mount(app, engine, lambda: link.client, task_queue,
                  ConsoleLinks(temporal_ui or settings.temporal_ui, settings.temporal_namespace), settings.timezone)
    return app


def _msisdn(raw: str) -> str:
    msisdn = normalise_msisdn(raw)
    if msisdn is None:
        raise HTTPException(status_code=422, detail=f"{raw!r} is not a mainland mobile number")
    return msisdn
