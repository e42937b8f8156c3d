"""Shared fixtures: a fresh, migrated store on SQLite, and on PostgreSQL when
TOUCHWAVE_TEST_DATABASE_URL is set (as CI does)."""

from __future__ import annotations

import copy
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from touchwave.config import TEMPLATES_DIR, normalise_database_url
from touchwave.store import Store, db

POSTGRES_URL = os.environ.get("TOUCHWAVE_TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
EXAMPLES = sorted(TEMPLATES_DIR.glob("*.json"))
CATALOG_FILE = TEMPLATES_DIR / "catalog" / "offers.json"


def postgres_schema_url(schema: str) -> str:
    """The test database URL, confined to `schema` through the search path."""
    assert POSTGRES_URL
    url = make_url(normalise_database_url(POSTGRES_URL))
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'touchwave.db'}"
        return
    schema = f"tw_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_database_url(POSTGRES_URL))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store migrated to the newest schema, with the default quiet hours lifted: tests
    run at any hour of the day, and the quiet-hours tests set windows of their own."""
    from touchwave.policy import channels

    opened = Store.open(database_url, migrated=False)
    db.upgrade(opened.engine)
    channels.lift_quiet_hours(opened.engine)
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
