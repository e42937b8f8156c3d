"""The customer–product–channel (CPC) model of seed 002, fitted from the contact ledger
and the answers.

Three parts, each a rate with its trials:

- customer–channel: how often the subscriber answers (accepts, declines or considers)
  when reached through a channel — some never come to a hall, some ignore SMS;
- customer–product: how often the subscriber takes a product when they answer about it;
- product–channel: how often an answer about the product through the channel is a yes
  (what sells by SMS, what needs a conversation).

Thin data must not give wild scores (one answer in one contact is not a 100% customer),
so every rate is shrunk toward the level above it, beta-binomial style: a rate is
(successes + k · parent rate) / (trials + k), k pseudo-trials of the parent. Subscribers
shrink toward their plan's rate (the plan is the segment every subscriber has), plans
toward the channel's or product's rate, those toward the rate over every channel (or
product), and that toward an even 0.5 with one pseudo-trial; a product–channel rate
shrinks toward the product's. A channel or product with no history at all scores the
rate over all of them. With no history at
all a subscriber scores exactly their plan's rate, and with one contact they move only
1/(1 + k) of the way. Plain SQL aggregates, one statement per level, in one transaction:
a refit of millions of contacts takes seconds, and readers see the old fit until it
commits. Chosen over a regularised regression (scikit-learn is not in the stack, and
per-subscriber rates need one coefficient per subscriber anyway, which is this
shrinkage by another name).

Expected conversion of subscriber s, offered product p through channel c:
answer(s, c) × take(s, p) × fit(p, c) / take(p), the last factor being how much better
or worse the channel sells this product than the product sells on average.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, func, select, text

from touchwave.contacts import REACHED_SQL
from touchwave.policy.channels import day_of
from touchwave.store.models import Campaign, CpcFit, FlowchartTemplate, as_utc, utcnow
from touchwave.templates.plan import Plan

#: pseudo-trials of the parent rate a plan's and a subscriber's rates start from
GROUP_STRENGTH = 50.0
SUBSCRIBER_STRENGTH = 3.0

_REACHED = REACHED_SQL


@dataclass(frozen=True)
class Fit:
    contacts: int
    answers: int
    acceptances: int
    seconds: float


def campaign_products(engine: Engine) -> dict[int, str]:
    """Each campaign's product: that of the offer its first channel step makes."""
    with engine.connect() as conn:
        offers = dict(conn.execute(text("SELECT code, product FROM offers")).all())
        rows = conn.execute(select(Campaign.id, FlowchartTemplate.plan)
                            .join(FlowchartTemplate, FlowchartTemplate.id == Campaign.template_id)).all()
    products = {}
    for campaign_id, plan in rows:
        steps = [s for s in Plan.from_dict(plan).channel_steps if s.offer]
        if steps and steps[0].offer in offers:
            products[campaign_id] = offers[steps[0].offer]
    return products


def _shrunk(successes: str, trials: str, parent: str, strength: str) -> str:
    return f"(({successes}) + {strength} * {parent}) / (({trials}) + {strength})"


_FACTS = (
    "CREATE TEMPORARY TABLE tw_cpc_facts AS "
    "SELECT x.campaign_id, x.subscriber_id, x.channel, p.product, s.plan, "
    " CASE WHEN a.subscriber_id IS NULL THEN 0 ELSE 1 END AS answered, COALESCE(a.accepted, 0) AS accepted "
    f"FROM (SELECT DISTINCT c.campaign_id, c.subscriber_id, c.channel FROM contact_ledger c WHERE {_REACHED}) AS x "
    "JOIN tw_campaign_product p ON p.campaign_id = x.campaign_id "
    "JOIN subscribers s ON s.id = x.subscriber_id "
    "LEFT JOIN (SELECT campaign_id, subscriber_id, channel,"
    " max(CASE WHEN outcome = 'accepted' THEN 1 ELSE 0 END) AS accepted"
    " FROM responses GROUP BY campaign_id, subscriber_id, channel) AS a"
    " ON a.campaign_id = x.campaign_id AND a.subscriber_id = x.subscriber_id AND a.channel = x.channel"
)
# per campaign and subscriber who answered about its product in any channel: did they take it
_ANSWERS = (
    "CREATE TEMPORARY TABLE tw_cpc_answers AS SELECT campaign_id, subscriber_id, product, plan,"
    " max(accepted) AS accepted FROM tw_cpc_facts WHERE answered = 1 GROUP BY campaign_id, subscriber_id, product, plan"
)

_LEVELS = [
    # customer–channel: answered when reached (item '*': every channel, the fallback of
    # a channel without history)
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'channel', '', '*', count(*), sum(answered), {_shrunk('sum(answered)', 'count(*)', '0.5', '1.0')} "
    "FROM tw_cpc_facts HAVING count(*) > 0",
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'channel', '', f.channel, count(*), sum(f.answered), "
    f"{_shrunk('sum(f.answered)', 'count(*)', 'r.score', ':group')} FROM tw_cpc_facts f "
    "JOIN cpc_rates r ON r.kind = 'channel' AND r.grp = '' AND r.item = '*' GROUP BY f.channel, r.score",
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'plan_channel', f.plan, f.channel, count(*), sum(f.answered), "
    f"{_shrunk('sum(f.answered)', 'count(*)', 'r.score', ':group')} FROM tw_cpc_facts f "
    "JOIN cpc_rates r ON r.kind = 'channel' AND r.grp = '' AND r.item = f.channel GROUP BY f.plan, f.channel, r.score",
    "INSERT INTO cpc_subscriber_channel (subscriber_id, channel, trials, successes, score) "
    f"SELECT f.subscriber_id, f.channel, count(*), sum(f.answered), "
    f"{_shrunk('sum(f.answered)', 'count(*)', 'g.score', ':subscriber')} FROM tw_cpc_facts f "
    "JOIN cpc_rates g ON g.kind = 'plan_channel' AND g.grp = f.plan AND g.item = f.channel "
    "GROUP BY f.subscriber_id, f.channel, g.score",
    # customer–product: took it when they answered about it
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'product', '', '*', count(*), sum(accepted), {_shrunk('sum(accepted)', 'count(*)', '0.5', '1.0')} "
    "FROM tw_cpc_answers HAVING count(*) > 0",
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'product', '', a.product, count(*), sum(a.accepted), "
    f"{_shrunk('sum(a.accepted)', 'count(*)', 'r.score', ':group')} FROM tw_cpc_answers a "
    "JOIN cpc_rates r ON r.kind = 'product' AND r.grp = '' AND r.item = '*' GROUP BY a.product, r.score",
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'plan_product', a.plan, a.product, count(*), sum(a.accepted), "
    f"{_shrunk('sum(a.accepted)', 'count(*)', 'r.score', ':group')} FROM tw_cpc_answers a "
    "JOIN cpc_rates r ON r.kind = 'product' AND r.grp = '' AND r.item = a.product GROUP BY a.plan, a.product, r.score",
    "INSERT INTO cpc_subscriber_product (subscriber_id, product, trials, successes, score) "
    f"SELECT a.subscriber_id, a.product, count(*), sum(a.accepted), "
    f"{_shrunk('sum(a.accepted)', 'count(*)', 'g.score', ':subscriber')} FROM tw_cpc_answers a "
    "JOIN cpc_rates g ON g.kind = 'plan_product' AND g.grp = a.plan AND g.item = a.product "
    "GROUP BY a.subscriber_id, a.product, g.score",
    # product–channel: an answer about the product through the channel was a yes
    "INSERT INTO cpc_rates (kind, grp, item, trials, successes, score) "
    f"SELECT 'product_channel', f.product, f.channel, count(*), sum(f.accepted), "
    f"{_shrunk('sum(f.accepted)', 'count(*)', 'r.score', ':group')} FROM tw_cpc_facts f "
    "JOIN cpc_rates r ON r.kind = 'product' AND r.grp = '' AND r.item = f.product WHERE f.answered = 1 "
    "GROUP BY f.product, f.channel, r.score",
]


def fit(engine: Engine, group_strength: float = GROUP_STRENGTH,
        subscriber_strength: float = SUBSCRIBER_STRENGTH) -> Fit:
    """Refit the whole model from the ledger and the answers (one transaction)."""
    started = time.perf_counter()
    products = campaign_products(engine)
    strengths = {"group": float(group_strength), "subscriber": float(subscriber_strength)}
    with engine.begin() as conn:
        for table in ("tw_campaign_product", "tw_cpc_facts", "tw_cpc_answers"):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        conn.exec_driver_sql("CREATE TEMPORARY TABLE tw_campaign_product (campaign_id INTEGER PRIMARY KEY, "
                             "product VARCHAR(64) NOT NULL)")
        if products:
            conn.execute(text("INSERT INTO tw_campaign_product (campaign_id, product) VALUES (:c, :p)"),
                         [{"c": c, "p": p} for c, p in products.items()])
        conn.exec_driver_sql(_FACTS)
        conn.exec_driver_sql(_ANSWERS)
        for table in ("cpc_rates", "cpc_subscriber_channel", "cpc_subscriber_product"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        for statement in _LEVELS:
            conn.execute(text(statement), strengths)
        contacts, answers, acceptances = conn.execute(text(
            "SELECT count(*), COALESCE(sum(answered), 0), COALESCE(sum(accepted), 0) FROM tw_cpc_facts")).one()
        for table in ("tw_campaign_product", "tw_cpc_facts", "tw_cpc_answers"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        seconds = time.perf_counter() - started
        conn.execute(CpcFit.__table__.insert().values(
            fitted_at=utcnow(), contacts=contacts, answers=answers, acceptances=acceptances,
            group_strength=group_strength, subscriber_strength=subscriber_strength, seconds=seconds))
    return Fit(int(contacts), int(answers), int(acceptances), seconds)


def refit_due(engine: Engine, timezone: str) -> str | None:
    """Why the model should be refitted now, or None: never fitted, last fitted before
    today, or a campaign ended (finished, cancelled) after the last fit."""
    with engine.connect() as conn:
        last = conn.execute(select(CpcFit.fitted_at).order_by(CpcFit.id.desc()).limit(1)).scalar()
        if last is None:
            return "never fitted"
        last = as_utc(last)
        if day_of(last, timezone) < day_of(utcnow(), timezone):
            return "last fitted before today"
        # every status change stamps updated_at, the workflow's and the lifecycle's alike
        ended = conn.execute(select(func.count()).select_from(Campaign).where(
            Campaign.status.in_(("finished", "cancelled")), Campaign.updated_at > last)).scalar_one()
    return "a campaign ended since the last fit" if ended else None


def describe(engine: Engine) -> str:
    """The latest fit and its rates above the subscriber, as a table."""
    with engine.connect() as conn:
        last = conn.execute(text("SELECT fitted_at, contacts, answers, acceptances, group_strength, "
                                 "subscriber_strength FROM cpc_fits ORDER BY id DESC LIMIT 1")).first()
        if last is None:
            return "the CPC model has not been fitted yet: run `touchwave cpc fit`"
        rates = conn.execute(text("SELECT kind, grp, item, trials, successes, score FROM cpc_rates "
                                  "ORDER BY kind, grp, item")).all()
        subscribers = conn.execute(text("SELECT count(DISTINCT subscriber_id) FROM cpc_subscriber_channel")).scalar_one()
    lines = [f"fitted {last.fitted_at} from {last.contacts:,} contacts, {last.answers:,} answers, "
             f"{last.acceptances:,} acceptances; {subscribers:,} subscribers with history "
             f"(shrinkage: {last.group_strength:g} pseudo-trials per plan, {last.subscriber_strength:g} per subscriber)",
             f"{'rate':<16}{'group':<20}{'item':<16}{'trials':>9}{'successes':>10}{'score':>8}"]
    for kind, grp, item, trials, successes, score in rates:
        lines.append(f"{kind:<16}{grp or '–':<20}{item:<16}{trials:>9,}{successes:>10,}{score:>8.3f}")
    return "\n".join(lines)
