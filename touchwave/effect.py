"""Effect evaluation: what a campaign did, and what it did beyond what would have happened anyway.

Read from the store after (or while) a campaign runs:

- the funnel per step and channel: targeted (a ledger row at the step), contacted (sent,
  delivered, or an offer window opened), suppressed by reason, delivered, failed,
  withdrawn, and the answers the step drew — an answer belongs to the member's latest
  contact in the channel it came through, at or before it (none: "no step");
- conversion per group: a member converted when they accepted the campaign's offer or
  BOSS's feed reports an order of its product since the campaign started. The treated
  group is every member not held out, contacted or not (intention to treat: what the
  campaign as run achieved), the control group the held-out members;
- uplift = treated rate − control rate, with a 95% interval by Newcombe's method (Wilson
  intervals of each rate), which keeps its coverage near 0% and with small groups where
  the plain normal interval does not;
- cost: contacts × the channel's unit cost, per acceptance and per incremental
  conversion;
- acceptances per day and channel, for the report's chart over time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from sqlalchemy import DateTime, Engine, String, bindparam, text

from touchwave import campaigns
from touchwave.contacts import REACHED_SQL
from touchwave.policy import channels
from touchwave.store import Store
from touchwave.store.models import as_utc, utc_binds
from touchwave.templates.plan import Plan

Z95 = 1.959963984540054
NO_STEP = "(no step)"


@dataclass
class StepFunnel:
    step_id: str
    channel: str
    #: 1 for the first channel step of the flowchart, 2 for the next…
    wave: int
    targeted: int = 0
    contacted: int = 0
    delivered: int = 0
    failed: int = 0
    withdrawn: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    responded: int = 0
    accepted: int = 0
    declined: int = 0
    considering: int = 0
    cost: float | None = None

    @property
    def conversion(self) -> float | None:
        return self.accepted / self.contacted if self.contacted else None


@dataclass(frozen=True)
class GroupOutcome:
    members: int
    #: accepted the campaign's offer
    accepted: int
    #: accepted, or ordered the product from BOSS on their own since the start
    converted: int
    rate: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Uplift:
    """Treated minus control conversion rate, with its 95% interval."""

    difference: float
    low: float
    high: float
    #: conversions the campaign added: difference × treated members
    incremental: float


@dataclass(frozen=True)
class DayCount:
    day: date
    channel: str
    accepted: int


@dataclass
class EffectReport:
    campaign_id: int
    campaign: str
    template: str
    status: str
    products: list[str]
    treated: GroupOutcome
    control: GroupOutcome | None
    uplift: Uplift | None
    steps: list[StepFunnel]
    by_day: list[DayCount]
    #: every contact priced (None: no channel the campaign used has a unit cost)
    cost: float | None
    cost_per_acceptance: float | None
    cost_per_incremental: float | None

    def to_dict(self) -> dict:
        data = asdict(self)
        for step, raw in zip(self.steps, data["steps"]):
            raw["conversion"] = step.conversion
        return data


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """p1 − p2 and its interval by Newcombe's hybrid score method (his method 10)."""
    p1, p2 = s1 / n1, s2 / n2
    l1, u1 = wilson(s1, n1, z)
    l2, u2 = wilson(s2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


_REACHED = REACHED_SQL

_LEDGER = text(
    f"SELECT c.step_id, c.channel, c.status, c.reason, {_REACHED} AS reached, count(*) AS n "
    "FROM contact_ledger c WHERE c.campaign_id = :c GROUP BY 1, 2, 3, 4, 5"
)

# each answer with the step it belongs to: the member's latest contact in that channel at or before it
_ATTRIBUTED = (
    "SELECT r.subscriber_id, r.channel, r.outcome, r.at, (SELECT c.step_id FROM contact_ledger c "
    " WHERE c.campaign_id = r.campaign_id AND c.subscriber_id = r.subscriber_id AND c.channel = r.channel"
    f" AND c.at <= r.at AND {_REACHED} ORDER BY c.at DESC, c.id DESC LIMIT 1) AS step_id "
    "FROM responses r WHERE r.campaign_id = :c"
)
_ANSWERS = text(
    f"SELECT step_id, channel, outcome, count(DISTINCT subscriber_id) FROM ({_ATTRIBUTED}) AS a GROUP BY 1, 2, 3"
)
_RESPONDED = text(f"SELECT step_id, channel, count(DISTINCT subscriber_id) FROM ({_ATTRIBUTED}) AS a GROUP BY 1, 2")
_ACCEPTED_AT = text("SELECT at, channel FROM responses WHERE campaign_id = :c AND outcome = 'accepted'").columns(
    at=DateTime(timezone=True), channel=String)

_GROUPS = text(
    "SELECT m.control, count(*) AS members, sum(CASE WHEN m.state = 'accepted' THEN 1 ELSE 0 END) AS accepted, "
    "sum(CASE WHEN m.state = 'accepted' OR EXISTS (SELECT 1 FROM boss_orders b WHERE b.msisdn = s.msisdn "
    " AND b.product IN :products AND b.ordered_at >= :since) THEN 1 ELSE 0 END) AS converted "
    "FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.campaign_id = :c GROUP BY m.control"
).bindparams(bindparam("products", expanding=True), *utc_binds("since"))

_CAMPAIGN = text("SELECT created_at, starts_at FROM campaigns WHERE id = :c").columns(
    created_at=DateTime(timezone=True), starts_at=DateTime(timezone=True))
_PRODUCTS = text("SELECT DISTINCT product FROM offers WHERE code IN :codes").bindparams(
    bindparam("codes", expanding=True))


def report(store: Store, campaign_id: int, timezone: str = "UTC") -> EffectReport:
    """The effect report of a campaign (`UserError` when there is no such campaign)."""
    info = campaigns.get(store, campaign_id)
    plan = info.plan
    steps = _funnel(store.engine, campaign_id, plan)
    with store.engine.connect() as conn:
        created, started = conn.execute(_CAMPAIGN, {"c": campaign_id}).one()
        since = as_utc(started or created)
        codes = sorted({s.offer for s in plan.channel_steps if s.offer})
        products = sorted(conn.execute(_PRODUCTS, {"codes": codes}).scalars()) if codes else []
        groups = {bool(row.control): row for row in
                  conn.execute(_GROUPS, {"c": campaign_id, "products": products or [""], "since": since})}
        accepted_at = conn.execute(_ACCEPTED_AT, {"c": campaign_id}).all()
        costs = {r.channel: r.unit_cost for r in channels.every_rule(conn)}
    treated, control = _group(groups.get(False)), _group(groups.get(True)) if True in groups else None
    uplift = None
    if control is not None and treated.members and control.members:
        d, low, high = newcombe(treated.converted, treated.members, control.converted, control.members)
        uplift = Uplift(d, low, high, d * treated.members)
    priced = [s for s in steps if costs.get(s.channel) is not None]
    for step in priced:
        step.cost = step.contacted * float(costs[step.channel])
    cost = sum(s.cost for s in priced) if priced else None
    return EffectReport(
        campaign_id=campaign_id, campaign=info.name, template=info.template, status=str(info.status),
        products=products, treated=treated, control=control, uplift=uplift, steps=steps,
        by_day=_by_day(accepted_at, timezone),
        cost=cost,
        cost_per_acceptance=cost / treated.accepted if cost is not None and treated.accepted else None,
        cost_per_incremental=cost / uplift.incremental if cost is not None and uplift and uplift.incremental > 0
        else None,
    )


def _group(row) -> GroupOutcome:
    if row is None:
        return GroupOutcome(0, 0, 0, None, None, None)
    members, accepted, converted = int(row.members), int(row.accepted or 0), int(row.converted or 0)
    low, high = wilson(converted, members)
    return GroupOutcome(members, accepted, converted, converted / members if members else None, low, high)


def _funnel(engine: Engine, campaign_id: int, plan: Plan) -> list[StepFunnel]:
    order = {s.id: (i + 1, s.kind) for i, s in enumerate(plan.channel_steps)}
    steps = {sid: StepFunnel(sid, kind, wave) for sid, (wave, kind) in order.items()}
    with engine.connect() as conn:
        ledger = conn.execute(_LEDGER, {"c": campaign_id}).all()
        answers = conn.execute(_ANSWERS, {"c": campaign_id}).all()
        responded = conn.execute(_RESPONDED, {"c": campaign_id}).all()

    def step(step_id: str | None, channel: str) -> StepFunnel:
        key = step_id if step_id in steps else f"{NO_STEP} {channel}"
        if key not in steps:
            steps[key] = StepFunnel(NO_STEP, channel, 0)
        return steps[key]

    for row in ledger:
        s = step(row.step_id, row.channel)
        s.targeted += row.n
        if row.reached:
            s.contacted += row.n
        if row.status == "delivered":
            s.delivered += row.n
        elif row.status == "failed":
            s.failed += row.n
        elif row.status == "withdrawn":
            s.withdrawn += row.n
        elif row.status == "suppressed":
            reason = row.reason or "unknown"
            s.suppressed[reason] = s.suppressed.get(reason, 0) + row.n
    for step_id, channel, outcome, n in answers:
        s = step(step_id, channel)
        setattr(s, outcome, getattr(s, outcome) + n)
    for step_id, channel, n in responded:
        step(step_id, channel).responded += n
    return sorted(steps.values(), key=lambda s: (s.wave == 0, s.wave, s.channel))


def _by_day(accepted_at, timezone: str) -> list[DayCount]:
    counts: dict[tuple[date, str], int] = defaultdict(int)
    for at, channel in accepted_at:
        counts[(channels.day_of(as_utc(at), timezone), channel)] += 1
    return [DayCount(day, channel, n) for (day, channel), n in sorted(counts.items())]


# -- the terminal's table ------------------------------------------------------------------


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.2%}"


def money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def as_text(r: EffectReport) -> str:
    lines = [f"campaign {r.campaign_id}: {r.campaign} [{r.status}]  products: {', '.join(r.products) or '–'}", ""]
    lines.append(f"{'wave':<5}{'step':<20}{'channel':<12}{'targeted':>9}{'contacted':>10}{'delivered':>10}"
                 f"{'failed':>7}{'withdrawn':>10}{'suppressed':>11}{'responded':>10}{'accepted':>9}{'declined':>9}"
                 f"{'considering':>12}{'conv.':>8}{'cost':>11}")
    for s in r.steps:
        lines.append(f"{s.wave or '':<5}{s.step_id:<20}{s.channel:<12}{s.targeted:>9,}{s.contacted:>10,}"
                     f"{s.delivered:>10,}{s.failed:>7,}{s.withdrawn:>10,}{sum(s.suppressed.values()):>11,}"
                     f"{s.responded:>10,}{s.accepted:>9,}{s.declined:>9,}{s.considering:>12,}"
                     f"{pct(s.conversion):>8}{money(s.cost):>11}")
        if s.suppressed:
            lines.append(f"{'':<5}  suppressed: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.suppressed.items())))
    lines.append("")
    for label, g in (("treated", r.treated), ("control", r.control)):
        if g is None:
            lines.append("control  none held out (control_share 0): no uplift can be measured")
            continue
        lines.append(f"{label:<9}{g.members:>10,} members, {g.accepted:,} accepted, {g.converted:,} converted "
                     f"(incl. BOSS orders): {pct(g.rate)} [{pct(g.low)}, {pct(g.high)}]")
    if r.uplift:
        u = r.uplift
        lines.append(f"uplift   {u.difference * 100:+.2f} points, 95% interval [{u.low * 100:+.2f}, {u.high * 100:+.2f}]"
                     f", about {u.incremental:,.0f} conversions the campaign added")
    if r.cost is not None:
        lines.append(f"cost     {money(r.cost)} in all, {money(r.cost_per_acceptance)} per acceptance, "
                     f"{money(r.cost_per_incremental)} per incremental conversion")
    return "\n".join(lines)
