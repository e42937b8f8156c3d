"""Benchmark: loading 1M synthetic subscribers set-wise, on SQLite and PostgreSQL.

Baseline in the same process: the naive way, one ORM object per subscriber
(`session.add` in a Python loop), on a smaller sample, reported as rows/s.

    .venv/bin/python bench/load_subscribers.py [--rows 1000000] [--baseline-rows 20000]

PostgreSQL is measured when TOUCHWAVE_BENCH_DATABASE_URL or TOUCHWAVE_TEST_DATABASE_URL
is set (in a schema of its own, dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from touchwave.config import normalise_database_url
from touchwave.store import Store, db
from touchwave.store.models import Subscriber
from touchwave.store.subscribers import SubscriberRow, bulk_load, synthetic

TODAY = date(2026, 11, 24)


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/bench.db"


@contextmanager
def postgres_url(base: str) -> Iterator[str]:
    schema = f"tw_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalise_database_url(base))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        url = make_url(normalise_database_url(base)).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def fresh_store(url: str) -> Store:
    store = Store.open(url, migrated=False)
    db.upgrade(store.engine)
    return store


def orm_one_by_one(store: Store, rows: list[SubscriberRow]) -> float:
    """The baseline: a Python loop of ORM inserts, one commit at the end."""
    started = time.perf_counter()
    with store.session.begin() as session:
        for r in rows:
            session.add(Subscriber(msisdn=r.msisdn, region=r.region, plan=r.plan, attributes=r.attributes))
    return time.perf_counter() - started


def measure(name: str, url_context, rows: list[SubscriberRow], baseline_rows: int) -> dict[str, float]:
    with url_context as url:
        store = fresh_store(url)
        started = time.perf_counter()
        bulk_load(store.engine, rows)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        bulk_load(store.engine, rows[: len(rows) // 10])  # reload 10%: the update path of the upsert
        reload_s = time.perf_counter() - started
        with store.engine.begin() as conn:
            assert conn.scalar(select(func.count()).select_from(Subscriber)) == len(rows)
            conn.execute(text("DELETE FROM subscribers"))  # the baseline starts from an empty table too
        baseline_s = orm_one_by_one(store, rows[:baseline_rows])
        store.close()
    figures = {
        "set-wise rows/s": len(rows) / load_s,
        "upsert 10% rows/s": (len(rows) // 10) / reload_s,
        "ORM one-by-one rows/s": baseline_rows / baseline_s,
    }
    figures["speed-up"] = figures["set-wise rows/s"] / figures["ORM one-by-one rows/s"]
    print(f"{name:<11} loaded {len(rows):,} in {load_s:6.2f} s = {figures['set-wise rows/s']:>9,.0f} rows/s | "
          f"upsert of 10%: {figures['upsert 10% rows/s']:>9,.0f} rows/s | "
          f"baseline ORM loop on {baseline_rows:,}: {figures['ORM one-by-one rows/s']:>7,.0f} rows/s | "
          f"{figures['speed-up']:.1f}x", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    args = parser.parse_args()

    started = time.perf_counter()
    rows = list(synthetic(args.rows, seed=42, today=TODAY))
    print(f"generated {len(rows):,} synthetic subscribers in {time.perf_counter() - started:.1f} s (not counted)")
    measure("SQLite", sqlite_url(), rows, args.baseline_rows)
    postgres = os.environ.get("TOUCHWAVE_BENCH_DATABASE_URL") or os.environ.get("TOUCHWAVE_TEST_DATABASE_URL")
    if postgres:
        measure("PostgreSQL", postgres_url(postgres), rows, args.baseline_rows)
    else:
        print("PostgreSQL  not measured: set TOUCHWAVE_BENCH_DATABASE_URL (or TOUCHWAVE_TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
