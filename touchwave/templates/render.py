"""A plan as text for a terminal, or as a Mermaid flowchart for a person to look at."""

from __future__ import annotations

from datetime import timedelta

import isodate

from touchwave.templates.plan import Plan, Step


def iso_duration(total: int | None) -> str:
    return isodate.duration_isoformat(timedelta(seconds=total or 0))


def _step_detail(step: Step) -> str:
    if step.kind == "wait":
        return f"wait {iso_duration(step.wait_seconds)}"
    if step.kind == "split":
        return "split by outcome"
    if step.kind == "end":
        return "end"
    detail = f"offer {step.offer}, script {step.script}"
    return detail + (f", window {iso_duration(step.window_seconds)}" if step.passive else "")


def branches_by_target(step: Step) -> dict[str, list[str]]:
    """A split's outcomes grouped by where they lead, in outcome order."""
    groups: dict[str, list[str]] = {}
    for branch in step.branches:
        groups.setdefault(branch.next, []).append(branch.outcome)
    return groups


def edges(step: Step) -> list[tuple[str, str]]:
    """(target, label) of the step's outgoing edges: a split's outcomes grouped by target."""
    if step.branches:
        return [(target, ", ".join(outcomes)) for target, outcomes in branches_by_target(step).items()]
    return [(step.next, "")] if step.next else []


def _targets(step: Step) -> str:
    if step.branches:
        return "; ".join(f"{', '.join(outcomes)} → {target}" for target, outcomes in branches_by_target(step).items())
    return f"→ {step.next}" if step.next else ""


def as_text(plan: Plan, version: int | None = None) -> str:
    audience = f"segment {plan.audience.segment}" if plan.audience.segment else f"rule {plan.audience.rule_json}"
    head = f"{plan.template}" + (f" v{version}" if version else "") + f"  {plan.title}"
    lines = [
        head,
        f"  hash {plan.template_hash[:16]}  business line {plan.business_line}  priority {plan.priority}"
        f"  duration {iso_duration(plan.duration_seconds)}  control group {plan.control_share:.0%}",
        f"  audience: {audience}",
        "  steps:",
    ]
    width = max(len(s.id) for s in plan.steps)
    kind_width = max(len(s.kind) for s in plan.steps)
    for n, step in enumerate(plan.steps, 1):
        lines.append(
            f"  {n:>3}. {step.id:<{width}}  {step.kind:<{kind_width}}  {_step_detail(step)}  {_targets(step)}".rstrip()
        )
    return "\n".join(lines)


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def as_mermaid(plan: Plan) -> str:
    """A `flowchart TD` diagram: channel steps as boxes, waits as stadiums, splits as diamonds."""
    lines = ["flowchart TD"]
    for step in plan.steps:
        title = _label(step.label or step.id)
        if step.kind == "wait":
            lines.append(f'  {step.id}(["{title}<br/>wait {iso_duration(step.wait_seconds)}"])')
        elif step.kind == "split":
            lines.append(f'  {step.id}{{"{title}"}}')
        elif step.kind == "end":
            lines.append(f'  {step.id}(("{title}"))')
        else:
            extra = f"<br/>window {iso_duration(step.window_seconds)}" if step.passive else ""
            lines.append(f'  {step.id}["{title}<br/>{step.kind} · {step.offer}{extra}"]')
    for step in plan.steps:
        for target, label in edges(step):
            lines.append(f"  {step.id} -->|{label}| {target}" if label else f"  {step.id} --> {target}")
    return "\n".join(lines)
