"""Tag snapshots: the platform's daily drop, checked against the catalog and swapped in whole.

Layout: one table per imported drop, `tag_snapshot_<id>`, keyed by subscriber id with
one typed column per tag (REAL/DOUBLE, TEXT, BOOLEAN, DATE). A segment rule is then a
plain scan of one table joined to subscribers by primary key, with typed comparisons
the database evaluates natively — no JSON parsing per row (a 200-tag JSON document per
subscriber costs a parse per condition per row) and no entity-attribute-value self
joins (one join per condition over 200M rows). 200 columns are far inside SQLite's
2,000 and PostgreSQL's 1,600.

The import writes the new table while the snapshot is `loading` (on SQLite in chunks,
each committed, so campaign workers are not locked out of the store for the whole load;
on PostgreSQL in one COPY) and only when every row passed its checks does one short
transaction make it `current`. A bad file or a crash half way leaves yesterday's
snapshot current; the half-written table is
dropped then or at the next import.
"""

from __future__ import annotations

import functools
import csv
import gzip
import io
import logging
import math
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from itertools import islice
from pathlib import Path
from typing import Any

from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from touchwave.errors import UserError
from touchwave.segments.catalog import TagSpec, read_tags
from touchwave.store.db import analyze
from touchwave.store.models import Subscriber, TagSnapshot, TagSnapshotStatus, TagType, utcnow
from touchwave.store.subscribers import normalise_msisdn

log = logging.getLogger(__name__)

KEY = "msisdn"
#: problems listed before the import gives up reading
MAX_PROBLEMS = 20
_SQL_TYPES = {TagType.NUMBER: Float, TagType.TEXT: Text, TagType.ENUM: Text, TagType.BOOL: Boolean,
              TagType.DATE: Date}


@dataclass(frozen=True)
class Snapshot:
    id: int
    columns: dict[str, TagType]
    table: Table


@dataclass(frozen=True)
class ImportReport:
    snapshot_id: int
    source: str
    rows: int
    tags: int
    unknown_msisdns: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class DropInvalid(UserError):
    """The drop breaks the catalog's contract; `problems` say where (line, column)."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = "\n  ".join(problems)
        super().__init__(f"{source}: the drop was not imported, the current tags stay as they were:\n  {shown}")


def snapshot_table(snapshot_id: int, columns: dict[str, TagType]) -> Table:
    """The SQLAlchemy table of a snapshot (its own MetaData: these tables come and go).
    The same snapshot gets the same Table object, so statements over it are compiled once
    (the event ingest builds one per trigger campaign per batch)."""
    return _snapshot_table(snapshot_id, tuple(columns.items()))


@functools.lru_cache(maxsize=64)
def _snapshot_table(snapshot_id: int, columns: tuple[tuple[str, TagType], ...]) -> Table:
    return Table(
        f"tag_snapshot_{snapshot_id}", MetaData(),
        Column("subscriber_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
               autoincrement=False),
        *(Column(name, _SQL_TYPES[kind]) for name, kind in columns),
    )


def current_snapshot(conn: Connection) -> Snapshot | None:
    row = conn.execute(select(TagSnapshot.id, TagSnapshot.columns)
                       .where(TagSnapshot.status == TagSnapshotStatus.CURRENT)).first()
    if row is None:
        return None
    columns = {name: TagType(kind) for name, kind in row.columns.items()}
    return Snapshot(row.id, columns, snapshot_table(row.id, columns))


# -- reading a drop ------------------------------------------------------------------


def read_drop(path: str | Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header and (line, row) pairs of a CSV drop, gzip or plain (told by its first bytes)."""
    path = Path(path)
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    raw = gzip.open(path, "rb") if gzipped else path.open("rb")
    handle = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        handle.close()
        raise DropInvalid(str(path), ["the file is empty (no header)"]) from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        handle.close()
        raise DropInvalid(str(path), [f"line 1: unreadable ({exc})"]) from None

    def rows() -> Iterator[tuple[int, list[str]]]:
        with handle:
            try:
                for record in reader:
                    yield reader.line_num, record
            except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
                # a truncated gzip ends in EOFError, a damaged one in BadGzipFile/zlib.error
                raise DropInvalid(str(path), [f"line {reader.line_num + 1}: the file is damaged or ends early "
                                              f"({exc})"]) from None

    return [name.strip() for name in header], rows()


# -- checking values (column-wise: one comprehension per column and chunk) ------------


class _Bad(Exception):
    def __init__(self, index: int, expected: str) -> None:
        self.index, self.expected = index, expected


def _first_bad(column: tuple[str, ...], good: Callable[[str], bool], expected: str) -> _Bad:
    for index, value in enumerate(column):
        if value and not good(value):
            return _Bad(index, expected)
    raise AssertionError("a column that failed its check has no bad value")


def _is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _numbers(column: tuple[str, ...], _spec: TagSpec) -> list[Any]:
    try:
        values = [float(v) if v else None for v in column]
    except ValueError:
        raise _first_bad(column, _is_number, "a number") from None
    # a NaN or an infinity makes the sum non-finite (so may a huge sum: then look one by one)
    if not math.isfinite(sum(filter(None, values))) and not all(_is_number(v) for v in column if v):
        raise _first_bad(column, _is_number, "a finite number")
    return values


_BOOLS: dict[str, bool | None] = {"": None}
for _word, _truth in (("1", True), ("0", False), ("true", True), ("false", False), ("t", True), ("f", False),
                      ("yes", True), ("no", False), ("y", True), ("n", False)):
    _BOOLS.update({_word: _truth, _word.upper(): _truth, _word.capitalize(): _truth})


def _bools(column: tuple[str, ...], _spec: TagSpec) -> list[Any]:
    try:
        return [_BOOLS[v] for v in column]
    except KeyError:
        raise _first_bad(column, lambda v: v.strip().lower() in _BOOLS, "a boolean (true/false, 1/0, yes/no)") \
            from None


def is_iso_date(value: str) -> bool:
    """YYYY-MM-DD and a real day (fromisoformat alone also takes weeks and compact forms)."""
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _dates(column: tuple[str, ...], _spec: TagSpec) -> list[Any]:
    if all(map(is_iso_date, filter(None, column))):
        return [v or None for v in column]
    raise _first_bad(column, is_iso_date, "a date (YYYY-MM-DD)")


def _texts(column: tuple[str, ...], _spec: TagSpec) -> list[Any]:
    return [v or None for v in column]


def _enums(column: tuple[str, ...], spec: TagSpec) -> list[Any]:
    allowed = set(spec.values or ())
    if set(column) - allowed - {""}:
        raise _first_bad(column, allowed.__contains__, f"one of {', '.join(spec.values or ())}")
    return [v or None for v in column]


_CHECKS: dict[TagType, Callable[[tuple[str, ...], TagSpec], list[Any]]] = {
    TagType.NUMBER: _numbers, TagType.BOOL: _bools, TagType.DATE: _dates, TagType.TEXT: _texts,
    TagType.ENUM: _enums,
}


# -- importing -------------------------------------------------------------------------


def import_drop(engine: Engine, path: str | Path, chunk_rows: int = 20_000) -> ImportReport:
    """Import a CSV drop (gzip or plain) as the new current snapshot."""
    header, rows = read_drop(path)
    return import_rows(engine, header, rows, source=str(path), chunk_rows=chunk_rows)


def import_rows(engine: Engine, header: list[str], rows: Iterable[tuple[int, list[str]]], source: str,
                chunk_rows: int = 20_000) -> ImportReport:
    """Check `rows` (line, values in `header` order) against the catalog and make them the
    current snapshot; on any problem nothing changes but a dropped half-written table."""
    started = time.perf_counter()
    with engine.connect() as conn:
        catalog = read_tags(conn)
    specs = _check_header(header, catalog, source)
    columns = {spec.name: spec.type for spec in specs}
    _drop_abandoned(engine)
    with engine.begin() as conn:
        snapshot_id = conn.execute(insert(TagSnapshot).values(
            status=TagSnapshotStatus.LOADING, columns={k: v.value for k, v in columns.items()}, source=source[:500],
            rows=0, unknown_msisdns=0, started_at=utcnow(),
        ).returning(TagSnapshot.id)).scalar_one()
        table = snapshot_table(snapshot_id, columns)
        table.create(conn)
    try:
        loaded, unknown = _load(engine, table, header, specs, rows, source, chunk_rows)
        with engine.begin() as conn:
            analyze(conn, table.name)
            _swap(conn, snapshot_id, loaded, unknown)
    except BaseException:
        _discard(engine, snapshot_id)
        raise
    report = ImportReport(snapshot_id, source, loaded, len(specs), unknown, time.perf_counter() - started)
    log.info("tag snapshot imported", extra={"snapshot": snapshot_id, "rows": loaded, "tags": len(specs),
                                             "unknown_msisdns": unknown, "seconds": round(report.seconds, 2)})
    return report


def _check_header(header: list[str], catalog: dict[str, TagSpec], source: str) -> list[TagSpec]:
    problems = []
    if not catalog:
        problems.append("the tag catalog is empty: load it first (touchwave tags catalog FILE)")
    if KEY not in header:
        problems.append(f"line 1: the header has no {KEY} column")
    seen: set[str] = set()
    for number, name in enumerate(header, start=1):
        if name in seen:
            problems.append(f"line 1, column {number} ({name}): listed twice")
        seen.add(name)
        if name != KEY and name not in catalog and catalog:
            problems.append(f"line 1, column {number} ({name}): not a tag in the catalog")
    missing = [name for name in catalog if name not in seen]
    if missing:
        problems.append(f"line 1: the drop lacks the catalog tag(s) {', '.join(missing)}")
    if problems:
        raise DropInvalid(source, problems)
    return [catalog[name] for name in header if name != KEY]


def _load(engine: Engine, table: Table, header: list[str], specs: list[TagSpec],
          rows: Iterable[tuple[int, list[str]]], source: str, chunk_rows: int) -> tuple[int, int]:
    with engine.connect() as conn:
        known = dict(conn.execute(select(Subscriber.msisdn, Subscriber.id)).all())
    key, width = header.index(KEY), len(header)
    positions = [header.index(spec.name) for spec in specs]
    seen: set[int] = set()
    loaded = unknown = 0
    iterator = iter(rows)
    with _writer(engine, table) as write:
        while chunk := list(islice(iterator, chunk_rows)):
            ids, lines, records, problems = [], [], [], []
            for line, record in chunk:
                if len(record) != width:
                    problems.append(f"line {line}: {len(record)} values where the header has {width}")
                    continue
                subscriber = known.get(record[key])
                if subscriber is None:
                    msisdn = normalise_msisdn(record[key])
                    if msisdn is None:
                        problems.append(f"line {line}, column {KEY}: {record[key]!r} is not a mainland mobile number")
                        continue
                    subscriber = known.get(msisdn)
                    if subscriber is None:
                        unknown += 1
                        continue
                if subscriber in seen:
                    problems.append(f"line {line}, column {KEY}: {record[key]} appears twice in the drop")
                    continue
                seen.add(subscriber)
                ids.append(subscriber)
                lines.append(line)
                records.append(record)
                if len(problems) >= MAX_PROBLEMS:
                    break
            if problems:
                raise DropInvalid(source, problems[:MAX_PROBLEMS])
            if not records:
                continue
            transposed = list(zip(*records))
            values = []
            for spec, position in zip(specs, positions):
                try:
                    values.append(_CHECKS[spec.type](transposed[position], spec))
                except _Bad as bad:
                    problems.append(f"line {lines[bad.index]}, column {spec.name}: "
                                    f"{transposed[position][bad.index]!r} is not {bad.expected}")
            if problems:
                raise DropInvalid(source, problems[:MAX_PROBLEMS])
            write(list(zip(ids, *values)))
            loaded += len(ids)
    return loaded, unknown


@contextmanager
def _writer(engine: Engine, table: Table) -> Iterator[Callable[[list[tuple[Any, ...]]], None]]:
    """Where checked chunks go. PostgreSQL: one COPY for the whole drop, its network
    writes on psycopg's writer thread, so the server parses and stores while Python reads
    the next chunk (the transaction keeps the half-loaded table invisible anyway).
    SQLite: one INSERT per chunk, each committed, so campaign workers get the single
    writer lock between chunks."""
    if engine.dialect.name == "postgresql":
        names = ", ".join(engine.dialect.identifier_preparer.quote(c.name) for c in table.columns)
        with engine.begin() as conn, conn.connection.driver_connection.cursor() as cursor, \
                cursor.copy(f"COPY {table.name} ({names}) FROM STDIN", writer=QueuedLibpqWriter(cursor)) as copy:
            def copy_rows(rows: list[tuple[Any, ...]]) -> None:
                for row in rows:
                    copy.write_row(row)

            yield copy_rows
    else:
        statement = str(insert(table).compile(dialect=engine.dialect))

        def insert_rows(rows: list[tuple[Any, ...]]) -> None:
            with engine.begin() as conn:
                conn.exec_driver_sql(statement, rows)

        yield insert_rows


def _swap(conn: Connection, snapshot_id: int, loaded: int, unknown: int) -> None:
    """Make `snapshot_id` current, the current one previous, and drop older ones."""
    retired = list(conn.execute(select(TagSnapshot.id).where(TagSnapshot.status == TagSnapshotStatus.PREVIOUS))
                   .scalars())
    conn.execute(update(TagSnapshot).where(TagSnapshot.status == TagSnapshotStatus.CURRENT)
                 .values(status=TagSnapshotStatus.PREVIOUS))
    conn.execute(update(TagSnapshot).where(TagSnapshot.id == snapshot_id)
                 .values(status=TagSnapshotStatus.CURRENT, rows=loaded, unknown_msisdns=unknown,
                         finished_at=utcnow()))
    for old in retired:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS tag_snapshot_{int(old)}")
        conn.execute(delete(TagSnapshot).where(TagSnapshot.id == old))


def _discard(engine: Engine, snapshot_id: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS tag_snapshot_{int(snapshot_id)}")
        conn.execute(delete(TagSnapshot).where(TagSnapshot.id == snapshot_id))


def _drop_abandoned(engine: Engine) -> None:
    """Tables of imports that died half way (the process was killed) go at the next import."""
    with engine.connect() as conn:
        abandoned = list(conn.execute(select(TagSnapshot.id)
                                      .where(TagSnapshot.status == TagSnapshotStatus.LOADING)).scalars())
    for snapshot_id in abandoned:
        _discard(engine, snapshot_id)

