"""The shared contact trail: what every channel and campaign did with one customer.

Contacts (sent, shown, failed, withdrawn, suppressed with the reason), answers, and
orders to BOSS, newest first — what the agent in the hall or at 10086 sees before
speaking, so no channel repeats what another just did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Engine, text

from touchwave.store.models import as_utc


@dataclass(frozen=True)
class TrailEntry:
    at: datetime
    #: contact | response | order
    kind: str
    campaign_id: int
    campaign: str
    channel: str
    #: contacts: their status (sent, delivered, open, failed, withdrawn, suppressed…);
    #: responses: the outcome; orders: their status
    what: str
    #: contacts: the step; orders: the offer
    detail: str | None = None
    #: why a contact was suppressed, failed or withdrawn; an order's error
    reason: str | None = None
    #: responses: the agent and their note
    agent: str | None = None
    note: str | None = None


_TRAIL = text(
    "SELECT * FROM ("
    " SELECT c.at AS at, 'contact' AS kind, c.campaign_id, k.name AS campaign, c.channel, c.status AS what,"
    "  c.step_id AS detail, c.reason, NULL AS agent, NULL AS note"
    "  FROM contact_ledger c JOIN campaigns k ON k.id = c.campaign_id WHERE c.subscriber_id = :subscriber"
    " UNION ALL"
    " SELECT r.at, 'response', r.campaign_id, k.name, r.channel, r.outcome, NULL, NULL, r.agent, r.note"
    "  FROM responses r JOIN campaigns k ON k.id = r.campaign_id WHERE r.subscriber_id = :subscriber"
    " UNION ALL"
    " SELECT o.updated_at, 'order', o.campaign_id, k.name, o.channel, o.status, o.offer, o.last_error, NULL, NULL"
    "  FROM orders o JOIN campaigns k ON k.id = o.campaign_id WHERE o.subscriber_id = :subscriber"
    ") AS trail ORDER BY at DESC LIMIT :limit"
).columns(at=DateTime(timezone=True))


def trail(engine: Engine, msisdn: str, limit: int = 200) -> list[TrailEntry] | None:
    """The customer's trail, newest first; None when the number is not a subscriber."""
    with engine.connect() as conn:
        subscriber = conn.execute(text("SELECT id FROM subscribers WHERE msisdn = :msisdn"),
                                  {"msisdn": msisdn}).scalar_one_or_none()
        if subscriber is None:
            return None
        rows = conn.execute(_TRAIL, {"subscriber": subscriber, "limit": limit}).all()
    return [TrailEntry(as_utc(row.at), *row[1:]) for row in rows]
