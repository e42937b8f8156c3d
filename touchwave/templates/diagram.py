"""A plan drawn as an SVG flowchart, for the console: no script and no layout library.

Nodes are placed in rows by their longest distance from the entry (a plan is acyclic),
so every edge points down; each row is centred. Channel steps are boxes, waits rounded,
splits diamonds, ends circles. The picture carries a text alternative: the same plan as
an ordered list is on the page beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from touchwave.templates.plan import Plan, Step
from touchwave.templates.render import edges, iso_duration

BOX_W, BOX_H = 220, 58
GAP_X, GAP_Y = 36, 62
MARGIN = 20
FILL = {"sms": "#dbeafe", "outbound": "#fde68a", "app": "#e9d5ff", "hall": "#bbf7d0", "hotline": "#bbf7d0",
        "online_hall": "#bbf7d0", "wait": "#f1f5f9", "split": "#fee2e2", "end": "#e5e7eb"}


@dataclass(frozen=True)
class _Placed:
    step: Step
    x: float
    y: float


def _rows(plan: Plan) -> list[list[Step]]:
    depth = {plan.entry: 0}
    for step in plan.steps:  # the plan's steps come in topological order
        for target, _ in edges(step):
            if step.id in depth:
                depth[target] = max(depth.get(target, 0), depth[step.id] + 1)
    rows: list[list[Step]] = []
    for step in plan.steps:
        level = depth.get(step.id, 0)
        while len(rows) <= level:
            rows.append([])
        rows[level].append(step)
    return rows


def _detail(step: Step) -> str:
    if step.kind == "wait":
        return f"wait {iso_duration(step.wait_seconds)}"
    if step.kind == "split":
        return "best channel" if step.by == "best_channel" else "by outcome"
    if step.kind == "end":
        return "end"
    window = f" · {iso_duration(step.window_seconds)}" if step.passive else ""
    return f"{step.kind} · {step.offer}{window}"


def _shape(p: _Placed) -> str:
    kind, fill = p.step.kind, FILL.get(p.step.kind, "#ffffff")
    x, y = p.x, p.y
    if kind == "split":
        cx, cy = x + BOX_W / 2, y + BOX_H / 2
        points = f"{cx},{y - 6} {x + BOX_W + 6},{cy} {cx},{y + BOX_H + 6} {x - 6},{cy}"
        return f'<polygon points="{points}" fill="{fill}" stroke="#475569"/>'
    if kind == "end":
        return (f'<ellipse cx="{x + BOX_W / 2}" cy="{y + BOX_H / 2}" rx="{BOX_W / 3}" ry="{BOX_H / 2}" '
                f'fill="{fill}" stroke="#475569"/>')
    radius = 26 if kind == "wait" else 6
    return (f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="{radius}" fill="{fill}" '
            f'stroke="#475569"/>')


def _text(x: float, y: float, text: str, size: int = 13, weight: str = "normal") -> str:
    short = text if len(text) <= 28 else text[:27] + "…"
    return (f'<text x="{x}" y="{y}" font-size="{size}" font-weight="{weight}" text-anchor="middle">'
            f'{escape(short)}</text>')


def as_svg(plan: Plan) -> str:
    rows = _rows(plan)
    widest = max(len(row) for row in rows)
    width = MARGIN * 2 + widest * BOX_W + (widest - 1) * GAP_X
    height = MARGIN * 2 + len(rows) * BOX_H + (len(rows) - 1) * GAP_Y
    placed: dict[str, _Placed] = {}
    for level, row in enumerate(rows):
        row_width = len(row) * BOX_W + (len(row) - 1) * GAP_X
        left = (width - row_width) / 2
        for i, step in enumerate(row):
            placed[step.id] = _Placed(step, left + i * (BOX_W + GAP_X), MARGIN + level * (BOX_H + GAP_Y))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="flowchart" role="img" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" font-family="system-ui, sans-serif" '
             f'aria-labelledby="flowchart-title">',
             f'<title id="flowchart-title">Flowchart of {escape(plan.title)}: {len(plan.steps)} steps</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#475569"/></marker></defs>']
    for source in placed.values():
        for target_id, label in edges(source.step):
            target = placed[target_id]
            x1, y1 = source.x + BOX_W / 2, source.y + BOX_H + (6 if source.step.kind == "split" else 0)
            x2, y2 = target.x + BOX_W / 2, target.y - (6 if target.step.kind == "split" else 0)
            parts.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#475569" marker-end="url(#arrow)"/>')
            if label:
                parts.append(_text((x1 + x2) / 2 + 4, (y1 + y2) / 2 + 4, label, size=11))
    for p in placed.values():
        cx = p.x + BOX_W / 2
        parts.append(f'<g class="node" data-step="{escape(p.step.id)}" data-kind="{p.step.kind}">')
        parts.append(_shape(p))
        parts.append(_text(cx, p.y + 24, p.step.label or p.step.id, weight="bold"))
        parts.append(_text(cx, p.y + 42, _detail(p.step), size=11))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
