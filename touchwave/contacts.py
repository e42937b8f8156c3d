"""Set-wise per-member campaign state: claiming a step, handing contacts to a channel,
completion, and progress.

Every function here is one statement per batch, never a Python loop per member.
"Completion wins races" is enforced by the statements themselves:

- a claim selects eligible members and writes their ledger rows in one statement
  (on PostgreSQL with `FOR UPDATE`, so a completion committing meanwhile is re-checked);
- contacts are handed to a channel only by flipping `claimed → sending`, and completion
  flips `claimed | open → withdrawn` in the transaction that records the outcome, so
  for each contact exactly one of the two wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, bindparam, text
from sqlalchemy.engine import Connection

from touchwave.errors import UserError
from touchwave.store.models import ContactStatus, MemberState, Outcome

ELIGIBLE = (MemberState.PENDING, MemberState.CONTACTED, MemberState.CONSIDERING)
COMPLETED = (MemberState.ACCEPTED, MemberState.DECLINED)


def _sql_list(states: tuple[MemberState, ...]) -> str:
    """States as a SQL list literal: fixed enum values, never user input."""
    return "(" + ", ".join(f"'{state.value}'" for state in states) + ")"


_ELIGIBLE_SQL, _COMPLETED_SQL = _sql_list(ELIGIBLE), _sql_list(COMPLETED)


def now() -> datetime:
    return datetime.now(UTC)


def _when(*names: str):
    return [bindparam(n, type_=DateTime(timezone=True)) for n in names]


@dataclass(frozen=True)
class Shard:
    """A slice of one cohort of a campaign: members whose id % shards == index."""

    campaign_id: int
    cohort: int = 0
    index: int = 0
    shards: int = 1

    @property
    def params(self) -> dict[str, int]:
        return {"campaign": self.campaign_id, "cohort": self.cohort, "shard": self.index, "shards": self.shards}


_IN_SHARD = "m.campaign_id = :campaign AND m.cohort = :cohort AND m.subscriber_id % :shards = :shard"


def _on_route(route: str | None, alias: str = "m.") -> str:
    """Members on this route: NULL (before any split) is compared as such, not bound."""
    return f"AND {alias}route IS NULL" if route is None else f"AND {alias}route = :route"


def claim(engine: Engine, shard: Shard, step_id: str, channel: str, route: str | None,
          window_ends_at: datetime | None = None) -> int:
    """Write a ledger row for every member of `shard` still eligible for `step_id`.

    Eligible: pending, contacted or considering (never accepted, declined, suppressed,
    left), on this route, and not already claimed at this step (the idempotency key).
    Passive channels get `open` rows that show the offer until `window_ends_at`.
    Returns how many members were claimed by this call.
    """
    status = ContactStatus.OPEN if window_ends_at else ContactStatus.CLAIMED
    lock = " FOR UPDATE OF m" if engine.dialect.name == "postgresql" else ""
    ends = ":ends" if window_ends_at else "NULL"
    statement = text(
        "INSERT INTO contact_ledger (campaign_id, step_id, subscriber_id, channel, attempt, idempotency_key,"
        " status, at, window_ends_at) "
        "SELECT m.campaign_id, :step, m.subscriber_id, :channel, 1,"
        f" :key_prefix || CAST(m.subscriber_id AS TEXT) || :key_suffix, :status, :now, {ends} "
        f"FROM campaign_members m WHERE {_IN_SHARD} {_on_route(route)} "
        f"AND m.state IN {_ELIGIBLE_SQL}"
        f"{lock} "
        "ON CONFLICT (idempotency_key) DO NOTHING"
    ).bindparams(*_when("now", *(["ends"] if window_ends_at else [])))
    with engine.begin() as conn:
        result = conn.execute(statement, {
            **shard.params, "step": step_id, "channel": channel, "status": status.value,
            "key_prefix": f"{shard.campaign_id}:{step_id}:", "key_suffix": ":1", "now": now(),
            **({"route": route} if route is not None else {}),
            **({"ends": window_ends_at} if window_ends_at else {}),
        })
        return result.rowcount


@dataclass(frozen=True)
class Outgoing:
    """A contact handed to a channel adapter."""

    contact_id: int
    idempotency_key: str
    msisdn: str


def recover_step(engine: Engine, shard: Shard, step_id: str) -> None:
    """Before a (re)started step sends anything: contacts a crashed attempt left in
    `sending` are withdrawn if their member has completed since; the rest are sent again
    by `take_batch` with the same idempotency key (the gateway drops the duplicate)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE contact_ledger SET status = 'withdrawn', reason = 'completed' "
                "WHERE campaign_id = :campaign AND step_id = :step AND status = 'sending' "
                "AND subscriber_id % :shards = :shard AND subscriber_id IN (SELECT subscriber_id FROM campaign_members "
                f"WHERE campaign_id = :campaign AND state IN {_COMPLETED_SQL})"
            ),
            {**shard.params, "step": step_id},
        )


def take_batch(engine: Engine, shard: Shard, step_id: str, limit: int, after_id: int = 0) -> list[Outgoing]:
    """Hand the next `limit` claimed contacts of this step to the channel (`claimed → sending`).

    Contacts still in `sending` (left by a crashed attempt, see `recover_step`) come first.
    `after_id` is the last contact id handed out by this attempt: the scan starts there
    instead of walking past every other shard's claimed contacts again.
    """
    with engine.begin() as conn:
        resent = _outgoing(conn, shard, step_id, "sending", limit)
        if resent:
            return resent
        conn.execute(
            text(
                "UPDATE contact_ledger SET status = 'sending', at = :now WHERE id IN ("
                " SELECT c.id FROM contact_ledger c WHERE c.campaign_id = :campaign AND c.step_id = :step"
                " AND c.status = 'claimed' AND c.id > :after AND c.subscriber_id % :shards = :shard"
                " ORDER BY c.id LIMIT :limit"
                ") AND status = 'claimed'"
            ).bindparams(*_when("now")),
            {**shard.params, "step": step_id, "limit": limit, "after": after_id, "now": now()},
        )
        return _outgoing(conn, shard, step_id, "sending", limit)


def _outgoing(conn: Connection, shard: Shard, step_id: str, status: str, limit: int) -> list[Outgoing]:
    rows = conn.execute(
        text(
            "SELECT c.id, c.idempotency_key, s.msisdn FROM contact_ledger c JOIN subscribers s ON s.id = c.subscriber_id "
            "WHERE c.campaign_id = :campaign AND c.step_id = :step AND c.status = :status "
            "AND c.subscriber_id % :shards = :shard ORDER BY c.id LIMIT :limit"
        ),
        {**shard.params, "step": step_id, "status": status, "limit": limit},
    )
    return [Outgoing(*row) for row in rows]


@dataclass(frozen=True)
class Delivery:
    """What the channel said about one contact."""

    idempotency_key: str
    status: ContactStatus
    external_id: str | None = None
    reason: str | None = None


def record(engine: Engine, campaign_id: int, deliveries: list[Delivery]) -> None:
    """Store the channel's answers for a batch and move the members reached to `contacted`."""
    if not deliveries:
        return
    with engine.begin() as conn:
        for start in range(0, len(deliveries), _ROWS_PER_STATEMENT):
            _record_chunk(conn, deliveries[start:start + _ROWS_PER_STATEMENT])
        reached = [d.idempotency_key for d in deliveries if d.status in (ContactStatus.SENT, ContactStatus.DELIVERED)]
        if reached:
            conn.execute(
                text(
                    "UPDATE campaign_members SET state = 'contacted', updated_at = :now "
                    "WHERE campaign_id = :campaign AND state = 'pending' AND subscriber_id IN ("
                    " SELECT subscriber_id FROM contact_ledger WHERE idempotency_key IN :keys)"
                ).bindparams(bindparam("keys", expanding=True), *_when("now")),
                {"campaign": campaign_id, "keys": reached, "now": now()},
            )


_ROWS_PER_STATEMENT = 5000  # 4 parameters a row: within SQLite's and PostgreSQL's limits


def _record_chunk(conn: Connection, deliveries: list[Delivery]) -> None:
    """One UPDATE for the whole chunk, joined to a VALUES list of the channel's answers."""
    rows = ", ".join(f"(:k{i}, :s{i}, :e{i}, :r{i})" for i in range(len(deliveries)))
    params: dict[str, str | None] = {}
    for i, d in enumerate(deliveries):
        params.update({f"k{i}": d.idempotency_key, f"s{i}": d.status.value, f"e{i}": d.external_id,
                       f"r{i}": d.reason})
    conn.execute(
        text(
            "UPDATE contact_ledger SET status = v.column2, external_id = v.column3, reason = v.column4 "
            f"FROM (VALUES {rows}) AS v WHERE contact_ledger.idempotency_key = v.column1 "
            "AND contact_ledger.status = 'sending'"
        ),
        params,
    )


def mark_passive_reached(engine: Engine, shard: Shard, step_id: str) -> int:
    """Members whose offer window opened at this step count as contacted."""
    with engine.begin() as conn:
        return conn.execute(
            text(
                "UPDATE campaign_members SET state = 'contacted', updated_at = :now "
                f"WHERE campaign_id = :campaign AND state = 'pending' AND subscriber_id IN ("
                " SELECT subscriber_id FROM contact_ledger WHERE campaign_id = :campaign AND step_id = :step"
                " AND status = 'open' AND subscriber_id % :shards = :shard)"
            ).bindparams(*_when("now")),
            {**shard.params, "step": step_id, "now": now()},
        ).rowcount


def route_split(engine: Engine, shard: Shard, route: str | None, branches: dict[str, str]) -> None:
    """Pin each member on `route` to the branch their outcome so far selects."""
    to = {o: branches[o] for o in ("accepted", "declined", "considering", "no_response")}
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE campaign_members SET route = CASE state"
                " WHEN 'accepted' THEN :accepted WHEN 'declined' THEN :declined"
                " WHEN 'considering' THEN :considering ELSE :no_response END "
                f"WHERE campaign_id = :campaign AND cohort = :cohort AND subscriber_id % :shards = :shard "
                f"{_on_route(route, alias='')}"
            ),
            {**shard.params, **to, **({"route": route} if route is not None else {})},
        )


def active_members(engine: Engine, shard: Shard) -> int:
    """Members of the shard who can still be contacted: a wait ends early at zero."""
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM campaign_members m WHERE {_IN_SHARD} "
                 f"AND m.state IN {_ELIGIBLE_SQL}"),
            shard.params,
        ).scalar_one()


def withdraw_campaign(engine: Engine, campaign_id: int) -> list[str]:
    """Cancel: every claimed or open contact is withdrawn; returns the call tasks already
    queued at the call centre, for the adapter to withdraw there too."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE contact_ledger SET status = 'withdrawn', reason = 'cancelled' "
                 "WHERE campaign_id = :campaign AND status IN ('claimed', 'open')"),
            {"campaign": campaign_id},
        )
        return list(conn.execute(
            text("SELECT external_id FROM contact_ledger WHERE campaign_id = :campaign "
                 "AND channel = 'outbound' AND status = 'sent' AND external_id IS NOT NULL"),
            {"campaign": campaign_id},
        ).scalars())


# -- completion ------------------------------------------------------------------------


class NotTargeted(UserError):
    """A response for a customer the campaign does not target."""


@dataclass(frozen=True)
class Completion:
    campaign_id: int
    subscriber_id: int
    outcome: Outcome
    #: False when the same outcome was already recorded (the repeat is a no-op)
    recorded: bool
    #: call tasks already queued at the call centre, to withdraw there
    queued_calls: list[str] = field(default_factory=list)


def respond(engine: Engine, campaign_id: int, msisdn: str, outcome: Outcome, channel: str,
            agent: str | None = None, note: str | None = None) -> Completion:
    """Record a customer's answer; accepted or declined ends the campaign for them everywhere.

    One transaction: the member's state, the withdrawal of every pending and open
    contact of theirs in this campaign, and the response row.
    """
    with engine.begin() as conn:
        member = conn.execute(
            text("SELECT m.subscriber_id, m.state FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
                 "WHERE m.campaign_id = :campaign AND s.msisdn = :msisdn"),
            {"campaign": campaign_id, "msisdn": msisdn},
        ).first()
        if member is None:
            raise NotTargeted(f"campaign {campaign_id} does not target {msisdn}")
        subscriber_id = member.subscriber_id
        changed = conn.execute(
            text("UPDATE campaign_members SET state = :outcome, updated_at = :now "
                 "WHERE campaign_id = :campaign AND subscriber_id = :subscriber "
                 "AND state NOT IN ('accepted', 'declined', 'left') AND (state != :outcome)"
                 ).bindparams(*_when("now")),
            {"campaign": campaign_id, "subscriber": subscriber_id, "outcome": outcome.value, "now": now()},
        ).rowcount
        if not changed:
            current = conn.execute(
                text("SELECT state FROM campaign_members WHERE campaign_id = :campaign AND subscriber_id = :subscriber"),
                {"campaign": campaign_id, "subscriber": subscriber_id},
            ).scalar_one()
            if current == outcome.value:
                return Completion(campaign_id, subscriber_id, outcome, recorded=False)
            raise NotTargeted(f"{msisdn} has already {current} in campaign {campaign_id}; the answer stands")
        queued: list[str] = []
        if MemberState(outcome.value) in COMPLETED:
            conn.execute(
                text("UPDATE contact_ledger SET status = 'withdrawn', reason = 'completed' "
                     "WHERE campaign_id = :campaign AND subscriber_id = :subscriber AND status IN ('claimed', 'open')"),
                {"campaign": campaign_id, "subscriber": subscriber_id},
            )
            queued = list(conn.execute(
                text("SELECT external_id FROM contact_ledger WHERE campaign_id = :campaign AND subscriber_id = :subscriber "
                     "AND channel = 'outbound' AND status = 'sent' AND external_id IS NOT NULL"),
                {"campaign": campaign_id, "subscriber": subscriber_id},
            ).scalars())
        conn.execute(
            text("INSERT INTO responses (subscriber_id, campaign_id, channel, outcome, agent, note, at) "
                 "VALUES (:subscriber, :campaign, :channel, :outcome, :agent, :note, :now)").bindparams(*_when("now")),
            {"subscriber": subscriber_id, "campaign": campaign_id, "channel": channel, "outcome": outcome.value,
             "agent": agent, "note": note, "now": now()},
        )
    return Completion(campaign_id, subscriber_id, outcome, recorded=True, queued_calls=queued)


def mark_withdrawn(engine: Engine, external_ids: list[str], reason: str) -> None:
    """The call centre confirmed these tasks will not be dialled."""
    if external_ids:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE contact_ledger SET status = 'withdrawn', reason = :reason WHERE external_id IN :ids")
                .bindparams(bindparam("ids", expanding=True)),
                {"ids": external_ids, "reason": reason},
            )


# -- progress --------------------------------------------------------------------------


def progress(engine: Engine, campaign_id: int) -> dict:
    """Per step and channel: contacts by status (and reason); per state: members."""
    with engine.connect() as conn:
        contacts = conn.execute(
            text("SELECT step_id, channel, status, reason, count(*) FROM contact_ledger WHERE campaign_id = :c "
                 "GROUP BY step_id, channel, status, reason ORDER BY step_id, status"),
            {"c": campaign_id},
        ).all()
        members = conn.execute(
            text("SELECT state, count(*) FROM campaign_members WHERE campaign_id = :c GROUP BY state"),
            {"c": campaign_id},
        ).all()
        outcomes = conn.execute(
            text("SELECT channel, outcome, count(*) FROM responses WHERE campaign_id = :c GROUP BY channel, outcome"),
            {"c": campaign_id},
        ).all()
    steps: dict[str, dict] = {}
    for step, channel, status, reason, count in contacts:
        entry = steps.setdefault(step, {"channel": channel, "statuses": {}})
        key = f"{status}:{reason}" if reason else status
        entry["statuses"][key] = entry["statuses"].get(key, 0) + count
    return {
        "members": {state: count for state, count in members},
        "steps": steps,
        "responses": {f"{channel}:{outcome}": count for channel, outcome, count in outcomes},
    }
