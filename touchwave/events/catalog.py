"""The event catalog: each event type's payload is described by a JSON Schema, which
every received event is checked against before anything acts on it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from sqlalchemy import Connection, Engine, select

from touchwave.errors import UserError
from touchwave.jsonfile import read_json
from touchwave.store.models import EventType

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class EventKind:
    name: str
    description: str
    payload_schema: dict[str, Any]

    @property
    def fields(self) -> Mapping[str, dict[str, Any]]:
        """The payload's properties and their schemas (what trigger conditions may name)."""
        return self.payload_schema.get("properties", {})


def read_catalog_file(path: str | Path) -> list[EventKind]:
    """Event types from a JSON file {"event_types": [{name, description, payload}]}; a
    mistake names its place in the file."""
    document = read_json(path)
    entries = document.get("event_types") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise UserError(f'{path}: expected {{"event_types": [...]}}')
    kinds, seen = [], set()
    for i, entry in enumerate(entries):
        at = f"{path}: /event_types/{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not NAME.match(entry["name"]):
            raise UserError(f"{at}/name: an event type needs a name of lower-case letters, digits and _")
        if entry["name"] in seen:
            raise UserError(f"{at}/name: {entry['name']!r} appears twice")
        seen.add(entry["name"])
        payload = entry.get("payload")
        if not isinstance(payload, dict) or payload.get("type") != "object":
            raise UserError(f'{at}/payload: a JSON Schema of "type": "object"')
        try:
            Draft202012Validator.check_schema(payload)
        except SchemaError as exc:
            raise UserError(f"{at}/payload: not a valid JSON Schema: {exc.message}") from None
        kinds.append(EventKind(entry["name"], str(entry.get("description", "")), payload))
    return kinds


def upsert(engine: Engine, kinds: list[EventKind]) -> None:
    with engine.begin() as conn:
        for kind in kinds:
            updated = conn.execute(EventType.__table__.update().where(EventType.name == kind.name).values(
                description=kind.description, payload_schema=kind.payload_schema)).rowcount
            if not updated:
                conn.execute(EventType.__table__.insert().values(
                    name=kind.name, description=kind.description, payload_schema=kind.payload_schema))


def load(conn: Connection) -> dict[str, EventKind]:
    return {row.name: EventKind(row.name, row.description, row.payload_schema)
            for row in conn.execute(select(EventType.name, EventType.description, EventType.payload_schema))}
