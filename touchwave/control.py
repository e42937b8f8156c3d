"""Control groups: who a campaign holds out to measure what would have happened anyway.

A member is held out when the bucket of `campaign:subscriber` (the first 32 bits of its
MD5, modulo 10,000) falls below the template's `control_share`: random-looking, yet the
same on SQLite and PostgreSQL, in every cohort, audience refresh, re-entry and re-run.
Held-out members join with state `suppressed`, reason `control` and `control = true`:
no step claims them, and their outcomes are still counted (`touchwave.effect`).
"""

from __future__ import annotations

from touchwave.store.db import BUCKETS, bucket_sql


def control_sql(dialect: str, campaign_id: int, subscriber_sql: str, share: float) -> str:
    """The SQL condition that holds a subscriber out of a campaign: the bucket of
    `campaign:subscriber` falls below the share (deterministic, about `share` of anyone)."""
    if share <= 0:
        return "(1 = 0)"
    key = f"'{int(campaign_id)}:' || CAST({subscriber_sql} AS VARCHAR)"
    return f"({bucket_sql(dialect, key)} < {round(share * BUCKETS)})"
