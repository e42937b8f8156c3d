"""`make demo`: the embedded stack runs the seed-002 ringback-tone campaign end to end,
with its waits shortened (one campaign day = a few seconds), printing the funnel per wave."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from sqlalchemy import DateTime, text
from sqlalchemy.engine import make_url

from touchwave import campaigns, effect, tokens
from touchwave.events import catalog as event_catalog
from touchwave.config import TEMPLATES_DIR, Settings, hide_password
from touchwave.demo_airflow import AirflowStandalone, fresh_postgres_database
from touchwave.errors import UserError
from touchwave.stack import Stack
from touchwave.store.catalog import read_catalog_file, upsert_catalog
from touchwave.segments.synthetic import load_population
from touchwave.store.templates import upload
from touchwave.templates.compiler import read_template
from touchwave.funnel import funnel_text
from touchwave.temporal import start_campaign
from touchwave.policy.channels import QUIET_CHANNELS, set_rules

TEMPLATE = "ringback-tone-download"
TRIGGER = "data-usage-addon"


def _say(text_: str = "") -> None:
    print(text_, flush=True)


async def _orders_delivered(store, seconds: float = 10.0) -> int:
    """Orders delivered once the dispatcher has caught up with the last "yes"."""
    deadline = time.monotonic() + seconds
    while True:
        with store.engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT status, count(*) FROM orders GROUP BY status")).all())
        if not counts.get("pending") and not counts.get("sending") or time.monotonic() > deadline:
            return counts.get("delivered", 0)
        await asyncio.sleep(0.2)


async def run_demo(settings: Settings, subscribers: int = 20_000, seconds_per_day: float = 2.0,
                   postgres: str | None = None, airflow: bool = False) -> None:
    """The demo on a fresh store: SQLite under var/, or the PostgreSQL database `postgres`
    names (dropped and created again); with `airflow`, Airflow standalone runs beside the
    stack, its metadata on the same PostgreSQL server, and refits the CPC model at the end."""
    temporal_db = settings.var_dir / "demo-temporal.db"
    temporal_db.unlink(missing_ok=True)
    if postgres:
        store_url = fresh_postgres_database(postgres)
        where = hide_password(store_url)
    else:
        database = settings.var_dir / "demo.db"
        for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            leftover.unlink(missing_ok=True)
        store_url, where = f"sqlite:///{database}", str(database)
    settings = dataclasses.replace(settings, database_url=store_url)
    async with Stack(settings, temporal_db=temporal_db) as stack, contextlib.AsyncExitStack() as extras:
        _say(f"embedded stack up: Temporal UI {stack.ui_url}, API {stack.api_url} (console at /, OpenAPI at /docs), "
             f"simulator :{stack.ports.simulator}, store {where}")
        scheduler = None
        if airflow:
            if not postgres:
                raise UserError("--airflow runs Airflow's metadata on PostgreSQL: give --postgres too")
            metadata = fresh_postgres_database(_sibling(postgres, "airflow"))
            scheduler = await extras.enter_async_context(AirflowStandalone(
                settings.var_dir / "demo-airflow", metadata, store_url, f"127.0.0.1:{stack.ports.temporal}", 8080))
            _say(f"Airflow standalone up: UI {scheduler.url} (no sign-in), metadata on "
                 f"{hide_password(metadata)}, DAGs from dags/")
        store = stack.store
        event_catalog.upsert(store.engine, event_catalog.read_catalog_file(TEMPLATES_DIR / "catalog" / "events.json"))
        with store.session.begin() as session:
            upsert_catalog(session, read_catalog_file(TEMPLATES_DIR / "catalog" / "offers.json"))
            for path in sorted(TEMPLATES_DIR.glob("*.json")):
                upload(session, read_template(path), author="demo", source=str(path))
        started = time.perf_counter()
        tags = load_population(store.engine, subscribers, seed=7)
        _say(f"loaded {subscribers:,} synthetic subscribers and imported their {tags.tags} tags "
             f"in {time.perf_counter() - started:.1f} s; "
             "uploaded the offer and event catalogs and every template")
        for channel in QUIET_CHANNELS:  # a demo day lasts seconds: a night of quiet hours would stop it cold
            set_rules(store.engine, channel, quiet=None)
        _say("quiet hours (default 21:00–08:00 for SMS, calls and push) are lifted for this demo run: "
             "`touchwave channels list` shows them on a real store")
        campaign = campaigns.create(store, TEMPLATE, created_by="demo")
        _say(f"campaign {campaign.id} «{campaign.plan.title}»: {campaign.members:,} members "
             f"(rule: no ringback tone yet, ARPU ≥ 30)")
        _say(f"waves: SMS → wait 3 days → hall + 10086 windows → wait 7 days → outbound → wait 3 days; "
             f"one day = {seconds_per_day:g} s here")
        handle = await start_campaign(
            stack.client, campaign, settings.task_queue, shard_size=5_000, time_scale=seconds_per_day / 86_400,
        )
        _say(f"workflow {campaign.workflow_id}: {stack.ui_url}/namespaces/default/workflows/{campaign.workflow_id}")
        shown = ""
        result = None
        while result is None:
            try:
                result = await asyncio.wait_for(asyncio.shield(handle.result()), timeout=2.0)
            except asyncio.TimeoutError:
                pass
            table = funnel_text(store.engine, campaign.id, campaign.plan)
            if table != shown:
                _say(f"\n-- t+{time.perf_counter() - started:5.1f} s, campaign {result.status if result else 'running'}")
                _say(table)
                shown = table
        with store.engine.connect() as conn:
            called_after_answer = conn.execute(text(
                "SELECT count(*) FROM contact_ledger c JOIN responses r ON r.subscriber_id = c.subscriber_id "
                "AND r.campaign_id = c.campaign_id AND r.outcome IN ('accepted', 'declined') "
                "WHERE c.campaign_id = :c AND c.step_id = 'outbound_call' AND c.status = 'sent' AND r.at < c.at"),
                {"c": campaign.id}).scalar_one()
        _say(f"\ncampaign {result.status}. Outbound calls placed to members who had already answered: "
             f"{called_after_answer}. Every call went to a member still pending or considering.")
        delivered = await _orders_delivered(store)
        _say(f"orders: {delivered} accepted offers delivered to BOSS (the simulator) through the outbox, "
             f"{len(stack.sim.orders)} placed there — once each")
        report = effect.report(store, campaign.id, settings.timezone)
        _say(f"\neffect (`touchwave report {campaign.id}`, also --format html): {report.control.members:,} members "
             f"held out as the control group (control_share 5%), never contacted")
        _say("\n".join(effect.as_text(report).splitlines()[-3:]))
        await _event_triggered(stack, settings, seconds_per_day)
        if scheduler is not None:
            state = await scheduler.run_dag("touchwave_refresh_cpc")
            with store.engine.connect() as conn:
                fit = conn.execute(text("SELECT contacts, answers, acceptances FROM cpc_fits ORDER BY id DESC LIMIT 1")
                                   ).first()
            _say(f"\nAirflow ran touchwave_refresh_cpc: {state}" + (
                f"; the CPC model is fitted on {fit.contacts:,} contacts, {fit.answers:,} answers, "
                f"{fit.acceptances:,} acceptances (`touchwave cpc show`)" if fit else ""))
            if state != "success":
                raise UserError(f"the DAG run ended {state}; see {settings.var_dir / 'demo-airflow' / 'logs'}")
        _say(f"(the stack is shutting down; the Temporal history stays in {temporal_db})")


def _sibling(url: str, suffix: str) -> str:
    """The URL of the database beside `url`'s, named `<its name>_<suffix>`."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{suffix}").render_as_string(hide_password=False)


async def _event_triggered(stack: Stack, settings: Settings, seconds_per_day: float, events: int = 400) -> None:
    """Seeds 003/004: the data-usage trigger campaign, fed real events over the API."""
    store = stack.store
    campaign = campaigns.create(store, TRIGGER, created_by="demo")
    handle = await start_campaign(stack.client, campaign, settings.task_queue, time_scale=seconds_per_day / 86_400)
    while campaigns.get(store, campaign.id).status != "running":
        await asyncio.sleep(0.1)
    _say(f"\nevent-triggered campaign {campaign.id} «{campaign.plan.title}»: "
         f"{stack.ui_url}/namespaces/default/workflows/{campaign.workflow_id}")
    with store.engine.connect() as conn:
        numbers = list(conn.execute(text("SELECT msisdn FROM subscribers ORDER BY random() LIMIT :n"),
                                    {"n": events}).scalars())
    rng = random.Random(3)
    batch = [{"id": f"demo-usage-{i}", "type": "data_usage_threshold", "msisdn": number,
              "occurred_at": datetime.now(UTC).isoformat(),
              "payload": {"percent": rng.choice((50, 80, 90, 100)), "plan_quota_mb": 20480}}
             for i, number in enumerate(numbers)]
    producer = tokens.create(store.engine, "demo billing system", "producer")
    async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {producer}"}) as api:
        answer = (await api.post("/v1/events", json={"events": batch})).json()
    entered = sum(answer["entered"].values())
    _say(f"POST /v1/events: {answer['received']} data-usage events, {entered} matched "
         "(use ≥ 80% of the plan, ARPU ≥ 30) and entered the campaign")
    await asyncio.sleep(max(3.0, 3 * seconds_per_day))  # past the 2-day wait: the calls are placed
    with store.engine.connect() as conn:
        delays = sorted((sent - received).total_seconds() * 1000 for sent, received in conn.execute(text(
            "SELECT c.at, e.received_at FROM contact_ledger c "
            "JOIN campaign_members m ON m.campaign_id = c.campaign_id AND m.subscriber_id = c.subscriber_id "
            "JOIN events e ON e.id = m.event_id WHERE c.campaign_id = :c AND c.step_id = 'addon_sms'"
        ).columns(at=DateTime, received_at=DateTime), {"c": campaign.id}))
    if delays:
        _say(f"their add-on SMS: {len(delays)} claimed for the gateway, event → SMS median "
             f"{delays[len(delays) // 2]:.0f} ms, slowest {delays[-1]:.0f} ms; 10086 shows the offer for a week, "
             "and whoever has not answered in 2 days gets a call:")
    _say(funnel_text(store.engine, campaign.id, campaign.plan))
    await handle.signal("cancel")
    await handle.result()
