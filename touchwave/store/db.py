"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from touchwave.config import normalise_database_url
from touchwave.errors import StoreUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers (the offer view) run while a step claims members; NORMAL is
    # durable across application crashes, which is what the embedded stack needs.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    dbapi_connection.create_function("tw_bucket", 1, _bucket, deterministic=True)


BUCKETS = 10_000


def _bucket(key: str) -> int:
    """A stable bucket in [0, BUCKETS) for a text key: the first 32 bits of its MD5."""
    return int(hashlib.md5(key.encode()).hexdigest()[:8], 16) % BUCKETS


def bucket_sql(dialect: str, key_sql: str) -> str:
    """SQL for the same bucket as `_bucket` of the text `key_sql`, on either database:
    SQLite calls the function registered on every connection, PostgreSQL computes it
    from its own md5(). Used where an assignment must be random-looking yet repeatable
    (control groups, ties between equal channels)."""
    if dialect == "postgresql":
        return f"((('x' || substr(md5({key_sql}), 1, 8))::bit(32)::bigint) % {BUCKETS})"
    return f"tw_bucket({key_sql})"


def analyze(conn: Connection, *tables: str) -> None:
    """After a bulk change, refresh PostgreSQL's planner statistics for `tables`: with
    the counts of an empty table it plans set-wise updates of a million members as
    nested loops. (SQLite plans from its indexes and needs nothing.)"""
    if conn.dialect.name == "postgresql":
        for table in tables:
            conn.exec_driver_sql(f"ANALYZE {table}")


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; a SQLite file's folder is created on first use."""
    parsed = make_url(normalise_database_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(f"cannot create the folder {folder} for the SQLite database: {exc.strerror}") from None
        # SQLite has one writer: threads queue for the one connection instead of meeting
        # "database is locked" and SQLite's sleeping busy handler (which costs up to 100 ms a try)
        engine = create_engine(parsed, **{"pool_size": 1, "max_overflow": 0, "pool_timeout": 300, **kwargs})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database, or None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreUnavailable(f"cannot reach the database {safe_url(engine)}: {exc.orig}") from exc


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest migration; returns (before, after)."""
    before = current_revision(engine)
    command.upgrade(_alembic_config(engine), "head")
    return before, head_revision()


def require_current(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the code's."""
    revision = current_revision(engine)
    if revision != head_revision():
        state = "is empty" if revision is None else f"is at schema revision {revision}"
        raise StoreUnavailable(
            f"the database {safe_url(engine)} {state}, this touchwave needs {head_revision()}: "
            "run `touchwave db upgrade`"
        )
