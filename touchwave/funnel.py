"""The per-wave funnel of a campaign, read from the store, as a table for a terminal."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from touchwave import contacts
from touchwave.config import Settings
from touchwave.policy import capacity, channels
from touchwave.templates.plan import Plan

REACHED = ("sent", "delivered", "open")
#: members by state, as the funnel shows them (suppressed: held out as control, or stopped by policy)
MEMBER_STATES = ("pending", "contacted", "considering", "accepted", "declined", "suppressed", "left")


@dataclass(frozen=True)
class StepRow:
    step_id: str
    channel: str
    targeted: int
    reached: int
    failed: int
    withdrawn: int
    suppressed: int
    in_flight: int


@dataclass(frozen=True)
class Funnel:
    steps: list[StepRow]
    #: members by state (pending, contacted, considering, accepted, declined…)
    members: dict[str, int]
    #: answers by "channel:outcome"
    responses: dict[str, int]
    #: what steps suppressed (by reason), what waits for quiet hours or capacity, and
    #: the days a capacity-limited step is planned to take
    notes: list[str]


def funnel(engine: Engine, campaign_id: int, plan: Plan, timezone: str | None = None) -> Funnel:
    timezone = timezone or Settings.from_env().timezone
    data = contacts.progress(engine, campaign_id)
    rows: list[StepRow] = []
    notes: list[str] = []
    for step in plan.channel_steps:
        statuses = data["steps"].get(step.id, {}).get("statuses", {})
        count = lambda *names: sum(v for k, v in statuses.items() if k.split(":")[0] in names)  # noqa: E731
        rows.append(StepRow(step.id, step.kind, sum(statuses.values()), count(*REACHED), count("failed"),
                            count("withdrawn"), count("suppressed"), count("claimed", "sending")))
        notes += _reasons(step.id, "suppressed", statuses, "suppressed")
        notes += _reasons(step.id, "claimed", statuses, "waiting for")
        notes += _planned(engine, campaign_id, step.id, step.kind, timezone)
    return Funnel(rows, data["members"], data["responses"], notes)


def funnel_text(engine: Engine, campaign_id: int, plan: Plan, timezone: str | None = None) -> str:
    """The table per step, then members by state, answers, and the notes."""
    shown = funnel(engine, campaign_id, plan, timezone)
    lines = [f"{'step':<22}{'channel':<12}{'targeted':>9}{'sent/shown':>11}{'failed':>8}{'withdrawn':>10}"
             f"{'suppressed':>11}{'in flight':>10}"]
    for r in shown.steps:
        lines.append(f"{r.step_id:<22}{r.channel:<12}{r.targeted:>9}{r.reached:>11}{r.failed:>8}"
                     f"{r.withdrawn:>10}{r.suppressed:>11}{r.in_flight:>10}")
    lines.append("members: " + ", ".join(f"{state} {shown.members.get(state, 0)}" for state in MEMBER_STATES))
    if shown.responses:
        lines.append("answers: " + ", ".join(f"{k.replace(':', ' ')} {v}" for k, v in sorted(shown.responses.items())))
    return "\n".join(lines + [f"  {note}" for note in shown.notes])


def _reasons(step_id: str, status: str, statuses: dict[str, int], label: str) -> list[str]:
    """`status:reason` counts as one line, e.g. "sms suppressed: dnd 3, cap:sms_weekly 1"."""
    by_reason = {k.split(":", 1)[1]: v for k, v in statuses.items() if k.startswith(f"{status}:")}
    if not by_reason:
        return []
    return [f"{step_id} {label}: " + ", ".join(f"{r} {n}" for r, n in sorted(by_reason.items()))]


def _planned(engine: Engine, campaign_id: int, step_id: str, channel: str, timezone: str) -> list[str]:
    with engine.connect() as conn:
        rules = channels.rules_for(conn, channel)
    if rules.daily_capacity is None:
        return []
    today = channels.day_of(contacts.now(), timezone)
    days = [d for d in capacity.planned_days(engine, campaign_id, channel, rules.daily_capacity, today)
            if d.step_id == step_id]
    if not days:
        return []
    return [f"{step_id} planned ({channel} takes {rules.daily_capacity:,} a day): "
            + ", ".join(f"{d.day:%Y-%m-%d} {d.contacts:,}" for d in days)]
