"""Flowchart template → validated, immutable `Plan`.

Checks the schema, then the meaning (graph shape, waits, windows, references to the
offer catalog) and reports every problem at once, each with its JSON path. The same
template always gives the same plan and the same hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import isodate

from touchwave.templates.plan import (
    ACTIVE_KINDS,
    CHANNEL_KINDS,
    PASSIVE_KINDS,
    SPLIT_OUTCOMES,
    Audience,
    Branch,
    Plan,
    Step,
    Trigger,
)
from touchwave.errors import UserError
from touchwave.events.catalog import EventKind
from touchwave.events.conditions import compile_conditions
from touchwave.templates.problems import Problem, TemplateInvalid, pointer
from touchwave.templates.render import iso_duration
from touchwave.templates.schema import schema_problems

COMPLETING_OUTCOMES = ("accepted", "declined")


@dataclass(frozen=True)
class ScriptRef:
    code: str
    offer: str
    channel: str


@dataclass(frozen=True)
class Catalog:
    """The offers and scripts a template may name (read from the store)."""

    offers: frozenset[str] = frozenset()
    scripts: Mapping[str, ScriptRef] = field(default_factory=dict)
    #: event types by name (trigger templates name one, and conditions on its payload)
    events: Mapping[str, EventKind] = field(default_factory=dict)


def _trigger(trigger: dict[str, Any] | None) -> Trigger | None:
    if trigger is None:
        return None
    reentry = trigger.get("reentry", "never")
    return Trigger(
        event=trigger["event"],
        when_json=canonical_json(trigger["when"]) if "when" in trigger else None,
        reentry_seconds=None if reentry == "never" else seconds(reentry),
        expires_seconds=seconds(trigger["expires_after"]) if "expires_after" in trigger else None,
    )


def canonical_json(document: Any) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def template_hash(document: dict[str, Any]) -> str:
    """The content hash: layout, key order and the editor's `$schema` hint do not count."""
    content = {k: v for k, v in document.items() if k != "$schema"}
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def read_template(path: str | Path) -> dict[str, Any]:
    """Load a template file; a missing, empty or malformed file is a `TemplateInvalid`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateInvalid([Problem("/", "no such file")], source) from None
    except IsADirectoryError:
        raise TemplateInvalid([Problem("/", "is a folder, not a template file")], source) from None
    except UnicodeDecodeError as exc:
        raise TemplateInvalid([Problem("/", f"is not UTF-8 text ({exc.reason} at byte {exc.start})")], source) from None
    return parse_template(text, source)


def parse_template(text: str, source: str | None = None) -> Any:
    """A template's JSON text as a document; empty or malformed text is a `TemplateInvalid`."""
    if not text.strip():
        raise TemplateInvalid([Problem("/", "the file is empty")], source)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TemplateInvalid(
            [Problem("/", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")], source
        ) from None
    return document


def seconds(duration: str) -> int | None:
    """Seconds in an ISO-8601 duration the schema accepted; None if it is not one."""
    try:
        value = isodate.parse_duration(duration)
    except (isodate.ISO8601Error, ValueError, TypeError):
        return None
    return int(value.total_seconds()) if isinstance(value, timedelta) else None


def compile_template(document: Any, catalog: Catalog | None = None, source: str | None = None) -> Plan:
    """Compile `document`, or raise `TemplateInvalid` listing every problem in it.

    Offer and script references are checked only when a `catalog` is given.
    """
    problems = schema_problems(document)
    if isinstance(document, dict):
        graph = _Graph(document)
        problems += graph.check()
        if catalog is not None:
            problems += _reference_problems(graph, catalog)
            problems += _trigger_problems(document, catalog)
    if problems:
        raise TemplateInvalid(sorted(set(problems), key=_path_order), source)
    return graph.plan()


def _trigger_problems(document: dict[str, Any], catalog: Catalog) -> list[Problem]:
    """The trigger's event type is in the catalog and its conditions fit that type's payload."""
    trigger = document.get("trigger")
    if not isinstance(trigger, dict) or not isinstance(trigger.get("event"), str):
        return []
    kind = catalog.events.get(trigger["event"])
    if kind is None:
        return [Problem("/trigger/event", f'no event type "{trigger["event"]}" in the catalog '
                                          "(touchwave events catalog FILE)")]
    if "when" in trigger:
        try:
            compile_conditions(trigger["when"], kind)
        except UserError as exc:
            where, _, what = str(exc).partition(": ")
            return [Problem(where, what)]
    return []


def _path_order(problem: Problem) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in problem.path.split("/")), problem.message


class _Graph:
    """The template's nodes and edges, read defensively: the schema may have failed."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        raw_nodes = document.get("nodes") if isinstance(document.get("nodes"), list) else []
        raw_edges = document.get("edges") if isinstance(document.get("edges"), list) else []
        self.nodes: dict[str, tuple[int, dict[str, Any]]] = {}
        self.problems: list[Problem] = []
        for i, node in enumerate(raw_nodes):
            if not (isinstance(node, dict) and isinstance(node.get("id"), str)):
                continue
            if node["id"] in self.nodes:
                first = self.nodes[node["id"]][0]
                self.problems.append(
                    Problem(pointer("nodes", i, "id"), f'node id "{node["id"]}" is already used by /nodes/{first}')
                )
                continue
            self.nodes[node["id"]] = (i, node)
        self.edges: list[tuple[int, dict[str, Any]]] = [
            (k, e) for k, e in enumerate(raw_edges)
            if isinstance(e, dict) and isinstance(e.get("from"), str) and isinstance(e.get("to"), str)
        ]
        self.out: dict[str, list[tuple[int, dict[str, Any]]]] = {n: [] for n in self.nodes}
        self.into: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.entry: str | None = None

    def kind(self, node_id: str) -> str | None:
        kind = self.nodes[node_id][1].get("type")
        return kind if isinstance(kind, str) else None

    def at(self, node_id: str, *rest: str | int) -> str:
        return pointer("nodes", self.nodes[node_id][0], *rest)

    # -- checks ---------------------------------------------------------------

    def check(self) -> list[Problem]:
        edges_sound = self._check_edges()
        self._check_out_degree(report_dead_ends=edges_sound)
        acyclic = self._check_cycles()
        # A misspelt edge leaves dead ends, stray entries and unreachable nodes behind it:
        # those follow from the edge's own problem, so they are checked once it is fixed.
        if edges_sound:
            self._check_entry()
            if self.entry is not None:
                self._check_reachable()
        self._check_durations()
        self._check_timezone()
        if acyclic:
            self._check_timeline()
            self._check_completion_wins()
        if self.nodes and not any(self.kind(n) in CHANNEL_KINDS for n in self.nodes):
            self.problems.append(Problem("/nodes", "the flowchart has no channel step, so it would contact no one"))
        return self.problems

    def _check_timezone(self) -> None:
        name = self.document.get("timezone")
        if name is None:
            return
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.problems.append(Problem("/timezone", f'"{name}" is not a time zone (IANA names such as Asia/Shanghai)'))

    def _check_edges(self) -> bool:
        """Index the edges; False when some edge names a node that does not exist."""
        sound = True
        seen: dict[tuple[str, str], int] = {}
        for k, edge in self.edges:
            ok = True
            for end in ("from", "to"):
                if edge[end] not in self.nodes:
                    self.problems.append(Problem(pointer("edges", k, end), f'no node has the id "{edge[end]}"'))
                    ok = False
            if not ok:
                sound = False
                continue
            pair = (edge["from"], edge["to"])
            if pair in seen:
                self.problems.append(Problem(pointer("edges", k), f"repeats the edge /edges/{seen[pair]}"))
                continue
            seen[pair] = k
            if edge["from"] == edge["to"]:
                self.problems.append(Problem(pointer("edges", k), f'node "{edge["from"]}" cannot lead to itself'))
                continue
            self.out[edge["from"]].append((k, edge))
            self.into[edge["to"]].append(edge["from"])
        return sound

    def _check_out_degree(self, report_dead_ends: bool) -> None:
        for node_id, edges in self.out.items():
            kind = self.kind(node_id)
            if kind == "split":
                self._check_split(node_id, edges)
                continue
            for k, edge in edges:
                if "when" in edge:
                    self.problems.append(
                        Problem(pointer("edges", k, "when"), "only edges leaving a split carry \"when\"")
                    )
            if kind == "end":
                for k, _ in edges:
                    self.problems.append(Problem(pointer("edges", k), f'end node "{node_id}" cannot lead anywhere'))
            elif not edges:
                if report_dead_ends:
                    self.problems.append(
                        Problem(self.at(node_id), f'node "{node_id}" leads nowhere: connect it to the next step or to an end node')
                    )
            else:
                for k, edge in edges[1:]:
                    self.problems.append(
                        Problem(
                            pointer("edges", k),
                            f'node "{node_id}" already leads to "{edges[0][1]["to"]}"; only a split may branch',
                        )
                    )

    def _check_split(self, node_id: str, edges: list[tuple[int, dict[str, Any]]]) -> None:
        by_channel = self.nodes[node_id][1].get("by") == "best_channel"
        choices = tuple(sorted(CHANNEL_KINDS)) if by_channel else SPLIT_OUTCOMES
        covered: dict[str, str] = {}
        for k, edge in edges:
            when = edge.get("when")
            if not isinstance(when, list):
                if when is None:
                    self.problems.append(
                        Problem(pointer("edges", k), f'an edge leaving split "{node_id}" needs "when": '
                                f'the {"channels" if by_channel else "outcomes"} that take it')
                    )
                continue
            for choice in when:
                if choice not in choices:
                    if choice in SPLIT_OUTCOMES or choice in CHANNEL_KINDS:
                        self.problems.append(Problem(pointer("edges", k, "when"), (
                            f'split "{node_id}" routes by best channel: "{choice}" is not a channel' if by_channel
                            else f'split "{node_id}" routes by outcome: "{choice}" is a channel (say "by": '
                                 '"best_channel" on the split to route by channel)')))
                    continue
                if choice in covered:
                    self.problems.append(
                        Problem(pointer("edges", k, "when"), f'{"channel" if by_channel else "outcome"} "{choice}" '
                                f'already leads to "{covered[choice]}"')
                    )
                else:
                    covered[choice] = edge["to"]
                if by_channel and edge["to"] in self.nodes and self.kind(edge["to"]) != choice:
                    self.problems.append(Problem(pointer("edges", k, "to"), (
                        f'members routed to {choice} must go to a {choice} step, not to "{edge["to"]}" '
                        f'({self.kind(edge["to"])})')))
        if by_channel:
            if self.document.get("trigger") is not None:
                self.problems.append(Problem(self.at(node_id, "by"),
                                             "event-triggered campaigns cannot route by best channel yet"))
            return
        missing = [o for o in SPLIT_OUTCOMES if o not in covered]
        if missing:
            self.problems.append(
                Problem(self.at(node_id), f'split "{node_id}" does not say where members go whose outcome is: {", ".join(missing)}')
            )

    def _check_entry(self) -> None:
        entries = [n for n in self.nodes if not self.into[n]]
        if not entries:
            if self.nodes:
                self.problems.append(
                    Problem("/edges", "every node has an incoming edge, so the flowchart has no entry node")
                )
            return
        self.entry = entries[0]
        for extra in entries[1:]:
            self.problems.append(
                Problem(
                    self.at(extra),
                    f'node "{extra}" has no incoming edge, but "{self.entry}" is already the entry: '
                    "a flowchart has exactly one",
                )
            )

    def _check_cycles(self) -> bool:
        """Report each edge that closes a cycle; True when there is none."""
        white, grey, black = 0, 1, 2
        colour = dict.fromkeys(self.nodes, white)
        acyclic = True
        for root in self.nodes:
            if colour[root] != white:
                continue
            stack = [(root, iter(self.out[root]))]
            path = [root]
            colour[root] = grey
            while stack:
                node, children = stack[-1]
                child = next(children, None)
                if child is None:
                    colour[node] = black
                    stack.pop()
                    path.pop()
                    continue
                k, edge = child
                target = edge["to"]
                if colour[target] == grey:
                    loop = " → ".join(path[path.index(target):] + [target])
                    self.problems.append(
                        Problem(pointer("edges", k), f"closes a cycle ({loop}); a flowchart only runs forward")
                    )
                    acyclic = False
                elif colour[target] == white:
                    colour[target] = grey
                    stack.append((target, iter(self.out[target])))
                    path.append(target)
        return acyclic

    def _reachable_from(self, start: str) -> set[str]:
        seen, todo = {start}, [start]
        while todo:
            for _, edge in self.out[todo.pop()]:
                if edge["to"] not in seen:
                    seen.add(edge["to"])
                    todo.append(edge["to"])
        return seen

    def _check_reachable(self) -> None:
        assert self.entry is not None
        reachable = self._reachable_from(self.entry)
        for node_id in self.nodes:
            if node_id not in reachable and self.into[node_id]:
                self.problems.append(
                    Problem(self.at(node_id), f'node "{node_id}" cannot be reached from the entry "{self.entry}"')
                )

    def _check_durations(self) -> None:
        for node_id in self.nodes:
            for key in ("wait", "window"):
                value = self.nodes[node_id][1].get(key)
                if isinstance(value, str) and seconds(value) == 0:
                    what = "a wait" if key == "wait" else "an offer window"
                    self.problems.append(Problem(self.at(node_id, key), f"{what} must be longer than zero"))

    def _duration_of(self, node_id: str, key: str) -> int:
        value = self.nodes[node_id][1].get(key)
        return (seconds(value) or 0) if isinstance(value, str) else 0

    def _check_timeline(self) -> None:
        """Every wait and every passive window fits inside the campaign's duration."""
        raw = self.document.get("duration")
        campaign = seconds(raw) if isinstance(raw, str) else None
        if not campaign:
            return
        start = dict.fromkeys(self.nodes, 0)  # latest time a member can reach each node
        for node_id in self._topological():
            end = start[node_id] + self._duration_of(node_id, "wait")
            for _, edge in self.out[node_id]:
                start[edge["to"]] = max(start[edge["to"]], end)
            if start[node_id] <= campaign < end:
                self.problems.append(
                    Problem(
                        self.at(node_id, "wait"),
                        f"after this wait members can be {iso_duration(end)} into the campaign, "
                        f"past its duration {raw}",
                    )
                )
            if self.kind(node_id) in PASSIVE_KINDS:
                closes = start[node_id] + self._duration_of(node_id, "window")
                if start[node_id] <= campaign < closes:
                    self.problems.append(
                        Problem(
                            self.at(node_id, "window"),
                            f"this {self.kind(node_id)} window can close {iso_duration(closes)} into the campaign, "
                            f"past its duration {raw}",
                        )
                    )

    def _check_completion_wins(self) -> None:
        """Members who accepted or declined are done: no branch may contact them again."""
        for node_id, edges in self.out.items():
            if self.kind(node_id) != "split":
                continue
            for k, edge in edges:
                when = edge.get("when") if isinstance(edge.get("when"), list) else []
                done = [o for o in when if o in COMPLETING_OUTCOMES]
                contacts = [n for n in self._reachable_from(edge["to"]) if self.kind(n) in CHANNEL_KINDS]
                if done and contacts:
                    self.problems.append(
                        Problem(
                            pointer("edges", k, "when"),
                            f"members who {' or '.join(done)} have finished the campaign; this branch would "
                            f'contact them again at "{sorted(contacts, key=lambda n: self.nodes[n][0])[0]}"',
                        )
                    )

    def _topological(self) -> list[str]:
        """Kahn's order, ties broken by declaration order, so the plan is stable."""
        indegree = {n: len(self.into[n]) for n in self.nodes}
        ready = sorted((self.nodes[n][0], n) for n, d in indegree.items() if d == 0)
        order: list[str] = []
        while ready:
            _, node_id = ready.pop(0)
            order.append(node_id)
            for _, edge in self.out[node_id]:
                indegree[edge["to"]] -= 1
                if indegree[edge["to"]] == 0:
                    ready.append((self.nodes[edge["to"]][0], edge["to"]))
                    ready.sort()
        return order

    # -- the plan ---------------------------------------------------------------

    def plan(self) -> Plan:
        doc = self.document
        audience = doc["audience"]
        steps = tuple(self._step(n) for n in self._topological())
        return Plan(
            template=doc["name"],
            template_hash=template_hash(doc),
            title=doc.get("title", doc["name"]),
            business_line=doc["business_line"],
            priority=doc["priority"],
            duration_seconds=seconds(doc["duration"]) or 0,
            audience=Audience(
                segment=audience.get("segment"),
                rule_json=canonical_json(audience["rule"]) if "rule" in audience else None,
                on_leave=audience.get("on_leave", "stop"),
            ),
            control_share=float(doc.get("control_share", 0)),
            timezone=doc.get("timezone"),
            trigger=_trigger(doc.get("trigger")),
            entry=self.entry or "",
            steps=steps,
        )

    def _step(self, node_id: str) -> Step:
        node = self.nodes[node_id][1]
        kind = node["type"]
        out = self.out[node_id]
        order = (*SPLIT_OUTCOMES, *sorted(CHANNEL_KINDS))
        # a best-channel split keeps its edges' order: it is the template's order of
        # preference where the model cannot tell channels apart
        branches = tuple(Branch(outcome=o, next=edge["to"]) for _, edge in out for o in edge.get("when", ()))
        if node.get("by", "outcome") == "outcome":
            branches = tuple(sorted(branches, key=lambda b: order.index(b.outcome)))
        return Step(
            id=node_id,
            kind=kind,
            label=node.get("label", ""),
            offer=node.get("offer"),
            script=node.get("script"),
            window_seconds=seconds(node["window"]) if "window" in node else None,
            when_limited=node.get("when_limited", "next_step"),
            wait_seconds=seconds(node["wait"]) if "wait" in node else None,
            next=out[0][1]["to"] if out and kind != "split" else None,
            branches=branches if kind == "split" else (),
            by=node.get("by", "outcome") if kind == "split" else "outcome",
            objective=node.get("objective", "conversion"),
        )


def _reference_problems(graph: _Graph, catalog: Catalog) -> list[Problem]:
    problems: list[Problem] = []
    for node_id, (_, node) in graph.nodes.items():
        kind = graph.kind(node_id)
        if kind not in CHANNEL_KINDS:
            continue
        offer, script = node.get("offer"), node.get("script")
        if isinstance(offer, str):
            if offer not in catalog.offers:
                problems.append(Problem(graph.at(node_id, "offer"), f'no offer "{offer}" in the catalog'))
        if isinstance(script, str):
            found = catalog.scripts.get(script)
            if found is None:
                problems.append(Problem(graph.at(node_id, "script"), f'no script "{script}" in the catalog'))
                continue
            if isinstance(offer, str) and offer in catalog.offers and found.offer != offer:
                problems.append(
                    Problem(graph.at(node_id, "script"), f'script "{script}" is written for offer "{found.offer}", not "{offer}"')
                )
            if found.channel != kind:
                problems.append(
                    Problem(graph.at(node_id, "script"), f'script "{script}" is written for the {found.channel} channel, not {kind}')
                )
    return problems


__all__ = [
    "ACTIVE_KINDS",
    "Catalog",
    "ScriptRef",
    "canonical_json",
    "compile_template",
    "read_template",
    "template_hash",
]
