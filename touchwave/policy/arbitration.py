"""Priority arbitration: one subscriber, one channel, one day — one campaign.

When several running campaigns want the same subscriber through the same active channel,
the claim settles it set-wise, in the claiming transaction:

- a lower-priority campaign's contact that is still only claimed (queued for capacity,
  or waiting out quiet hours) is taken over: suppressed with reason `arbitration`;
- the claiming campaign loses (its row suppressed, reason `arbitration`) where another
  campaign has already handed the subscriber to this channel today, or holds an equal- or
  higher-priority claim (on equal priority, the earlier claim stands).

A contact already handed to the channel is never taken back: "never twice in one day"
beats priority. Losers go on to the template's next step. On PostgreSQL the claim has
locked the shard's subscribers first, so two campaigns' claims of the same people run
one after the other; a take-over only touches rows still `claimed`, so a contact that a
step is handing out at that moment is left to go and the claimant loses instead.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

#: the member has this channel today through another campaign (for `contacts._claim_sql`;
#: `:day_starts` is `channels.day_starts`, the operator's midnight)
LOSES_SQL = (
    "EXISTS (SELECT 1 FROM contact_ledger r WHERE r.subscriber_id = m.subscriber_id AND r.channel = CAST(:channel AS VARCHAR)"
    " AND r.campaign_id != m.campaign_id"
    " AND (r.status = 'claimed' OR (r.status IN ('sending', 'sent', 'delivered') AND r.at >= :day_starts)))"
)


def rivals_running(conn: Connection, campaign_id: int) -> bool:
    """Another campaign is running or paused: only then can two claims meet."""
    return conn.execute(text("SELECT 1 FROM campaigns WHERE id != :campaign AND status IN ('running', 'paused') "
                             "LIMIT 1"), {"campaign": campaign_id}).first() is not None


def take_over(conn: Connection, params: dict, members: str) -> int:
    """Suppress lower-priority campaigns' still-claimed contacts in this channel of the
    members the claim is about (`members`: a condition on `campaign_members m`)."""
    return conn.execute(text(
        "UPDATE contact_ledger SET status = 'suppressed', reason = 'arbitration' "
        "WHERE status = 'claimed' AND channel = :channel AND campaign_id != :campaign "
        "AND campaign_id IN (SELECT id FROM campaigns WHERE priority < "
        " (SELECT priority FROM campaigns WHERE id = :campaign)) "
        f"AND subscriber_id IN (SELECT m.subscriber_id FROM campaign_members m WHERE {members})"
    ), params).rowcount
