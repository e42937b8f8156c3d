"""Benchmark: 1M subscribers × 200 tags — the drop's import and a 5-condition segment refresh.

On SQLite and, when TOUCHWAVE_BENCH_DATABASE_URL or TOUCHWAVE_TEST_DATABASE_URL is set,
PostgreSQL (a schema of its own, dropped afterwards):

1. a synthetic catalog of 200 tags (numbers, booleans, enums, dates, texts) and a gzip
   drop for every subscriber, imported through `touchwave.segments.snapshots` (rows/s);
2. a named segment with a 5-condition rule, refreshed cold (everyone joins) and again
   after 1% of the subscribers' tags changed (the daily case); goal ≤ 10 s each;
3. baseline in the same process: the same rule over the same tags stored the other way
   round — one JSON document per subscriber (what `subscribers.attributes` was) —
   on `--baseline-rows` subscribers, scaled to the full count.

    .venv/bin/python bench/segments.py [--subscribers 1000000] [--tags 200] [--baseline-rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from load_subscribers import postgres_url, sqlite_url
from sqlalchemy import Engine, select, text

from touchwave.segments import named
from touchwave.segments.catalog import TagSpec, upsert_tags
from touchwave.segments.rules import Vocabulary
from touchwave.segments.snapshots import current_snapshot, import_drop
from touchwave.store import Store, db
from touchwave.store.models import TagType
from touchwave.store.subscribers import SubscriberRow, bulk_load, synthetic

TODAY = date(2026, 11, 25)
KINDS = (TagType.NUMBER,) * 8 + (TagType.BOOL,) * 4 + (TagType.ENUM,) * 4 + (TagType.DATE,) * 2 + (TagType.TEXT,) * 2
LEVELS = ("bronze", "silver", "gold", "platinum", "diamond")
RULE = {"all": [
    {"field": "number_000", "op": "ge", "value": 30},
    {"field": "bool_008", "op": "eq", "value": False},
    {"field": "enum_012", "op": "in", "value": ["gold", "platinum", "diamond"]},
    {"field": "date_016", "op": "within_days", "value": 180},
    {"any": [{"field": "region", "op": "in", "value": ["南京", "苏州", "无锡", "常州"]},
             {"field": "number_001", "op": "between", "value": [100, 500]}]},
]}


def catalog(tags: int) -> list[TagSpec]:
    specs = []
    for i in range(tags):
        kind = KINDS[i % len(KINDS)]
        specs.append(TagSpec(f"{kind.value}_{i:03d}", kind, group=f"group_{i // 15:02d}", source="bench",
                             values=LEVELS if kind is TagType.ENUM else None))
    return specs


def pools(specs: list[TagSpec], rng: random.Random) -> list[list[str]]:
    """Per tag, the values a column draws from (about 5% empty)."""
    result = []
    for spec in specs:
        if spec.type is TagType.NUMBER:
            values = [f"{rng.uniform(0, 1000):.2f}" for _ in range(997)]
        elif spec.type is TagType.BOOL:
            values = ["true"] * 10 + ["false"] * 9
        elif spec.type is TagType.ENUM:
            values = list(LEVELS) * 4
        elif spec.type is TagType.DATE:
            values = [(TODAY + timedelta(days=d)).isoformat() for d in range(-400, 400, 3)]
        else:
            values = [f"text-{n}" for n in range(50)]
        result.append(values + [""] * max(1, len(values) // 19))
    return result


def write_drop(path: Path, msisdns: list[str], specs: list[TagSpec], seed: int = 1, chunk: int = 20_000) -> None:
    rng = random.Random(seed)
    choices = pools(specs, rng)
    with gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=1) as handle:
        writer = csv.writer(handle)
        writer.writerow(["msisdn", *(s.name for s in specs)])
        for start in range(0, len(msisdns), chunk):
            numbers = msisdns[start:start + chunk]
            columns = [rng.choices(pool, k=len(numbers)) for pool in choices]
            writer.writerows(zip(numbers, *columns))


def json_baseline(engine: Engine, rows: int) -> float:
    """Seconds to evaluate RULE over `rows` subscribers whose tags are one JSON document each."""
    with engine.begin() as conn:
        snapshot = current_snapshot(conn)
        table = snapshot.table
        conn.exec_driver_sql("DROP TABLE IF EXISTS bench_tags_json")
        conn.exec_driver_sql("CREATE TABLE bench_tags_json (subscriber_id BIGINT PRIMARY KEY, tags "
                             + ("JSONB" if conn.dialect.name == "postgresql" else "TEXT") + ")")
        documents = [(r[0], json.dumps({k: (v.isoformat() if isinstance(v, date) else v)
                                        for k, v in r._mapping.items() if k != "subscriber_id"}))
                     for r in conn.execute(select(table).order_by(table.c.subscriber_id).limit(rows))]
        marker = "%s" if conn.dialect.name == "postgresql" else "?"
        conn.exec_driver_sql(f"INSERT INTO bench_tags_json VALUES ({marker}, {marker})", documents)
    # the same conditions through the JSON operators (what the inline-attribute rules did)
    if engine.dialect.name == "postgresql":
        def tag(name: str, cast: str) -> str:
            return f"(j.tags->>'{name}')::{cast}"
    else:
        def tag(name: str, cast: str) -> str:
            return f"json_extract(j.tags, '$.{name}')"
    horizon = (TODAY + timedelta(days=180)).isoformat()
    sql = (f"SELECT count(*) FROM bench_tags_json j JOIN subscribers s ON s.id = j.subscriber_id WHERE "
           f"{tag('number_000', 'float')} >= 30 AND {tag('bool_008', 'boolean')} = false "
           f"AND {tag('enum_012', 'text')} IN ('gold', 'platinum', 'diamond') "
           f"AND {tag('date_016', 'date')} BETWEEN '{TODAY.isoformat()}' AND '{horizon}' "
           f"AND (s.region IN ('南京', '苏州', '无锡', '常州') OR {tag('number_001', 'float')} BETWEEN 100 AND 500)")
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.exec_driver_sql(sql).scalar()
    seconds = time.perf_counter() - started
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE bench_tags_json")
    return seconds


def wide_sample(engine: Engine, rows: int) -> float:
    """Seconds to evaluate RULE over the first `rows` subscribers in the snapshot layout."""
    with engine.connect() as conn:
        vocabulary = Vocabulary.load(conn)
        table = vocabulary.snapshot.table
        first = select(table.c.subscriber_id).order_by(table.c.subscriber_id).limit(rows).subquery()
        query = vocabulary.subscribers(RULE, TODAY).where(table.c.subscriber_id.in_(select(first.c.subscriber_id)))
        started = time.perf_counter()
        conn.execute(select(text("count(*)")).select_from(query.subquery())).scalar()
        return time.perf_counter() - started


def run(url: str, label: str, subscribers: int, tags: int, baseline_rows: int, folder: Path) -> None:
    store = Store.open(url, migrated=False)
    db.upgrade(store.engine)
    engine = store.engine
    started = time.perf_counter()
    people = [SubscriberRow(r.msisdn, r.region, r.plan) for r in synthetic(subscribers, seed=11, today=TODAY)]
    bulk_load(engine, people)
    print(f"[{label}] {subscribers:,} subscribers loaded in {time.perf_counter() - started:.1f} s", flush=True)
    specs = catalog(tags)
    upsert_tags(engine, specs)
    drop = folder / "tags_bench.csv.gz"
    if not drop.exists():
        started = time.perf_counter()
        write_drop(drop, [p.msisdn for p in people], specs)
        print(f"[{label}] drop written: {drop.stat().st_size / 1e6:,.0f} MB gzip in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
    del people
    report = import_drop(engine, drop)
    print(f"[{label}] import: {report.rows:,} rows × {report.tags} tags in {report.seconds:.1f} s = "
          f"{report.rows_per_second:,.0f} rows/s ({report.rows * report.tags / report.seconds:,.0f} values/s)",
          flush=True)

    named.save(engine, "bench", RULE, "bench")
    cold = named.refresh(engine, "bench", TODAY)
    print(f"[{label}] refresh, cold: {cold.members:,} members (+{cold.joined:,}) in {cold.seconds:.2f} s "
          f"{'✓' if cold.seconds <= 10 else '✗'} goal ≤ 10 s", flush=True)
    with engine.begin() as conn:
        table = current_snapshot(conn).table.name
        conn.execute(text(f"UPDATE {table} SET bool_008 = NOT bool_008 WHERE mod(subscriber_id, 100) = 7"))
    daily = named.refresh(engine, "bench", TODAY)
    print(f"[{label}] refresh after 1% changed: {daily.members:,} members, +{daily.joined:,} -{daily.left:,} "
          f"in {daily.seconds:.2f} s {'✓' if daily.seconds <= 10 else '✗'} goal ≤ 10 s", flush=True)

    rows = min(baseline_rows, report.rows)
    json_seconds = json_baseline(engine, rows)
    wide_seconds = wide_sample(engine, rows)
    print(f"[{label}] baseline, the rule over one JSON document per subscriber: {rows:,} in {json_seconds:.2f} s "
          f"(≈ {json_seconds * report.rows / rows:.1f} s per {report.rows:,}); snapshot table, same rows: "
          f"{wide_seconds:.2f} s → {json_seconds / wide_seconds:.1f}× faster", flush=True)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--tags", type=int, default=200)
    parser.add_argument("--baseline-rows", type=int, default=100_000)
    args = parser.parse_args()
    postgres = os.environ.get("TOUCHWAVE_BENCH_DATABASE_URL") or os.environ.get("TOUCHWAVE_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory() as folder:
        with sqlite_url() as url:
            run(url, "sqlite", args.subscribers, args.tags, args.baseline_rows, Path(folder))
        if postgres:
            with postgres_url(postgres) as url:
                run(url, "postgresql", args.subscribers, args.tags, args.baseline_rows, Path(folder))
        else:
            print("[postgresql] skipped: set TOUCHWAVE_BENCH_DATABASE_URL (or TOUCHWAVE_TEST_DATABASE_URL)")


if __name__ == "__main__":
    main()
