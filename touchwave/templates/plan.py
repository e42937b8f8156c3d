"""The compiled plan: what a campaign workflow runs.

A plan is immutable and plain (strings, ints, tuples), so it travels as a Temporal
workflow argument and is stored beside its template version. Steps come in a stable
topological order with their edges resolved.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StepKind = Literal["sms", "outbound", "app", "hall", "hotline", "online_hall", "wait", "split", "end"]
SplitOutcome = Literal["accepted", "declined", "considering", "no_response"]

ACTIVE_KINDS = frozenset({"sms", "outbound", "app"})
PASSIVE_KINDS = frozenset({"hall", "hotline", "online_hall"})
CHANNEL_KINDS = ACTIVE_KINDS | PASSIVE_KINDS
SPLIT_OUTCOMES: tuple[SplitOutcome, ...] = ("accepted", "declined", "considering", "no_response")


@dataclass(frozen=True)
class Branch:
    """Members whose outcome so far is `outcome` continue at `next`; in a split by best
    channel, `outcome` is the channel, and members routed to it continue at `next`."""

    outcome: str
    next: str


@dataclass(frozen=True)
class Step:
    id: str
    kind: StepKind
    label: str = ""
    offer: str | None = None
    script: str | None = None
    #: passive channels: how long the offer is shown
    window_seconds: int | None = None
    #: wait nodes: the durable timer
    wait_seconds: int | None = None
    #: active channels: a member capped or lost to arbitration goes on ("next_step") or "leave"s
    when_limited: str = "next_step"
    #: every kind but split and end: the node after this one
    next: str | None = None
    #: split nodes: one branch per outcome (or per channel)
    branches: tuple[Branch, ...] = ()
    #: split nodes: "outcome", or "best_channel" (the CPC model routes each member)
    by: str = "outcome"
    #: best-channel splits: "conversion" (expected), or "value" (expected × price − unit cost)
    objective: str = "conversion"

    @property
    def channel(self) -> str | None:
        return self.kind if self.kind in CHANNEL_KINDS else None

    @property
    def passive(self) -> bool:
        return self.kind in PASSIVE_KINDS


@dataclass(frozen=True)
class Audience:
    """A named segment, or an inline rule kept as canonical JSON (so the plan stays hashable)."""

    segment: str | None = None
    rule_json: str | None = None
    #: members who stop matching while the campaign runs: "stop" (no more contact) or "finish"
    on_leave: str = "stop"

    @property
    def rule(self) -> dict[str, Any] | None:
        return json.loads(self.rule_json) if self.rule_json else None


@dataclass(frozen=True)
class Trigger:
    """An event-triggered campaign's entry: a subscriber enters when one of their events
    of type `event` matches, and walks the flowchart from its first node on their own."""

    event: str
    #: conditions on the payload, canonical JSON (None: every event of the type)
    when_json: str | None = None
    #: a subscriber enters again only this long after their last entry (None: once ever)
    reentry_seconds: int | None = None
    #: an event older than this when it arrives is not acted on (None: any age)
    expires_seconds: int | None = None

    @property
    def when(self) -> dict[str, Any] | None:
        return json.loads(self.when_json) if self.when_json else None


@dataclass(frozen=True)
class Plan:
    template: str
    #: sha256 of the template's canonical JSON: the version's identity
    template_hash: str
    title: str
    business_line: str
    priority: int
    duration_seconds: int
    audience: Audience
    control_share: float
    entry: str
    steps: tuple[Step, ...] = field(default=())
    #: the clock quiet hours follow; None: the operator's time zone
    timezone: str | None = None
    #: event-triggered campaigns: what enters a subscriber (None: a bulk campaign)
    trigger: Trigger | None = None

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def channel_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.channel)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        steps = tuple(
            Step(**{**s, "branches": tuple(Branch(**b) for b in s.get("branches", ()))})
            for s in data["steps"]
        )
        trigger = Trigger(**data["trigger"]) if data.get("trigger") else None
        return cls(**{**data, "audience": Audience(**data["audience"]), "steps": steps, "trigger": trigger})
