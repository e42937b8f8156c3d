"""Routing a split "by best channel": each member to the channel where the CPC model
expects them to convert best, in one statement per shard.

Per member and branch channel the statement scores the expected conversion
answer(s, c) × take(s, p) × fit(p, c) / take(p) (see `touchwave.cpc`; a subscriber with
no history scores their plan's rates, a store with no fit scores every channel alike),
or with objective "value" that times the offer's price minus the channel's unit cost.
Then:

- a channel a do-not-disturb entry covers for the member (globally, for the channel or
  the campaign's business line) comes after every other;
- ties (no model yet) are broken by a hash of campaign, subscriber and channel: an even,
  repeatable spread over the channels;
- a capacity-limited channel (a daily capacity in its rules) takes at most that day's
  capacity, shared between the shards by size, and takes its most promising members
  first; the others go to their next best channel, preferring one without a limit;
- members who cannot be contacted any more (accepted, declined, left) are not routed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, text

from touchwave.contacts import _ELIGIBLE_SQL, _IN_SHARD, Shard, _on_route, now
from touchwave.policy import channels, dnd
from touchwave.store.db import bucket_sql
from touchwave.store.models import utc_binds

_DND = dnd.in_force_sql("b.channel")

_EXPECTED = (
    "COALESCE(sc.score, gc.score, cc.score, ca.score, 0.5) * COALESCE(sp.score, gp.score, pp.score, pa.score, 0.5)"
    " * COALESCE(pc.score / NULLIF(pp.score, 0), 1.0)"
)


@dataclass(frozen=True)
class BranchChoice:
    channel: str
    target: str
    product: str
    price: float
    unit_cost: float
    #: how many members this shard may route to the channel (None: no limit)
    limit: int | None


def _statement(dialect: str, route: str | None, count: int, objective: str) -> str:
    values = ", ".join(
        f"(CAST(:channel{i} AS VARCHAR(24)), CAST(:target{i} AS VARCHAR(64)), CAST(:product{i} AS VARCHAR(64)), "
        f"CAST(:price{i} AS FLOAT), CAST(:cost{i} AS FLOAT), CAST(:limit{i} AS INTEGER), {i})"
        for i in range(count))
    score = f"({_EXPECTED}) * b.price - b.cost" if objective == "value" else _EXPECTED
    tie = bucket_sql(dialect, "CAST(m.campaign_id AS VARCHAR) || ':' || CAST(m.subscriber_id AS VARCHAR) || ':' || b.channel")
    return (
        f"WITH branch (channel, target, product, price, cost, cap, pos) AS (VALUES {values}), "
        "cand AS ("
        f" SELECT m.subscriber_id, b.channel, b.target, b.cap, {score} AS score,"
        f" CASE WHEN {_DND} THEN 1 ELSE 0 END AS blocked, {tie} AS tie"
        " FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id JOIN campaigns k ON k.id = m.campaign_id"
        " CROSS JOIN branch b"
        " LEFT JOIN cpc_subscriber_channel sc ON sc.subscriber_id = m.subscriber_id AND sc.channel = b.channel"
        " LEFT JOIN cpc_rates gc ON gc.kind = 'plan_channel' AND gc.grp = s.plan AND gc.item = b.channel"
        " LEFT JOIN cpc_rates cc ON cc.kind = 'channel' AND cc.grp = '' AND cc.item = b.channel"
        " LEFT JOIN cpc_rates ca ON ca.kind = 'channel' AND ca.grp = '' AND ca.item = '*'"
        " LEFT JOIN cpc_rates pa ON pa.kind = 'product' AND pa.grp = '' AND pa.item = '*'"
        " LEFT JOIN cpc_subscriber_product sp ON sp.subscriber_id = m.subscriber_id AND sp.product = b.product"
        " LEFT JOIN cpc_rates gp ON gp.kind = 'plan_product' AND gp.grp = s.plan AND gp.item = b.product"
        " LEFT JOIN cpc_rates pp ON pp.kind = 'product' AND pp.grp = '' AND pp.item = b.product"
        " LEFT JOIN cpc_rates pc ON pc.kind = 'product_channel' AND pc.grp = b.product AND pc.item = b.channel"
        f" WHERE {_IN_SHARD} {_on_route(route)} AND m.state IN {_ELIGIBLE_SQL}"
        "), ranked AS ("
        " SELECT cand.*, row_number() OVER (PARTITION BY subscriber_id ORDER BY blocked, score DESC, tie) AS choice"
        " FROM cand"
        "), firsts AS ("
        " SELECT ranked.*, row_number() OVER (PARTITION BY channel ORDER BY blocked, score DESC, tie) AS place"
        " FROM ranked WHERE choice = 1"
        "), overflow AS (SELECT subscriber_id, target FROM firsts WHERE cap IS NOT NULL AND place > cap"
        "), fallback AS ("
        " SELECT r.subscriber_id, r.target, row_number() OVER (PARTITION BY r.subscriber_id"
        "  ORDER BY CASE WHEN r.cap IS NULL THEN 0 ELSE 1 END, r.blocked, r.score DESC, r.tie) AS n"
        " FROM ranked r JOIN overflow o ON o.subscriber_id = r.subscriber_id WHERE r.choice > 1"
        "), chosen AS ("
        " SELECT subscriber_id, target FROM firsts WHERE cap IS NULL OR place <= cap"
        " UNION ALL SELECT subscriber_id, target FROM fallback WHERE n = 1"
        # nowhere else to go: they queue for their first choice
        " UNION ALL SELECT o.subscriber_id, o.target FROM overflow o"
        "  WHERE NOT EXISTS (SELECT 1 FROM fallback f WHERE f.subscriber_id = o.subscriber_id)"
        ") "
        "UPDATE campaign_members SET route = (SELECT target FROM chosen WHERE chosen.subscriber_id = campaign_members.subscriber_id) "
        "WHERE campaign_id = :campaign AND subscriber_id IN (SELECT subscriber_id FROM chosen)"
    )


def route_best(engine: Engine, shard: Shard, route: str | None, branches: dict[str, str], offers: dict[str, str],
               objective: str = "conversion") -> dict[str, int]:
    """Pin each eligible member of the shard on `route` to the branch of their best
    channel (`branches`: channel → the node that follows; `offers`: channel → the offer
    that step makes). Returns how many members each channel got."""
    with engine.begin() as conn:
        catalog = {code: (product, float(price)) for code, product, price in conn.execute(
            text("SELECT code, product, price FROM offers WHERE code IN :codes")
            .bindparams(bindparam("codes", expanding=True)), {"codes": sorted(set(offers.values())) or [""]})}
        members = conn.execute(text(f"SELECT count(*) FROM campaign_members m WHERE {_IN_SHARD}"),
                               shard.params).scalar_one()
        everyone = conn.execute(text("SELECT count(*) FROM campaign_members WHERE campaign_id = :campaign"),
                                shard.params).scalar_one()
        choices = []
        for channel, target in branches.items():
            rules = channels.rules_for(conn, channel)
            product, price = catalog.get(offers.get(channel, ""), ("", 0.0))
            limit = (math.ceil(rules.daily_capacity * members / everyone)
                     if rules.daily_capacity is not None and everyone else None)
            choices.append(BranchChoice(channel, target, product, price, rules.unit_cost or 0.0, limit))
        params: dict = {**shard.params, "now": now(), **({"route": route} if route is not None else {})}
        for i, c in enumerate(choices):
            params |= {f"channel{i}": c.channel, f"target{i}": c.target, f"product{i}": c.product,
                       f"price{i}": c.price, f"cost{i}": c.unit_cost, f"limit{i}": c.limit}
        statement = text(_statement(conn.dialect.name, route, len(choices), objective)).bindparams(*utc_binds("now"))
        conn.execute(statement, params)
        targets = {c.target: c.channel for c in choices}
        counts = conn.execute(text(f"SELECT m.route, count(*) FROM campaign_members m WHERE {_IN_SHARD} "
                                   f"AND m.state IN {_ELIGIBLE_SQL} AND m.route IN :targets GROUP BY m.route")
                              .bindparams(bindparam("targets", expanding=True)),
                              {**shard.params, "targets": sorted(targets)}).all()
    return {targets[t]: n for t, n in counts}
