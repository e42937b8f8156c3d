"""Where each member of a trigger campaign is on their own timeline, changed set-wise.

A bulk campaign's members walk the flowchart together (a cohort per shard workflow).
A trigger campaign's members each enter at their own moment, so each carries the node
they are due at and when (`at_node`, `due_at`), and one pass over the campaign moves
everyone who is due: one statement per node, never a loop per member. Waits are not
timers per member: moving past a step sets `due_at` to now plus the waits that follow.

While a node's due members are being worked on they are "in hand" (cohort `IN_HAND`),
so the channel steps' claims, batches and contact policy (written for a bulk shard)
work on exactly them. A pass first reads which nodes anyone is due at and writes only
for those: with SQLite's single writer, a pass with nothing to do must not queue for it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, DateTime, Engine, text

from touchwave.contacts import LAST_ID, Shard
from touchwave.store.models import as_utc, utc_binds
from touchwave.templates.plan import Plan

#: the cohort of the members a pass is working on; everyone else is in cohort 0
IN_HAND = 1

_FINISHED = ("accepted", "declined", "suppressed", "left")


def in_hand(campaign_id: int) -> Shard:
    return Shard(campaign_id, IN_HAND, 0, LAST_ID)


def landing(plan: Plan, node_id: str | None, now: datetime, time_scale: float = 1.0) -> tuple[str | None, datetime | None]:
    """Where a member going on to `node_id` is next due, and when: waits are passed
    through (their time added), an end (or nothing) ends the journey: (None, None)."""
    delay = 0.0
    while node_id is not None:
        step = plan.step(node_id)
        if step.kind == "wait":
            delay += (step.wait_seconds or 0) * time_scale
            node_id = step.next
        elif step.kind == "end":
            return None, None
        else:
            return node_id, now + timedelta(seconds=delay)
    return None, None


def due_nodes(engine: Engine, campaign_id: int, now: datetime) -> set[str] | None:
    """The nodes someone is due at (a read: a pass with nothing to do writes nothing), or
    None when the campaign is not running (paused or cancelled: nobody is worked on);
    members a crashed pass left in hand are put back first."""
    with engine.connect() as conn:
        if conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id}).scalar() != "running":
            return None
        nodes = set(conn.execute(text(
            "SELECT DISTINCT at_node FROM campaign_members WHERE campaign_id = :c AND due_at IS NOT NULL "
            "AND due_at <= :now").bindparams(*utc_binds("now")), {"c": campaign_id, "now": now}).scalars())
        left = conn.execute(text("SELECT 1 FROM campaign_members WHERE campaign_id = :c AND cohort = :hand LIMIT 1"),
                            {"c": campaign_id, "hand": IN_HAND}).first()
    if left is not None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE campaign_members SET cohort = 0 WHERE campaign_id = :c AND cohort = :hand"),
                         {"c": campaign_id, "hand": IN_HAND})
    return nodes


_STATES = ", ".join(f"'{s}'" for s in _FINISHED)
#: one statement: the due members at a node who can still be contacted are put in hand,
#: those whose journey is over (they answered, or left) are no longer due
_TAKE_DUE = text(
    "UPDATE campaign_members SET "
    f"cohort = CASE WHEN state IN ({_STATES}) THEN 0 ELSE :hand END, "
    f"at_node = CASE WHEN state IN ({_STATES}) THEN NULL ELSE at_node END, "
    f"due_at = CASE WHEN state IN ({_STATES}) THEN NULL ELSE due_at END "
    "WHERE campaign_id = :c AND due_at IS NOT NULL AND due_at <= :now AND at_node = :node"
).bindparams(*utc_binds("now"))


def take_due(engine: Engine, campaign_id: int, node_id: str, now: datetime) -> None:
    """Put the members due at `node_id` by `now` in hand (and end the journeys that are over)."""
    with engine.begin() as conn:
        conn.execute(_TAKE_DUE, {"c": campaign_id, "hand": IN_HAND, "node": node_id, "now": now})


def move_on(engine: Engine, plan: Plan, campaign_id: int, node_id: str, now: datetime, time_scale: float = 1.0,
            resume_at: datetime | None = None) -> str | None:
    """The members in hand at `node_id` go on to the node after it. With `resume_at` (the
    step stopped for quiet hours or capacity), those whose contact still waits stay at
    the node, due again then. Returns the node they went to if they are due there now."""
    step = plan.step(node_id)
    # a member due at a wait (a flowchart that starts with one) waits it out first
    target, due = landing(plan, node_id if step.kind in ("wait", "end") else step.next, now, time_scale)
    with engine.begin() as conn:
        params = {"c": campaign_id, "hand": IN_HAND, "node": node_id}
        if resume_at is not None:
            conn.execute(text(
                "UPDATE campaign_members SET cohort = 0, due_at = :resume WHERE campaign_id = :c AND cohort = :hand "
                "AND EXISTS (SELECT 1 FROM contact_ledger l WHERE l.campaign_id = campaign_members.campaign_id "
                "AND l.step_id = :node AND l.subscriber_id = campaign_members.subscriber_id "
                "AND l.attempt = campaign_members.entry AND l.status = 'claimed')").bindparams(*utc_binds("resume")),
                {**params, "resume": resume_at})
        _move(conn, campaign_id, target, due, "")
    return target if due is not None and due <= now else None


def route(engine: Engine, plan: Plan, campaign_id: int, node_id: str, now: datetime,
          time_scale: float = 1.0) -> set[str]:
    """A split: each member in hand goes on along the branch their outcome so far selects.
    Returns the nodes members went to and are due at now."""
    step = plan.step(node_id)
    reached = set()
    outcomes = {"accepted": "state = 'accepted'", "declined": "state = 'declined'",
                "considering": "state = 'considering'",
                "no_response": "state NOT IN ('accepted', 'declined', 'considering')"}
    with engine.begin() as conn:
        for branch in step.branches:
            target, due = landing(plan, branch.next, now, time_scale)
            _move(conn, campaign_id, target, due, f" AND {outcomes[branch.outcome]}")
            if target is not None and due is not None and due <= now:
                reached.add(target)
        _move(conn, campaign_id, None, None, "")  # an outcome without a branch ends the journey
    return reached


def _move(conn: Connection, campaign_id: int, target: str | None, due: datetime | None, condition: str) -> None:
    conn.execute(text(
        "UPDATE campaign_members SET cohort = 0, at_node = :target, due_at = :due "
        f"WHERE campaign_id = :c AND cohort = :hand{condition}").bindparams(*utc_binds("due")),
        {"c": campaign_id, "hand": IN_HAND, "target": target, "due": due})


def next_due(engine: Engine, campaign_id: int) -> datetime | None:
    """When the campaign's next member is due (None: nobody is on their way)."""
    with engine.connect() as conn:
        due = conn.execute(text("SELECT min(due_at) AS due FROM campaign_members WHERE campaign_id = :c "
                                "AND due_at IS NOT NULL").columns(due=DateTime(timezone=True)),
                           {"c": campaign_id}).scalar_one()
    return as_utc(due) if due is not None else None
