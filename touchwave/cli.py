"""The `touchwave` command line.

Exit codes: 0 success, 2 a user's mistake (message, no traceback), 1 an internal failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from touchwave import logs
from touchwave.config import Settings
from touchwave.errors import UserError
from touchwave.jsonfile import read_json
from touchwave.store import Store
from touchwave.store import catalog as catalog_store
from touchwave.store import db
from touchwave.store import subscribers as subscriber_store
from touchwave.store import templates as template_store
from touchwave.templates.compiler import compile_template, read_template
from touchwave.templates.problems import TemplateInvalid
from touchwave.templates.render import as_mermaid, as_text

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2


def _out(text: str = "") -> None:
    print(text, flush=True)


def _store(args: argparse.Namespace, migrated: bool = True) -> Store:
    return Store.open(Settings.from_env(args.database_url).database_url, migrated=migrated)


# -- db ------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    store = _store(args, migrated=False)
    before, after = db.upgrade(store.engine)
    where = db.safe_url(store.engine)
    _out(f"{where}: already at schema revision {after}" if before == after
         else f"{where}: schema upgraded from {before or 'empty'} to {after}")
    return EXIT_OK


# -- offers --------------------------------------------------------------------------


def cmd_offers_load(args: argparse.Namespace) -> int:
    catalog = catalog_store.read_catalog_file(args.file)
    store = _store(args)
    with store.session.begin() as session:
        offers, scripts = catalog_store.upsert_catalog(session, catalog)
    _out(f"{args.file}: {offers} offers and {scripts} scripts stored")
    return EXIT_OK


def cmd_offers_list(args: argparse.Namespace) -> int:
    store = _store(args)
    with store.session() as session:
        catalog = catalog_store.read_catalog(session)
    by_offer: dict[str, list[str]] = {code: [] for code in sorted(catalog.offers)}
    for script in sorted(catalog.scripts.values(), key=lambda s: s.code):
        by_offer[script.offer].append(f"{script.channel}:{script.code}")
    for code, scripts in by_offer.items():
        _out(f"{code:<20} {' '.join(scripts)}")
    return EXIT_OK


# -- subscribers ---------------------------------------------------------------------


def cmd_subscribers_synth(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UserError("--count must be at least 1")
    from touchwave.segments.synthetic import load_population

    report = load_population(_store(args).engine, args.count, seed=args.seed)
    _out(f"{args.count} synthetic subscribers loaded with {report.tags} tags each (seed {args.seed}, "
         f"tag snapshot {report.snapshot_id})")
    return EXIT_OK


def cmd_subscribers_load(args: argparse.Namespace) -> int:
    store = _store(args)
    loaded = subscriber_store.bulk_load(store.engine, subscriber_store.read_csv(args.file))
    _out(f"{args.file}: {loaded} subscribers loaded")
    return EXIT_OK


def cmd_subscribers_stats(args: argparse.Namespace) -> int:
    stats = subscriber_store.counts(_store(args).engine)
    if args.format == "json":
        _out(json.dumps(stats, ensure_ascii=False, indent=2))
        return EXIT_OK
    _out(f"{stats['total']} subscribers")
    for title in ("by_region", "by_plan"):
        _out(f"  {title.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in stats[title].items()))
    return EXIT_OK


# -- events ------------------------------------------------------------------------


def cmd_events_catalog(args: argparse.Namespace) -> int:
    from touchwave.events import catalog

    kinds = catalog.read_catalog_file(args.file)
    catalog.upsert(_store(args).engine, kinds)
    _out(f"{args.file}: {len(kinds)} event types stored in the catalog")
    return EXIT_OK


def cmd_events_list(args: argparse.Namespace) -> int:
    from touchwave.events import catalog

    with _store(args).engine.connect() as conn:
        kinds = catalog.load(conn)
    if not kinds:
        _out("no event types yet: touchwave events catalog campaign_templates/catalog/events.json")
    for kind in kinds.values():
        _out(f"{kind.name:<24} payload: {', '.join(kind.fields) or '-':<28} {kind.description}")
    return EXIT_OK


def cmd_events_replay(args: argparse.Namespace) -> int:
    """Bulk or back-filled events from a JSON Lines file, in batches; the campaigns they
    enter subscribers into are told after each batch when Temporal is reachable."""
    from touchwave.events.replay import replay

    settings = Settings.from_env(args.database_url)
    report = asyncio.run(replay(_store(args).engine, settings, args.file, args.batch))
    _out(f"{args.file}: {report.received:,} events, {report.accepted:,} new, {report.duplicates:,} already received, "
         f"{len(report.rejected):,} rejected, {report.expired:,} too old for a trigger; "
         f"{sum(report.entered.values()):,} subscribers entered trigger campaigns"
         + (f" ({', '.join(f'campaign {c}: {n:,}' for c, n in sorted(report.entered.items()))})"
            if report.entered else ""))
    for rejected in report.rejected[:20]:
        _out(f"  line {rejected.index + 1}" + (f" ({rejected.id})" if rejected.id else "") + f": {rejected.reason}")
    if len(report.rejected) > 20:
        _out(f"  … and {len(report.rejected) - 20:,} more")
    if report.untold:
        _out(f"note: Temporal was not reachable ({report.untold}); the campaigns' workflows find their new "
             "members at their next look")
    return EXIT_OK if not report.rejected else EXIT_USER


# -- tags and segments -------------------------------------------------------------


def cmd_tags_catalog(args: argparse.Namespace) -> int:
    from touchwave.segments.catalog import read_catalog_file, upsert_tags

    specs = read_catalog_file(args.file)
    upsert_tags(_store(args).engine, specs)
    _out(f"{args.file}: {len(specs)} tags stored in the catalog")
    return EXIT_OK


def cmd_tags_import(args: argparse.Namespace) -> int:
    from touchwave.segments.snapshots import import_drop

    report = import_drop(_store(args).engine, args.file)
    _out(f"{args.file}: {report.rows:,} subscribers × {report.tags} tags imported as snapshot {report.snapshot_id} "
         f"in {report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)")
    if report.unknown_msisdns:
        _out(f"  {report.unknown_msisdns:,} rows for numbers that are not subscribers were skipped")
    return EXIT_OK


def cmd_tags_list(args: argparse.Namespace) -> int:
    from touchwave.segments.catalog import read_tags
    from touchwave.segments.snapshots import current_snapshot

    with _store(args).engine.connect() as conn:
        catalog, snapshot = read_tags(conn), current_snapshot(conn)
    _out(f"{len(catalog)} tags; " + (f"current snapshot {snapshot.id}" if snapshot else "no drop imported yet"))
    for spec in sorted(catalog.values(), key=lambda t: (t.group, t.name)):
        missing = "" if snapshot and spec.name in snapshot.columns else "  (no values yet)"
        values = f" [{', '.join(spec.values)}]" if spec.values else ""
        _out(f"  {spec.group or '-':<14} {spec.name:<24} {spec.type}{values}{missing}")
    return EXIT_OK


def _rule_or_name(argument: str) -> dict | str:
    """A rule given inline as JSON, in a .json file, or the name of a stored segment."""
    text = argument.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"the rule is not JSON: {exc.msg} at column {exc.colno}") from None
    if text.endswith(".json"):
        return read_json(text)
    return text


def cmd_segment_save(args: argparse.Namespace) -> int:
    from touchwave.segments import named

    rule = _rule_or_name(args.rule)
    if not isinstance(rule, dict):
        raise UserError("give the rule as JSON or a .json file")
    version, created = named.save(_store(args).engine, args.name, rule, args.author, args.description or "")
    _out(f"segment {args.name}: " + (f"stored as version {version}" if created else f"unchanged, still version {version}"))
    return EXIT_OK


def cmd_segment_preview(args: argparse.Namespace) -> int:
    from touchwave.segments import named

    preview = named.preview(_store(args).engine, _rule_or_name(args.rule), sample=args.sample)
    _out(f"{preview.count:,} subscribers match now")
    for row in preview.sample:
        _out("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return EXIT_OK


def cmd_segment_refresh(args: argparse.Namespace) -> int:
    from touchwave.audiences import refresh_segments
    from touchwave.segments import named

    store = _store(args)
    refreshes = [named.refresh(store.engine, name) for name in args.names] if args.names else refresh_segments(store)
    if not refreshes:
        _out("no live campaign targets a named segment; name the segments to refresh")
    for r in refreshes:
        _out(f"segment {r.segment} v{r.version}: {r.members:,} members, +{r.joined:,} joined, -{r.left:,} left "
             f"({r.seconds:.2f} s)")
    return EXIT_OK


def cmd_segment_list(args: argparse.Namespace) -> int:
    from touchwave.segments import named

    segments = named.list_segments(_store(args).engine)
    if not segments:
        _out("no segments saved yet")
    for s in segments:
        members = "never refreshed" if s["members"] is None else \
            f"{s['members']:,} members at {s['refreshed_at']:%Y-%m-%d %H:%M}"
        _out(f"{s['name']:<30} v{s['version']:<3} {s['author']:<12} {members}")
    return EXIT_OK


def cmd_segment_show(args: argparse.Namespace) -> int:
    from touchwave.segments import named

    with _store(args).engine.connect() as conn:
        segment = named.get(conn, args.name, args.version)
    _out(f"segment {segment.name} v{segment.version} by {segment.author} at {segment.created_at:%Y-%m-%d %H:%M}")
    if segment.description:
        _out(f"  {segment.description}")
    _out(json.dumps(segment.rule, ensure_ascii=False, indent=2))
    return EXIT_OK


# -- do-not-disturb ----------------------------------------------------------------


def cmd_dnd_add(args: argparse.Namespace) -> int:
    from touchwave.policy import dnd

    entry = dnd.entry(args.msisdn, args.scope, args.source, args.note, args.expires)
    added = dnd.add(_store(args).engine, [entry], args.author, outbound=_outbound(args))
    until = f" until {entry.expires_at:%Y-%m-%d %H:%M} UTC" if entry.expires_at else ""
    _out(f"{entry.msisdn}: do not disturb at {entry.scope} ({entry.source}){until}" + _stopped(added))
    return EXIT_OK


def _outbound(args: argparse.Namespace):
    from channel_adapters.outbound import OutboundAdapter

    return OutboundAdapter(Settings.from_env(args.database_url).call_centre_url, max_attempts=2)


def _stopped(added) -> str:
    """What a new entry stopped: contacts not yet sent, calls queued at the call centre."""
    parts = [f"{added.suppressed} pending contact(s) suppressed" if added.suppressed else "",
             f"{added.withdrawn_calls} queued call(s) withdrawn" if added.withdrawn_calls else ""]
    stopped = ", ".join(p for p in parts if p)
    return f"; {stopped}" if stopped else ""


def cmd_dnd_import(args: argparse.Namespace) -> int:
    from touchwave.policy import dnd

    added = dnd.add(_store(args).engine, dnd.read_csv(args.file), args.author, outbound=_outbound(args))
    _out(f"{args.file}: {added.stored} do-not-disturb entries stored" + _stopped(added))
    return EXIT_OK


def cmd_dnd_remove(args: argparse.Namespace) -> int:
    from touchwave.policy import dnd

    if not dnd.remove(_store(args).engine, args.msisdn, args.scope):
        raise UserError(f"no do-not-disturb entry for {args.msisdn} at {args.scope}")
    _out(f"{args.msisdn}: entry at {args.scope} removed")
    return EXIT_OK


def cmd_dnd_show(args: argparse.Namespace) -> int:
    from touchwave.policy import dnd
    from touchwave.store.subscribers import normalise_msisdn

    msisdn = normalise_msisdn(args.msisdn)
    if msisdn is None:
        raise UserError(f"{args.msisdn!r} is not a mainland mobile number")
    with _store(args).engine.connect() as conn:
        entries = dnd.entries_for(conn, msisdn)
    if not entries:
        _out(f"{msisdn}: no do-not-disturb entry")
    for e in entries:
        until = f"until {e.expires_at:%Y-%m-%d %H:%M}" if e.expires_at else "until removed"
        _out(f"{e.msisdn}  {e.scope:<28} {e.source:<17} {until}" + (f"  {e.note}" if e.note else ""))
    return EXIT_OK


def cmd_caps_set(args: argparse.Namespace) -> int:
    from touchwave.policy import caps

    new = caps.cap(args.name, args.channel, args.max, args.per)
    caps.set_cap(_store(args).engine, new)
    _out(f"cap {new.name}: at most {new.max_contacts} {new.channel or 'marketing'} contact(s) per subscriber "
         f"per {'calendar month' if new.period == 'month' else new.period}")
    return EXIT_OK


def cmd_caps_list(args: argparse.Namespace) -> int:
    from touchwave.policy import caps

    with _store(args).engine.connect() as conn:
        every = caps.caps_for(conn)
    if not every:
        _out("no frequency caps: campaigns contact as often as their templates say")
    for c in every:
        _out(f"{c.name:<24} {c.channel or 'any':<9} ≤ {c.max_contacts} per {c.period}")
    return EXIT_OK


def cmd_caps_remove(args: argparse.Namespace) -> int:
    from touchwave.policy import caps

    if not caps.remove_cap(_store(args).engine, args.name):
        raise UserError(f"no cap named {args.name!r}")
    _out(f"cap {args.name} removed")
    return EXIT_OK


def cmd_channels_set(args: argparse.Namespace) -> int:
    from touchwave.policy import channels

    capacity = ... if args.capacity is None else _capacity(args.capacity)
    if args.seats is not None:
        if args.calls_per_seat is None:
            raise UserError("--seats needs --calls-per-seat: the capacity is seats × calls per seat")
        capacity = args.seats * args.calls_per_seat
    cost = ... if args.unit_cost is None else _unit_cost(args.unit_cost)
    rules = channels.set_rules(_store(args).engine, args.channel,
                               quiet=... if args.quiet is None else args.quiet, daily_capacity=capacity,
                               unit_cost=cost)
    _out(_channel_line(rules))
    return EXIT_OK


def _capacity(text: str) -> int | None:
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return int(text)
    except ValueError:
        raise UserError(f"--capacity {text!r}: give a whole number of contacts a day, or none") from None


def _unit_cost(text: str) -> float | None:
    if text.strip().lower() in ("none", "off"):
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--unit-cost {text!r}: give an amount per contact such as 0.05, or none") from None


def _channel_line(rules) -> str:
    quiet = f"quiet {rules.quiet_from}–{rules.quiet_until}" if rules.quiet_from else "no quiet hours"
    capacity = f"{rules.daily_capacity:,} contacts a day" if rules.daily_capacity else "no daily limit"
    cost = f"{rules.unit_cost:g} a contact" if rules.unit_cost is not None else "no unit cost"
    return f"{rules.channel:<12} {quiet:<20} {capacity:<24} {cost}"


def cmd_channels_list(args: argparse.Namespace) -> int:
    from touchwave.policy import channels

    with _store(args).engine.connect() as conn:
        for rules in channels.every_rule(conn):
            _out(_channel_line(rules))
    return EXIT_OK


def cmd_token_create(args: argparse.Namespace) -> int:
    from touchwave import tokens

    token = tokens.create(_store(args).engine, args.user, args.role)
    _out(token)
    print(f"token for {args.user} as {args.role}: shown once, keep it (the store has only its hash)",
          file=sys.stderr)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    from touchwave import tokens

    for t in tokens.listed(_store(args).engine):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
        _out(f"{t.id:>5}  {t.user:<24} {t.role.value:<11} created {t.created_at:%Y-%m-%d}  {state}")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from touchwave import tokens

    tokens.revoke(_store(args).engine, args.id)
    _out(f"token {args.id} revoked")
    return EXIT_OK


# -- templates -----------------------------------------------------------------------


def cmd_template_validate(args: argparse.Namespace) -> int:
    """Schema and graph checks always; offer/script references when a store is configured."""
    settings = Settings.from_env(args.database_url)
    catalog = None
    if settings.database_configured:
        store = Store.open(settings.database_url)
        with store.session() as session:
            catalog = catalog_store.read_catalog(session)
    failed = 0
    for path in args.files:
        try:
            plan = compile_template(read_template(path), catalog, source=path)
        except TemplateInvalid as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        checked = "schema, graph and catalog references" if catalog else "schema and graph; no store configured, references not checked"
        _out(f"{path}: ok — {plan.template} {plan.template_hash[:12]}, {len(plan.steps)} nodes ({checked})")
    return EXIT_USER if failed else EXIT_OK


def cmd_template_upload(args: argparse.Namespace) -> int:
    store = _store(args)
    failed = 0
    for path in args.files:
        try:
            document = read_template(path)
            with store.session.begin() as session:
                version, created = template_store.upload(session, document, args.author, source=path)
        except TemplateInvalid as exc:
            failed += 1
            print(exc, file=sys.stderr)
            continue
        state = "stored as new version" if created else "unchanged, still version"
        _out(f"{path}: {version.name} {state} {version.version} ({version.content_hash[:12]})")
    return EXIT_USER if failed else EXIT_OK


def cmd_template_list(args: argparse.Namespace) -> int:
    store = _store(args)
    with store.session() as session:
        summaries = template_store.list_templates(session)
    if not summaries:
        _out("no templates uploaded yet")
        return EXIT_OK
    width = max(len(t.name) for t in summaries)
    _out(f"{'name':<{width}}  version  hash          author      uploaded (UTC)    title")
    for t in summaries:
        _out(f"{t.name:<{width}}  {t.latest_version:>4}/{t.versions:<3} {t.content_hash[:12]}  {t.author:<10}  "
             f"{t.created_at:%Y-%m-%d %H:%M}  {t.title}")
    return EXIT_OK


def cmd_template_show(args: argparse.Namespace) -> int:
    store = _store(args)
    with store.session() as session:
        version = template_store.get_template(session, args.name, args.version)
    if args.format == "mermaid":
        _out(as_mermaid(version.plan))
    elif args.format == "json":
        _out(json.dumps(version.plan.to_dict(), ensure_ascii=False, indent=2))
    else:
        _out(as_text(version.plan, version.version))
        _out(f"  uploaded by {version.author} at {version.created_at:%Y-%m-%d %H:%M} UTC")
    return EXIT_OK


# -- campaigns -----------------------------------------------------------------------


async def _temporal(settings: Settings, runtime=None):
    from temporalio.client import Client

    try:
        return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace,
                                    runtime=runtime)
    except RuntimeError as exc:
        raise UserError(f"cannot reach Temporal at {settings.temporal_address} ({exc}); "
                        "is `touchwave dev` running, or TOUCHWAVE_TEMPORAL_ADDRESS set?") from None


def cmd_campaign_start(args: argparse.Namespace) -> int:
    from touchwave import campaigns
    from touchwave.temporal import register_search_attributes, start_campaign

    settings = Settings.from_env(args.database_url)
    store = Store.open(settings.database_url)
    campaign = campaigns.create(store, args.template, created_by=args.author, version=args.version)

    async def start() -> None:
        client = await _temporal(settings)
        await register_search_attributes(client)
        await start_campaign(client, campaign, settings.task_queue, shard_size=args.shard_size,
                             time_scale=args.time_scale)

    asyncio.run(start())
    _out(f"campaign {campaign.id} started: {campaign.members} members, workflow {campaign.workflow_id}")
    _out(f"  {settings.temporal_ui}/namespaces/{settings.temporal_namespace}/workflows/{campaign.workflow_id}")
    return EXIT_OK


def cmd_campaign_status(args: argparse.Namespace) -> int:
    from touchwave import campaigns
    from touchwave.funnel import funnel_text

    store = _store(args)
    campaign = campaigns.get(store, args.id)
    _out(f"campaign {campaign.id} «{campaign.name}»: {campaign.status}, {campaign.members} members, "
         f"template {campaign.template} v{campaign.template_version}")
    _out(funnel_text(store.engine, campaign.id, campaign.plan, Settings.from_env(args.database_url).timezone))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from touchwave import effect, effect_html

    store = _store(args)
    found = effect.report(store, args.campaign, Settings.from_env(args.database_url).timezone)
    if args.format == "json":
        rendered = json.dumps(found.to_dict(), ensure_ascii=False, indent=2, default=str)
    elif args.format == "html":
        rendered = effect_html.render(found)
    else:
        rendered = effect.as_text(found)
    if args.output:
        try:
            Path(args.output).write_text(rendered + "\n", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.output}: {exc.strerror}") from None
        _out(f"report of campaign {found.campaign_id} written to {args.output}")
    else:
        _out(rendered)
    return EXIT_OK


def cmd_boss_feed(args: argparse.Namespace) -> int:
    from touchwave import boss_feed

    orders = boss_feed.read_csv(args.file)
    new = boss_feed.record(_store(args).engine, orders)
    _out(f"{len(orders):,} orders read, {new:,} new, {len(orders) - new:,} already known")
    return EXIT_OK


def cmd_cpc_fit(args: argparse.Namespace) -> int:
    from touchwave import cpc

    fit = cpc.fit(_store(args).engine)
    _out(f"CPC model fitted in {fit.seconds:.2f} s from {fit.contacts:,} contacts, {fit.answers:,} answers, "
         f"{fit.acceptances:,} acceptances")
    return EXIT_OK


def cmd_cpc_show(args: argparse.Namespace) -> int:
    from touchwave import cpc

    _out(cpc.describe(_store(args).engine))
    return EXIT_OK


def _signal_or_step(args: argparse.Namespace) -> int:
    """With a token, pause/resume/cancel go through the API (role operator, audit log);
    without one, the workflow is signalled directly (the embedded stack's operator)."""
    return cmd_campaign_step(args) if os.environ.get("TOUCHWAVE_TOKEN") else cmd_campaign_signal(args)


def cmd_campaign_signal(args: argparse.Namespace) -> int:
    from touchwave import campaigns
    from workflows.campaign import CampaignWorkflow

    settings = Settings.from_env(args.database_url)
    signal = {"pause": CampaignWorkflow.pause, "resume": CampaignWorkflow.resume, "cancel": CampaignWorkflow.cancel}
    campaign_id = campaigns.get(_store(args), args.id).id

    async def send() -> None:
        from temporalio.service import RPCError

        client = await _temporal(settings)
        try:
            await client.get_workflow_handle(campaigns.workflow_id(campaign_id)).signal(signal[args.command])
        except RPCError as exc:
            raise UserError(f"campaign {campaign_id} is not running in Temporal: {exc.message}") from None

    asyncio.run(send())
    _out(f"campaign {campaign_id}: {args.command} sent")
    return EXIT_OK


def _remote(args: argparse.Namespace):
    from touchwave.remote import Remote

    return Remote(Settings.from_env(args.database_url).api_url, os.environ.get("TOUCHWAVE_TOKEN"))


def cmd_campaign_create(args: argparse.Namespace) -> int:
    """A draft campaign through the API (role configurer): it starts only once approved."""
    remote = _remote(args)
    made = remote.call("POST", "/campaigns", {"template": args.template, "version": args.version, "name": args.name})
    _out(f"campaign {made['id']} «{made['name']}»: {made['status']}, {made['members']} members, "
         f"template {made['template']} v{made['template_version']}")
    return EXIT_OK


def cmd_campaign_step(args: argparse.Namespace) -> int:
    """submit / approve / reject / launch through the API, and pause / resume / cancel when
    TOUCHWAVE_TOKEN is set: the token's role is checked and the step is in the audit log."""
    action = "start" if args.command == "launch" else args.command
    taken = _remote(args).step(args.id, action, getattr(args, "comment", None))
    _out(f"campaign {taken['campaign_id']}: {taken['from_status']} → {taken['to_status']}")
    return EXIT_OK


def cmd_campaign_audit(args: argparse.Namespace) -> int:
    rows = _remote(args).call("GET", f"/campaigns/{args.id}/audit")
    for row in rows:
        _out(f"{row['at'][:19].replace('T', ' ')}  {row['actor']:<16} {row['action']:<8} "
             f"{row['from_status'] or '-':>16} → {row['to_status']:<16} {row['comment'] or ''}".rstrip())
    return EXIT_OK


def cmd_campaign_sync(args: argparse.Namespace) -> int:
    """Subscribers matching the audience now join as a new cohort; leavers stop (on_leave)."""
    from touchwave import campaigns
    from touchwave.audiences import tell_workflow

    settings = Settings.from_env(args.database_url)
    synced = campaigns.sync(_store(args), args.id)
    if synced.latest_cohort:
        async def send() -> None:
            await tell_workflow(await _temporal(settings), synced)

        asyncio.run(send())
    _out(f"campaign {synced.campaign_id}: {synced.joined} new member(s)"
         + (f" in cohort {synced.cohort}, starting from the first step" if synced.joined else "")
         + f", {synced.left} left the audience")
    return EXIT_OK


async def _tell_campaign(settings: Settings, campaign_id: int, channel: str, outcome: str) -> None:
    """Best effort: the answer is already stored; the workflow would also find it at its
    next check, so an unreachable Temporal is only a note."""
    from touchwave.notify import ResponseNotifier

    try:
        notifier = ResponseNotifier(await _temporal(settings))
    except UserError as exc:
        _out(f"note: {exc}")
        return
    notifier.add(campaign_id, channel, outcome)
    await notifier.flush()


def cmd_respond(args: argparse.Namespace) -> int:
    from channel_adapters.outbound import OutboundAdapter
    from touchwave.responses import record_response
    from touchwave.store.models import Outcome
    from touchwave.store.subscribers import normalise_msisdn

    settings = Settings.from_env(args.database_url)
    msisdn = normalise_msisdn(args.msisdn)
    if msisdn is None:
        raise UserError(f"{args.msisdn!r} is not a mainland mobile number")
    outbound = OutboundAdapter(settings.call_centre_url, max_attempts=2)
    completion = record_response(_store(args).engine, args.campaign, msisdn, Outcome(args.outcome), args.channel,
                                 outbound=outbound, agent=args.agent, note=args.note)
    if completion.recorded:
        asyncio.run(_tell_campaign(settings, args.campaign, args.channel, args.outcome))
    what = "recorded" if completion.recorded else "already recorded"
    _out(f"{args.outcome} {what} for campaign {args.campaign} via {args.channel}"
         + (f"; {len(completion.queued_calls)} queued call(s) withdrawn" if completion.queued_calls else ""))
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    """A campaign worker on its own: production runs several, one per task queue."""
    from channel_adapters.outbound import OutboundAdapter
    from channel_adapters.sms import SmsAdapter
    from touchwave.temporal import register_search_attributes
    from prometheus_client import start_http_server
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    from touchwave.worker import build_channel_worker, build_worker

    settings = Settings.from_env(args.database_url)
    store = _store(args)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
        _out(f"metrics on :{settings.metrics_port}/metrics"
             + (f", Temporal SDK metrics on :{settings.sdk_metrics_port}/metrics" if settings.sdk_metrics_port else ""))
    adapters = {"sms": SmsAdapter(settings.sms_gateway_url, rate_per_second=settings.sms_rate),
                "outbound": OutboundAdapter(settings.call_centre_url)}

    async def work() -> None:
        runtime = None
        if settings.sdk_metrics_port:
            runtime = Runtime(telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=f"0.0.0.0:{settings.sdk_metrics_port}")))
        client = await _temporal(settings, runtime)
        if settings.worker_channels:
            workers = []
            for channel in settings.worker_channels:
                queue = settings.channel_queues.get(channel)
                if queue is None:
                    raise UserError(f"TOUCHWAVE_WORKER_CHANNELS names {channel}, which has no queue in "
                                    "TOUCHWAVE_CHANNEL_QUEUES (e.g. sms=touchwave-sms)")
                workers.append(build_channel_worker(client, store.engine, adapters, queue, batch_size=args.batch_size))
                _out(f"{channel} worker on {settings.temporal_address}, task queue {queue}")
        else:
            await register_search_attributes(client)
            workers = [build_worker(client, store.engine, adapters, task_queue=settings.task_queue,
                                    batch_size=args.batch_size)]
            _out(f"worker on {settings.temporal_address}, task queue {settings.task_queue}")
        await asyncio.gather(*(w.run() for w in workers))

    stop = _dispatch_orders_in_background(store, settings) if args.orders else None
    try:
        asyncio.run(work())
    except KeyboardInterrupt:
        _out("worker stopped")
    finally:
        if stop:
            stop.set()
    return EXIT_OK


def _boss(settings: Settings):
    from channel_adapters.boss import BossAdapter

    return BossAdapter(settings.boss_url, rate_per_second=settings.boss_rate)


def _dispatch_orders_in_background(store: Store, settings: Settings) -> threading.Event:
    from touchwave.dispatcher import run_dispatcher

    stop = threading.Event()
    threading.Thread(target=run_dispatcher, args=(store.engine, _boss(settings), stop), name="orders",
                     daemon=True).start()
    _out(f"order dispatcher to {settings.boss_url} at {settings.boss_rate:g} orders/s")
    return stop


def cmd_orders_dispatch(args: argparse.Namespace) -> int:
    from touchwave.dispatcher import dispatch_once, run_dispatcher

    settings = Settings.from_env(args.database_url)
    store = _store(args)
    if args.once:
        done = dispatch_once(store.engine, _boss(settings))
        _out(f"{done.taken} order(s) taken: {done.delivered} delivered, {done.failed} refused, "
             f"{done.retrying} to retry")
        return EXIT_OK
    _out(f"dispatching orders to {settings.boss_url} at {settings.boss_rate:g} orders/s (Ctrl-C stops)")
    stop = threading.Event()
    try:
        run_dispatcher(store.engine, _boss(settings), stop)
    except KeyboardInterrupt:
        _out("dispatcher stopped")
    return EXIT_OK


def cmd_orders_list(args: argparse.Namespace) -> int:
    from touchwave import orders

    rows = orders.listed(_store(args).engine, args.status, args.limit)
    if not rows:
        _out("no orders" + (f" {args.status}" if args.status else ""))
    for o in rows:
        _out(f"{o.id:>8}  campaign {o.campaign_id:<5} {o.msisdn:<14} {o.offer:<18} {o.status:<10} "
             f"attempts {o.attempts}" + (f"  {o.last_error}" if o.last_error else ""))
    return EXIT_OK


def cmd_orders_retry(args: argparse.Namespace) -> int:
    from touchwave import orders

    if args.all_failed and args.ids:
        raise UserError("give order ids or --all-failed, not both")
    count = orders.retry(_store(args).engine, None if args.all_failed else args.ids)
    _out(f"{count} failed order(s) back in the outbox")
    return EXIT_OK


def cmd_api(args: argparse.Namespace) -> int:
    """The API on its own (production: several of these behind a load balancer)."""
    from touchwave.api.server import serve

    settings = Settings.from_env(args.database_url)
    store = _store(args)  # refuse a store that is not migrated before any worker starts
    where = db.safe_url(store.engine)
    store.close()
    os.environ["TOUCHWAVE_DATABASE_URL"] = settings.database_url  # the workers read it
    _out(f"API on http://{args.host}:{args.port} with {args.workers} worker process(es), "
         f"store {where}, Temporal {settings.temporal_address}")
    serve(args.host, args.port, args.workers)
    return EXIT_OK


def cmd_simulator(args: argparse.Namespace) -> int:
    """The channel simulator on its own (compose's `simulator` profile): SMS gateway, call
    centre and BOSS on one port; its customers answer through touchwave's API at
    TOUCHWAVE_API_URL with an agent token it creates in the store."""
    import uvicorn

    from channel_adapters.simulator import Simulator
    from channel_adapters.simulator.app import create_app, play_customers

    from touchwave import tokens

    settings = Settings.from_env(args.database_url)
    store = _store(args)
    agents = tokens.create(store.engine, "simulated agents", "agent")
    store.close()
    sim = Simulator(seed=args.seed)

    async def serve() -> None:
        server = uvicorn.Server(uvicorn.Config(create_app(sim), host=args.host, port=args.port, log_level="warning"))
        customers = asyncio.create_task(play_customers(sim, settings.api_url, agents))
        try:
            await server.serve()
        finally:
            customers.cancel()

    _out(f"simulator on http://{args.host}:{args.port} (SMS gateway, call centre, BOSS); "
         f"its customers answer through {settings.api_url}")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return EXIT_OK


def cmd_dev(args: argparse.Namespace) -> int:
    from touchwave.stack import Stack

    async def serve() -> None:
        async with Stack(Settings.from_env(args.database_url)) as stack:
            _out(f"touchwave dev: Temporal {stack.settings.temporal_address} (UI {stack.ui_url}), "
                 f"API {stack.api_url}, simulator :{stack.ports.simulator}, store {stack.settings.database_url}")
            _out(f"console at {stack.api_url}/ — sign in with a token from "
                 "`touchwave token create --role configurer --user you` (or approver, operator, analyst)")
            _out("Ctrl-C stops everything")
            await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        _out("stopped")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from touchwave.demo import run_demo

    asyncio.run(run_demo(Settings.from_env(args.database_url), args.subscribers, args.seconds_per_day,
                         postgres=args.postgres, airflow=args.airflow))
    return EXIT_OK


# -- parser --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="touchwave", description="Multi-channel campaign engine for telecom operators.")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: $TOUCHWAVE_DATABASE_URL or var/touchwave.db)")
    parser.add_argument("--log-level", default=os.environ.get("TOUCHWAVE_LOG_LEVEL", "WARNING"))
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        return groups.add_parser(name, help=help_text).add_subparsers(dest="command", required=True, metavar="ACTION")

    def command(sub: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int],
                help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    database = group("db", "the database schema")
    command(database, "upgrade", cmd_db_upgrade, "create or migrate the schema to this version of touchwave")

    offers = group("offers", "the offer catalog and its scripts")
    p = command(offers, "load", cmd_offers_load, "create or update offers and scripts from a catalog JSON file")
    p.add_argument("file")
    command(offers, "list", cmd_offers_list, "list offers with their scripts per channel")

    subs = group("subscribers", "subscribers")
    p = command(subs, "synth", cmd_subscribers_synth,
                "load synthetic subscribers and their tags (the demo tag catalog), for demos and benchmarks")
    p.add_argument("--count", type=_positive_int, default=5000)
    p.add_argument("--seed", type=int, default=0)
    p = command(subs, "load", cmd_subscribers_load, "load subscribers from a CSV (msisdn, region, plan, attributes…)")
    p.add_argument("file")
    p = command(subs, "stats", cmd_subscribers_stats, "count subscribers by region and plan")
    p.add_argument("--format", choices=("text", "json"), default="text")

    events = group("events", "customer events that trigger campaigns: the catalog, and replaying files")
    p = command(events, "catalog", cmd_events_catalog, "create or update event types from a catalog JSON file")
    p.add_argument("file")
    command(events, "list", cmd_events_list, "the event types and their payload fields")
    p = command(events, "replay", cmd_events_replay,
                "ingest a JSON Lines file of events (one {id, type, msisdn, occurred_at, payload} per line)")
    p.add_argument("file")
    p.add_argument("--batch", type=_positive_int, default=1000, help="events per batch (at most 1000)")

    tags = group("tags", "the big-data platform's tags: catalog and daily drops")
    p = command(tags, "catalog", cmd_tags_catalog, "create or update tags from a catalog JSON file")
    p.add_argument("file")
    p = command(tags, "import", cmd_tags_import,
                "import a drop (CSV or CSV.gz: msisdn + one column per catalog tag) as the current tags")
    p.add_argument("file")
    command(tags, "list", cmd_tags_list, "the tag catalog and the current snapshot")

    segs = group("segment", "named segments: rules over subscriber fields and tags")
    p = command(segs, "save", cmd_segment_save, "store a rule as a segment's next version")
    p.add_argument("name")
    p.add_argument("rule", help="the rule as JSON or a .json file")
    p.add_argument("--description")
    p.add_argument("--author", default=os.environ.get("TOUCHWAVE_USER") or getpass.getuser())
    p = command(segs, "preview", cmd_segment_preview, "count and sample who a rule or a segment selects now")
    p.add_argument("rule", metavar="RULE|NAME", help="a rule as JSON or a .json file, or a segment's name")
    p.add_argument("--sample", type=_positive_int, default=10)
    p = command(segs, "refresh", cmd_segment_refresh,
                "recompute segments (default: those live campaigns target) and record who joined and left")
    p.add_argument("names", nargs="*", metavar="NAME")
    command(segs, "list", cmd_segment_list, "segments with their latest version and last refresh")
    p = command(segs, "show", cmd_segment_show, "a segment's rule")
    p.add_argument("name")
    p.add_argument("--version", type=_positive_int)

    dnds = group("dnd", "do-not-disturb entries: global, per channel, per business line")
    p = command(dnds, "add", cmd_dnd_add, "add or update an entry (active channels stop contacting the number)")
    p.add_argument("msisdn")
    p.add_argument("--scope", default="global", help="global (default), channel:<channel> or business_line:<line>")
    p.add_argument("--source", required=True, choices=("customer_request", "complaint", "regulator", "bounced"))
    p.add_argument("--expires", help="YYYY-MM-DD (end of that day, UTC) or an ISO timestamp; none: until removed")
    p.add_argument("--note")
    p.add_argument("--author", default=os.environ.get("TOUCHWAVE_USER") or getpass.getuser())
    p = command(dnds, "import", cmd_dnd_import, "add entries from a CSV: msisdn, scope, source[, expires_at, note]")
    p.add_argument("file")
    p.add_argument("--author", default=os.environ.get("TOUCHWAVE_USER") or getpass.getuser())
    p = command(dnds, "remove", cmd_dnd_remove, "remove the entry of a number at a scope")
    p.add_argument("msisdn")
    p.add_argument("--scope", default="global")
    p = command(dnds, "show", cmd_dnd_show, "a number's entries, expired ones included")
    p.add_argument("msisdn")

    capg = group("caps", "frequency caps: marketing contacts per subscriber per period, across campaigns")
    p = command(capg, "set", cmd_caps_set, "create or change a cap")
    p.add_argument("name")
    p.add_argument("--channel", default="any", choices=("any", "sms", "outbound", "app"))
    p.add_argument("--max", type=int, required=True, help="contacts allowed per period")
    p.add_argument("--per", required=True, help="P<days>D (rolling, e.g. P7D) or month (calendar)")
    command(capg, "list", cmd_caps_list, "the caps in force")
    p = command(capg, "remove", cmd_caps_remove, "remove a cap")
    p.add_argument("name")

    chan = group("channels", "channel rules for every campaign: quiet hours and daily capacity")
    p = command(chan, "set", cmd_channels_set, "change a channel's quiet hours and/or daily capacity")
    p.add_argument("channel")
    p.add_argument("--quiet", help="FROM-UNTIL local time, e.g. 21:00-08:00 (in the campaign's time zone), or none")
    p.add_argument("--capacity", help="contacts a day across campaigns (outbound, hall, hotline, online_hall), or none")
    p.add_argument("--seats", type=_positive_int, help="call-centre seats (with --calls-per-seat)")
    p.add_argument("--calls-per-seat", type=_positive_int, help="calls one seat makes a day")
    p.add_argument("--unit-cost", help="what one contact costs (effect reports: cost per acceptance), or none")
    command(chan, "list", cmd_channels_list, "every channel's quiet hours and capacity")

    ords = group("orders", "the order outbox: accepted offers on their way to BOSS")
    p = command(ords, "list", cmd_orders_list, "orders, newest last (failed ones with their reason)")
    p.add_argument("--status", choices=("pending", "sending", "delivered", "failed"))
    p.add_argument("--limit", type=_positive_int, default=100)
    p = command(ords, "retry", cmd_orders_retry, "send failed orders again")
    p.add_argument("ids", nargs="*", type=int, metavar="ID")
    p.add_argument("--all-failed", action="store_true")
    p = command(ords, "dispatch", cmd_orders_dispatch, "deliver due orders to BOSS (TOUCHWAVE_BOSS_URL)")
    p.add_argument("--once", action="store_true", help="one batch, then stop")

    toks = group("token", "API tokens: who calls the API, in which role")
    p = command(toks, "create", cmd_token_create, "a new token (printed once)")
    p.add_argument("--role", required=True, choices=("agent", "configurer", "approver", "operator", "analyst", "admin"))
    p.add_argument("--user", default=os.environ.get("TOUCHWAVE_USER") or getpass.getuser())
    command(toks, "list", cmd_token_list, "tokens, revoked ones included (never the tokens themselves)")
    p = command(toks, "revoke", cmd_token_revoke, "stop a token working")
    p.add_argument("id", type=int)

    templates = group("template", "flowchart templates")
    p = command(templates, "validate", cmd_template_validate, "check templates (no store needed)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p = command(templates, "upload", cmd_template_upload, "store templates; a changed one becomes a new version")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--author", default=os.environ.get("TOUCHWAVE_USER") or getpass.getuser())
    command(templates, "list", cmd_template_list, "list templates (latest version of each)")
    p = command(templates, "show", cmd_template_show, "show a template's compiled plan")
    p.add_argument("name")
    p.add_argument("--version", type=_positive_int)
    p.add_argument("--format", choices=("text", "mermaid", "json"), default="text")

    camp = group("campaign", "campaigns as Temporal workflows")
    p = command(camp, "start", cmd_campaign_start, "create a campaign from a template and start its workflow")
    p.add_argument("template")
    p.add_argument("--version", type=_positive_int)
    p.add_argument("--shard-size", type=_positive_int, default=50_000)
    p.add_argument("--time-scale", type=float, default=1.0, help="multiply every wait by this (demos)")
    p.add_argument("--author", default=os.environ.get("TOUCHWAVE_USER") or getpass.getuser())
    p = command(camp, "status", cmd_campaign_status, "the campaign's funnel per step and channel")
    p.add_argument("id", type=_positive_int)
    for name in ("pause", "resume", "cancel"):
        p = command(camp, name, _signal_or_step, f"{name} a running campaign (with TOUCHWAVE_TOKEN: through the API)")
        p.add_argument("id", type=_positive_int)
        p.add_argument("--comment")
    p = command(camp, "create", cmd_campaign_create,
                "a draft campaign from a template, through the API (TOUCHWAVE_TOKEN, role configurer)")
    p.add_argument("template")
    p.add_argument("--version", type=_positive_int)
    p.add_argument("--name")
    for name, role, what in (("submit", "configurer", "submit a draft for approval"),
                             ("approve", "approver", "approve a submitted campaign (never your own)"),
                             ("reject", "approver", "send a submitted campaign back to draft"),
                             ("launch", "operator", "start an approved campaign's workflow")):
        p = command(camp, name, cmd_campaign_step, f"{what}, through the API (TOUCHWAVE_TOKEN, role {role})")
        p.add_argument("id", type=_positive_int)
        if name != "launch":
            p.add_argument("--comment", required=name == "reject")
    p = command(camp, "audit", cmd_campaign_audit, "who took which step when, through the API (TOUCHWAVE_TOKEN)")
    p.add_argument("id", type=_positive_int)
    p = command(camp, "sync", cmd_campaign_sync,
                "take in subscribers who match the audience now (a new cohort) and let go of those who left")
    p.add_argument("id", type=_positive_int)

    p = groups.add_parser("report", help="a campaign's effect: funnel per wave, conversion, uplift over control, cost")
    p.set_defaults(handler=cmd_report)
    p.add_argument("campaign", type=_positive_int)
    p.add_argument("--format", choices=("table", "json", "html"), default="table")
    p.add_argument("--output", "-o", help="write to this file instead of the terminal")

    boss = group("boss", "BOSS's order feed: every order placed, in a campaign or not (control groups)")
    p = command(boss, "feed", cmd_boss_feed, "record a feed CSV: boss_order_id, msisdn, product, ordered_at")
    p.add_argument("file")

    cpcg = group("cpc", "the customer-product-channel model that routes `best` splits")
    command(cpcg, "fit", cmd_cpc_fit, "refit from the contact ledger and the answers")
    command(cpcg, "show", cmd_cpc_show, "the latest fit and the rates per channel, product and plan")

    p = groups.add_parser("respond", help="record a customer's answer (accepted/declined end the campaign for them)")
    p.set_defaults(handler=cmd_respond)
    p.add_argument("msisdn")
    p.add_argument("campaign", type=_positive_int)
    p.add_argument("outcome", choices=("accepted", "declined", "considering"))
    p.add_argument("--channel", required=True, choices=("sms", "outbound", "app", "hall", "hotline", "online_hall"))
    p.add_argument("--agent")
    p.add_argument("--note")

    p = groups.add_parser("worker", help="run a campaign worker against TOUCHWAVE_TEMPORAL_ADDRESS")
    p.set_defaults(handler=cmd_worker)
    p.add_argument("--batch-size", type=_positive_int, default=1000)
    p.add_argument("--no-orders", dest="orders", action="store_false",
                   help="do not run the order dispatcher in this worker (run `touchwave orders dispatch` elsewhere)")
    p = groups.add_parser("api", help="serve the HTTP API (uvicorn) against the store and TOUCHWAVE_TEMPORAL_ADDRESS")
    p.set_defaults(handler=cmd_api)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_positive_int, default=8000)
    p.add_argument("--workers", type=_positive_int, default=2, help="worker processes (default 2)")
    p = groups.add_parser("simulator", help="serve the channel simulator (SMS gateway, call centre, BOSS, customers)")
    p.set_defaults(handler=cmd_simulator)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_positive_int, default=8100)
    p.add_argument("--seed", type=int, default=7)
    p = groups.add_parser("dev", help="run the embedded stack: Temporal dev server + UI, worker, API, simulator")
    p.set_defaults(handler=cmd_dev)
    p = groups.add_parser("demo", help="run the ringback-tone campaign end to end on the embedded stack")
    p.set_defaults(handler=cmd_demo)
    p.add_argument("--subscribers", type=_positive_int, default=20_000)
    p.add_argument("--seconds-per-day", type=float, default=2.0)
    p.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL database instead of SQLite "
                   "(its name must say demo: the demo drops and creates it)")
    p.add_argument("--airflow", action="store_true", help="run Airflow standalone beside the stack, its metadata "
                   "in <database>_airflow on the same server, and refit the CPC model through its DAG")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level.upper())
    try:
        return args.handler(args)
    except UserError as exc:
        print(f"touchwave: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print("touchwave: internal error (the traceback above is for the developers)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
