"""The per-wave funnel of a campaign, read from the store, as a table for a terminal."""

from __future__ import annotations

from sqlalchemy import Engine

from touchwave import contacts
from touchwave.templates.plan import Plan

REACHED = ("sent", "delivered", "open")


def funnel_text(engine: Engine, campaign_id: int, plan: Plan) -> str:
    data = contacts.progress(engine, campaign_id)
    lines = [f"{'step':<22}{'channel':<12}{'targeted':>9}{'sent/shown':>11}{'failed':>8}{'withdrawn':>10}{'in flight':>10}"]
    for step in plan.channel_steps:
        statuses = data["steps"].get(step.id, {}).get("statuses", {})
        count = lambda *names: sum(v for k, v in statuses.items() if k.split(":")[0] in names)  # noqa: E731
        lines.append(f"{step.id:<22}{step.kind:<12}{sum(statuses.values()):>9}{count(*REACHED):>11}{count('failed'):>8}"
                     f"{count('withdrawn'):>10}{count('claimed', 'sending'):>10}")
    members = data["members"]
    lines.append("members: " + ", ".join(f"{state} {members.get(state, 0)}" for state in
                                          ("pending", "contacted", "considering", "accepted", "declined")))
    if data["responses"]:
        lines.append("answers: " + ", ".join(f"{k.replace(':', ' ')} {v}" for k, v in sorted(data["responses"].items())))
    return "\n".join(lines)
