"""Loading subscribers set-wise: staged in bulk, then one upsert statement.

PostgreSQL stages through COPY, SQLite through one executemany per batch; either way
the subscribers table is written by a single `INSERT … SELECT … ON CONFLICT`, inside one
transaction, so a failed load leaves the table as it was.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, TextClause, bindparam, func, select, text

from touchwave.csvfile import open_csv
from touchwave.errors import UserError
from touchwave.store.db import analyze
from touchwave.store.models import Subscriber

_MSISDN = re.compile(r"^(?:\+?86)?(1[3-9]\d{9})$")
STAGE = "tw_subscriber_stage"
# one encoder for the whole load: json.dumps with options builds a new one per call
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


@dataclass(frozen=True)
class SubscriberRow:
    msisdn: str
    region: str
    plan: str
    attributes: dict[str, Any] = field(default_factory=dict)


def normalise_msisdn(raw: str) -> str | None:
    """The 11-digit national form of a mainland mobile number, or None if it is not one."""
    match = _MSISDN.match(raw.strip().replace(" ", "").replace("-", ""))
    return match.group(1) if match else None


def bulk_load(engine: Engine, rows: Iterable[SubscriberRow], batch_size: int = 50_000) -> int:
    """Insert or update `rows` by MSISDN; returns how many rows were loaded."""
    loaded = 0
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {STAGE}")
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {STAGE} (msisdn VARCHAR(20) NOT NULL, region VARCHAR(64) NOT NULL, "
            "plan VARCHAR(64) NOT NULL, attributes TEXT NOT NULL)"
        )
        iterator = iter(rows)
        while batch := list(islice(iterator, batch_size)):
            _stage(conn, [(r.msisdn, r.region, r.plan, _encode(r.attributes)) for r in batch])
            loaded += len(batch)
        duplicate = conn.exec_driver_sql(
            f"SELECT msisdn FROM {STAGE} GROUP BY msisdn HAVING count(*) > 1 LIMIT 1"
        ).scalar()
        if duplicate is not None:
            raise UserError(f"the input lists the MSISDN {duplicate} more than once; nothing was loaded")
        conn.execute(_UPSERT_PG if conn.dialect.name == "postgresql" else _UPSERT, {"now": datetime.now(UTC)})
        conn.exec_driver_sql(f"DROP TABLE {STAGE}")
        analyze(conn, "subscribers")
    return loaded


def _stage(conn: Connection, batch: list[tuple[str, str, str, str]]) -> None:
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {STAGE} FROM STDIN") as copy:
            for row in batch:
                copy.write_row(row)
    else:
        conn.exec_driver_sql(f"INSERT INTO {STAGE} VALUES (?, ?, ?, ?)", batch)


def _upsert(attributes: str) -> TextClause:
    # "WHERE true" keeps SQLite from reading ON CONFLICT as part of the SELECT's join.
    return text(
        "INSERT INTO subscribers (msisdn, region, plan, attributes, updated_at) "
        f"SELECT msisdn, region, plan, {attributes}, :now FROM {STAGE} WHERE true "
        "ON CONFLICT (msisdn) DO UPDATE SET region = excluded.region, plan = excluded.plan, "
        "attributes = excluded.attributes, updated_at = excluded.updated_at"
    ).bindparams(bindparam("now", type_=DateTime(timezone=True)))


_UPSERT = _upsert("attributes")
_UPSERT_PG = _upsert("attributes::json")


def counts(engine: Engine) -> dict[str, Any]:
    """How many subscribers, by region and by plan: what `subscribers stats` prints."""
    with engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(Subscriber)) or 0
        by_region = conn.execute(
            select(Subscriber.region, func.count()).group_by(Subscriber.region).order_by(Subscriber.region)
        ).all()
        by_plan = conn.execute(
            select(Subscriber.plan, func.count()).group_by(Subscriber.plan).order_by(Subscriber.plan)
        ).all()
    return {"total": total, "by_region": dict(by_region), "by_plan": dict(by_plan)}


# -- inputs -------------------------------------------------------------------------

REQUIRED_COLUMNS = ("msisdn", "region", "plan")


def read_csv(path: str | Path) -> Iterator[SubscriberRow]:
    """Subscribers from a CSV with msisdn, region, plan; other columns become attributes.

    A bad row stops the load with its line number: a half-loaded file is worse than none.
    """
    with open_csv(path, REQUIRED_COLUMNS) as reader:
        for record in reader:
            line = reader.line_num
            msisdn = normalise_msisdn(record["msisdn"] or "")
            if msisdn is None:
                raise UserError(f"{path}, line {line}: {record['msisdn']!r} is not a mainland mobile number")
            for column in ("region", "plan"):
                if not (record[column] or "").strip():
                    raise UserError(f"{path}, line {line}: the {column} is empty")
            extra = {k: v for k, v in record.items() if k not in REQUIRED_COLUMNS and k is not None and v != ""}
            yield SubscriberRow(msisdn, record["region"].strip(), record["plan"].strip(), extra)


REGIONS = ("南京", "无锡", "苏州", "常州", "徐州", "南通", "扬州", "镇江", "泰州", "盐城", "淮安", "连云港", "宿迁")
PLANS = ("4G-38", "4G-58", "4G-96", "4G-126", "5G-169", "5G-229")
PLAN_WEIGHTS = (18, 30, 22, 14, 10, 6)
PREFIXES = ("134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182", "183", "187", "188", "198")


def synthetic(count: int, seed: int = 0, today: date | None = None) -> Iterator[SubscriberRow]:
    """`count` plausible subscribers (deterministic for a seed and a day), for demos and benchmarks.

    MSISDNs are unique by construction; dates are relative to `today` so rules such as
    "contract ends within 60 days" select a realistic share.
    """
    rng = random.Random(seed)
    today = today or date.today()
    for i in range(count):
        prefix, serial = PREFIXES[i % len(PREFIXES)], i // len(PREFIXES)
        plan = rng.choices(PLANS, PLAN_WEIGHTS)[0]
        base = int(plan.split("-")[1])
        has_broadband = rng.random() < 0.35
        yield SubscriberRow(
            msisdn=f"{prefix}{serial:08d}",
            region=REGIONS[rng.randrange(len(REGIONS))],
            plan=plan,
            attributes={
                "arpu": round(base * rng.uniform(0.7, 1.6), 2),
                "has_ringback_tone": rng.random() < 0.4,
                "handset_4g": rng.random() < 0.85,
                "sim_4g": rng.random() < 0.7,
                "contract_end": (today + timedelta(days=rng.randrange(-30, 400))).isoformat(),
                "broadband_expiry": (today + timedelta(days=rng.randrange(-10, 365))).isoformat() if has_broadband else None,
                "data_usage_mb": rng.randrange(0, 60_000),
                "hall_visits_90d": min(int(rng.expovariate(0.8)), 12),
                "churn_risk": round(rng.betavariate(2, 8), 3),
            },
        )
