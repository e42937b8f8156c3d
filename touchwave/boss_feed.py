"""BOSS's feed of orders: every product a customer ordered, however they ordered it.

A campaign's own "yes" reaches BOSS through the order outbox; this is the way back, and
it also carries the orders customers placed on their own — in a hall without being
pitched, on the app, at 10086. Those are what a control group's conversion is made
of: effect reports count a member as converted when they accepted the campaign's offer
or BOSS reports an order of its product since the campaign started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from touchwave.csvfile import open_csv
from touchwave.errors import UserError
from touchwave.store.models import BossOrder, as_utc, utcnow
from touchwave.store.subscribers import normalise_msisdn

COLUMNS = ("boss_order_id", "msisdn", "product", "ordered_at")


@dataclass(frozen=True)
class FeedOrder:
    boss_order_id: str
    msisdn: str
    product: str
    ordered_at: datetime


def record(engine: Engine, orders: Iterable[FeedOrder]) -> int:
    """Store the feed's orders (one statement; an order BOSS sends again is kept once).
    Returns how many were new."""
    rows = [{"boss_order_id": o.boss_order_id, "msisdn": o.msisdn, "product": o.product,
             "ordered_at": as_utc(o.ordered_at), "received_at": utcnow()} for o in orders]
    if not rows:
        return 0
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(BossOrder.__table__).on_conflict_do_nothing(index_elements=["boss_order_id"])
        return len(conn.execute(statement.returning(BossOrder.boss_order_id), rows).all())


def read_csv(path: str | Path) -> list[FeedOrder]:
    """A feed file: boss_order_id, msisdn, product, ordered_at (ISO-8601). A bad line is
    named and nothing is stored."""
    orders: list[FeedOrder] = []
    with open_csv(path, COLUMNS) as reader:
        for line, row in enumerate(reader, start=2):
            msisdn = normalise_msisdn(row["msisdn"] or "")
            if not msisdn:
                raise UserError(f"{path}: line {line}: {row['msisdn']!r} is not a mobile number")
            if not (row["boss_order_id"] or "").strip() or not (row["product"] or "").strip():
                raise UserError(f"{path}: line {line}: boss_order_id and product must not be empty")
            try:
                at = datetime.fromisoformat(row["ordered_at"].strip())
            except (ValueError, AttributeError):
                raise UserError(f"{path}: line {line}: ordered_at {row['ordered_at']!r} is not an ISO-8601 time") from None
            orders.append(FeedOrder(row["boss_order_id"].strip(), msisdn, row["product"].strip(), at))
    return orders
