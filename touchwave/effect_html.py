"""The effect report as one self-contained HTML page a marketing manager opens in a
browser: no script, no external file; the charts are inline SVG."""

from __future__ import annotations

from html import escape

from touchwave.effect import EffectReport, GroupOutcome, money, pct

COLOURS = {"sms": "#2f6fb0", "outbound": "#c0392b", "app": "#8e44ad", "hall": "#27ae60",
           "hotline": "#d68910", "online_hall": "#16a085"}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f23;max-width:72rem}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem}
.sub{color:#57606a} .cards{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.8rem 1rem;min-width:12rem}
.card b{display:block;font-size:1.4rem} table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.3rem .6rem;border-bottom:1px solid #d0d7de;text-align:right}
th:nth-child(-n+3),td:nth-child(-n+3){text-align:left} svg text{font-size:12px;fill:#1b1f23}
"""


def render(r: EffectReport) -> str:
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Effect report — {escape(r.campaign)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(r.campaign)}</h1>",
        f"<p class='sub'>campaign {r.campaign_id} · template {escape(r.template)} · {escape(r.status)} · "
        f"products {escape(', '.join(r.products) or '–')}</p>",
        _cards(r),
        "<h2>Funnel per wave</h2>", _funnel_chart(r), _funnel_table(r),
        "<h2>Conversion: treated against control</h2>", _groups_chart(r),
        "<h2>Acceptances per day and channel</h2>", _days_chart(r),
        "</body></html>",
    ]
    return "\n".join(parts)


def _cards(r: EffectReport) -> str:
    uplift = ("–" if r.uplift is None else
              f"{r.uplift.difference * 100:+.2f} pts<small> [{r.uplift.low * 100:+.2f}, {r.uplift.high * 100:+.2f}]</small>")
    cards = [("treated conversion", pct(r.treated.rate)),
             ("control conversion", pct(r.control.rate) if r.control else "no control group"),
             ("uplift, 95% interval", uplift),
             ("cost per acceptance", money(r.cost_per_acceptance))]
    return "<div class='cards'>" + "".join(f"<div class='card'>{escape(k)}<b>{v}</b></div>" for k, v in cards) + "</div>"


def _funnel_chart(r: EffectReport) -> str:
    steps = [s for s in r.steps if s.wave]
    if not steps:
        return "<p>No step has run yet.</p>"
    top = max(max(s.targeted for s in steps), 1)
    width, row = 640, 70
    bars = []
    for i, s in enumerate(steps):
        y = i * row + 10
        colour = COLOURS.get(s.channel, "#57606a")
        bars.append(f"<text x='0' y='{y + 12}'>wave {s.wave}: {escape(s.step_id)} ({escape(s.channel)})</text>")
        for j, (label, value, opacity) in enumerate((("targeted", s.targeted, .25), ("contacted", s.contacted, .55),
                                                     ("accepted", s.accepted, 1))):
            w = max(1, round(width * value / top)) if value else 0
            bars.append(f"<rect x='200' y='{y + j * 18}' width='{w}' height='15' fill='{colour}' "
                        f"fill-opacity='{opacity}'><title>{label} {value:,}</title></rect>"
                        f"<text x='{205 + w}' y='{y + j * 18 + 12}'>{label} {value:,}</text>")
    return (f"<svg role='img' aria-label='funnel per wave' width='{width + 320}' height='{len(steps) * row + 10}'>"
            + "".join(bars) + "</svg>")


def _funnel_table(r: EffectReport) -> str:
    head = ("wave", "step", "channel", "targeted", "contacted", "delivered", "failed", "withdrawn", "suppressed",
            "responded", "accepted", "declined", "considering", "conversion", "cost")
    rows = []
    for s in r.steps:
        suppressed = ", ".join(f"{k} {v:,}" for k, v in sorted(s.suppressed.items())) or "0"
        cells = (s.wave or "", s.step_id, s.channel, f"{s.targeted:,}", f"{s.contacted:,}", f"{s.delivered:,}",
                 f"{s.failed:,}", f"{s.withdrawn:,}", suppressed, f"{s.responded:,}", f"{s.accepted:,}",
                 f"{s.declined:,}", f"{s.considering:,}", pct(s.conversion), money(s.cost))
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _groups_chart(r: EffectReport) -> str:
    groups: list[tuple[str, GroupOutcome]] = [("treated", r.treated)] + ([("control", r.control)] if r.control else [])
    top = max([g.high or 0 for _, g in groups] + [0.01])
    width, parts = 480, []
    for i, (label, g) in enumerate(groups):
        y = i * 40 + 10
        if g.rate is None:
            continue
        x = lambda v: 120 + round(width * v / top)  # noqa: E731
        parts.append(f"<text x='0' y='{y + 14}'>{label} ({g.members:,})</text>"
                     f"<rect x='120' y='{y}' width='{x(g.rate) - 120}' height='20' fill='#2f6fb0' "
                     f"fill-opacity='{1 if label == 'treated' else .45}'/>"
                     f"<line x1='{x(g.low)}' x2='{x(g.high)}' y1='{y + 10}' y2='{y + 10}' stroke='#1b1f23'/>"
                     f"<line x1='{x(g.low)}' x2='{x(g.low)}' y1='{y + 4}' y2='{y + 16}' stroke='#1b1f23'/>"
                     f"<line x1='{x(g.high)}' x2='{x(g.high)}' y1='{y + 4}' y2='{y + 16}' stroke='#1b1f23'/>"
                     f"<text x='{x(g.high) + 6}' y='{y + 14}'>{pct(g.rate)}</text>")
    note = "" if r.control else "<p>No control group was held out, so the uplift cannot be measured.</p>"
    return (f"<svg role='img' aria-label='conversion by group with 95% intervals' width='{width + 220}' "
            f"height='{len(groups) * 40 + 10}'>" + "".join(parts) + "</svg>" + note)


def _days_chart(r: EffectReport) -> str:
    if not r.by_day:
        return "<p>No acceptance yet.</p>"
    days = sorted({d.day for d in r.by_day})
    channels = sorted({d.channel for d in r.by_day})
    counts = {(d.day, d.channel): d.accepted for d in r.by_day}
    top = max(counts.values())
    width, height, left = 640, 220, 40
    step = width / max(len(days) - 1, 1)
    parts = [f"<line x1='{left}' x2='{left + width}' y1='{height}' y2='{height}' stroke='#d0d7de'/>",
             f"<text x='0' y='12'>{top:,}</text><text x='0' y='{height}'>0</text>"]
    for k, channel in enumerate(channels):
        colour = COLOURS.get(channel, "#57606a")
        points = " ".join(f"{left + i * step:.1f},{height - (height - 20) * counts.get((day, channel), 0) / top:.1f}"
                          for i, day in enumerate(days))
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{points}'>"
                     f"<title>{escape(channel)}</title></polyline>")
        parts.append(f"<rect x='{left + width + 10}' y='{k * 18 + 4}' width='10' height='10' fill='{colour}'/>"
                     f"<text x='{left + width + 26}' y='{k * 18 + 13}'>{escape(channel)}</text>")
    parts.append(f"<text x='{left}' y='{height + 16}'>{days[0]:%Y-%m-%d}</text>")
    if len(days) > 1:
        parts.append(f"<text x='{left + width - 70}' y='{height + 16}'>{days[-1]:%Y-%m-%d}</text>")
    return (f"<svg role='img' aria-label='acceptances per day and channel' width='{left + width + 120}' "
            f"height='{height + 24}'>" + "".join(parts) + "</svg>")
