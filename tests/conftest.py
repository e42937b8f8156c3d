"""Shared fixtures: a fresh, migrated store on SQLite, and on PostgreSQL when
TOUCHWAVE_TEST_DATABASE_URL is set (as CI does)."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from touchwave.config import TEMPLATES_DIR, normalise_database_url
from touchwave.store import Store, db

POSTGRES_URL = os.environ.get("TOUCHWAVE_TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
EXAMPLES = sorted(TEMPLATES_DIR.glob("*.json"))
CATALOG_FILE = TEMPLATES_DIR / "catalog" / "offers.json"


def _admin():
    """The test server outside any transaction, as CREATE DATABASE needs; unpooled, so no
    connection outlives its statement."""
    return create_engine(normalise_database_url(POSTGRES_URL), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def _on_database(name: str) -> str:
    assert POSTGRES_URL
    return make_url(normalise_database_url(POSTGRES_URL)).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'touchwave.db'}"
        return
    name = f"tw_test_{uuid.uuid4().hex[:12]}"
    with _admin().connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield _on_database(name)
    finally:
        with _admin().connect() as conn:
            # a worker subprocess a test killed may still hold a connection
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def _migrate(url: str) -> None:
    """Bring `url` to the newest schema, with the default quiet hours lifted: tests run at
    any hour of the day, and the quiet-hours tests set windows of their own."""
    from touchwave.policy import channels

    opened = Store.open(url, migrated=False)
    try:
        db.upgrade(opened.engine)
        channels.lift_quiet_hours(opened.engine)
    finally:
        opened.close()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per dialect, made once per session and copied for each test's
    store: migrating takes about half a second, copying a few milliseconds, and the suite
    opens a store several hundred times. Made lazily, so a run without PostgreSQL tests
    does not touch the server."""
    made: dict[str, str] = {}

    class Templates(dict):
        def __missing__(self, dialect: str) -> str:
            if dialect == "sqlite":
                url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'touchwave.db'}"
            else:
                name = f"tw_template_{uuid.uuid4().hex[:12]}"
                with _admin().connect() as conn:
                    conn.execute(text(f"CREATE DATABASE {name}"))
                made[dialect] = name
                url = _on_database(name)
            _migrate(url)
            self[dialect] = url
            return url

    yield Templates()
    for name in made.values():
        with _admin().connect() as conn:
            conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def _copy(template: str, url: str) -> None:
    """Make the database at `url` a copy of the migrated `template`."""
    if template.startswith("sqlite"):
        source = sqlite3.connect(make_url(template).database)
        target = sqlite3.connect(make_url(url).database)
        with target:
            source.backup(target)
        source.close()
        target.close()
        return
    name, model = make_url(url).database, make_url(template).database
    with _admin().connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {model}"))


@pytest.fixture
def store(database_url: str, migrated: dict[str, str]) -> Iterator[Store]:
    """A store at the newest schema, with the default quiet hours lifted (see `_migrate`):
    a copy of the session's migrated database, as migrating it anew gives the same."""
    _copy(migrated[make_url(database_url).get_backend_name()], database_url)
    opened = Store.open(database_url)
    yield opened
    opened.close()


@pytest.fixture
def ringback() -> dict[str, Any]:
    """The seed-002 ringback-tone template, fresh for each test to change."""
    return load_example("ringback_tone_download.json")


def load_example(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((TEMPLATES_DIR / name).read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
async def temporal():
    """The time-skipping test server (waits of days pass in milliseconds)."""
    from temporalio.testing import WorkflowEnvironment

    from touchwave.stack import installed_binary
    from touchwave.temporal import register_search_attributes

    # one environment per session: two in one process have crashed at exit
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"))
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


def api_client(engine, role: str = "agent", user: str | None = None, **app_options):
    """A test client of the API holding a fresh token of `role`."""
    from fastapi.testclient import TestClient

    from touchwave import tokens
    from touchwave.api.app import create_app

    token = tokens.create(engine, user or f"test-{role}", role)
    return TestClient(create_app(engine, **app_options), headers={"Authorization": f"Bearer {token}"})
