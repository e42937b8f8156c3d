"""The offer view: what a hall, 10086 or online-hall agent's screen shows for a number.

Read on every customer who walks in or calls, so it is two statements on one
connection, built once: the open windows (with their campaign, member state and the
do-not-disturb flag, all in one join) and the offers' names, prices, that channel's
scripts and how likely this customer is to take each offer's product (the CPC model's
score). Ranked by campaign priority, then that score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, DateTime, bindparam, text

from touchwave.contacts import now
from touchwave.policy.dnd import IN_FORCE_SQL
from touchwave.store.models import utc_binds
from touchwave.store.templates import plan_of


@dataclass(frozen=True)
class Offer:
    """One campaign's offer to the customer in one channel."""

    campaign_id: int
    campaign: str
    priority: int
    offer: str
    offer_name: str
    price: str
    script: str
    window_ends_at: datetime
    considering: bool
    #: a do-not-disturb entry covers this customer: show the offer if asked, do not push it
    do_not_push: bool
    #: why this customer is targeted: the campaign's named segment, or its inline rule
    segment: str | None
    rule: dict | None
    #: how likely the customer is to take the offer's product (the CPC model: their own
    #: answers, shrunk toward their plan's rate; None before the model has any); among
    #: campaigns of equal priority the likelier offer comes first
    score: float | None = None


_OPEN_WINDOWS = (
    text(
        "SELECT c.campaign_id, k.name, k.priority, c.step_id, c.window_ends_at, m.state, k.template_id, "
        "s.id AS subscriber_id, s.plan, "
        f"{IN_FORCE_SQL} AS dnd "
        "FROM subscribers s "
        "JOIN contact_ledger c ON c.subscriber_id = s.id AND c.channel = :channel AND c.status = 'open' "
        "JOIN campaign_members m ON m.campaign_id = c.campaign_id AND m.subscriber_id = s.id "
        "JOIN campaigns k ON k.id = c.campaign_id "
        "WHERE s.msisdn = :msisdn AND c.window_ends_at > :now "
        "AND m.state NOT IN ('accepted', 'declined', 'left') AND k.status IN ('running', 'paused') "
        "ORDER BY k.priority DESC, c.window_ends_at"
    )
    .bindparams(*utc_binds("now"))
    .columns(window_ends_at=DateTime(timezone=True))
)

_SCRIPTS = text(
    "SELECT sc.code AS script, o.name, o.price, sc.text, COALESCE(sp.score, gp.score) AS score "
    "FROM scripts sc JOIN offers o ON o.id = sc.offer_id "
    "LEFT JOIN cpc_subscriber_product sp ON sp.subscriber_id = :subscriber AND sp.product = o.product "
    "LEFT JOIN cpc_rates gp ON gp.kind = 'plan_product' AND gp.grp = :plan AND gp.item = o.product "
    "WHERE sc.code IN :codes"
).bindparams(bindparam("codes", expanding=True))

def open_offers(conn: Connection, msisdn: str, channel: str) -> list[Offer]:
    """Open offer windows in `channel` of campaigns the customer has not completed,
    highest priority first, then the likeliest to be taken, then the window closing
    soonest."""
    windows = conn.execute(_OPEN_WINDOWS, {"channel": channel, "msisdn": msisdn, "now": now()}).all()
    if not windows:
        return []
    steps = [(plan_of(conn, w.template_id), w) for w in windows]
    steps = [(plan, plan.step(w.step_id), w) for plan, w in steps]
    scripts = {r.script: r for r in conn.execute(_SCRIPTS, {
        "codes": sorted({s.script for _, s, _ in steps}), "subscriber": windows[0].subscriber_id,
        "plan": windows[0].plan})}
    offers = [
        Offer(campaign_id=w.campaign_id, campaign=w.name, priority=w.priority, offer=step.offer or "",
              offer_name=scripts[step.script].name, price=f"{scripts[step.script].price:.2f}",
              script=scripts[step.script].text, window_ends_at=w.window_ends_at,
              considering=w.state == "considering", do_not_push=bool(w.dnd),
              segment=plan.audience.segment, rule=plan.audience.rule, score=scripts[step.script].score)
        for plan, step, w in steps
    ]
    # the windows come by priority, then closing soonest: a stable sort keeps that order among equals
    return sorted(offers, key=lambda o: (-o.priority, -(o.score or 0.0)))
