"""The tag catalog: every tag the big-data platform's daily drop carries, with its type.

The catalog is the contract of the drop (a column that is not in it, or a catalog tag
missing from the file, stops an import) and the vocabulary of segment rules (a rule
naming an unknown tag, or comparing a tag with a value of another type, is refused).
Tag names become column names of the snapshot tables, hence the strict spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from touchwave.errors import UserError
from touchwave.jsonfile import read_json
from touchwave.store.models import Tag, TagType, utcnow

TAG_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: subscriber fields rules can name besides tags; a tag may not take these names
SUBSCRIBER_FIELDS = frozenset({"msisdn", "region", "plan"})
RESERVED = SUBSCRIBER_FIELDS | {"subscriber_id", "id"}


@dataclass(frozen=True)
class TagSpec:
    name: str
    type: TagType
    group: str = ""
    description: str = ""
    source: str = ""
    values: tuple[str, ...] | None = None


def parse_catalog(document: Any, source: str = "catalog") -> list[TagSpec]:
    """Tags from `{"tags": [{"name", "type", "group", "description", "source", "values"}]}`."""
    if not isinstance(document, dict) or not isinstance(document.get("tags"), list):
        raise UserError(f'{source}: expected {{"tags": [...]}}')
    specs: dict[str, TagSpec] = {}
    for i, item in enumerate(document["tags"]):
        where = f"{source}: /tags/{i}"
        if not isinstance(item, dict):
            raise UserError(f"{where}: a tag is an object with name and type")
        name = item.get("name")
        if not isinstance(name, str) or not TAG_NAME.match(name):
            raise UserError(f"{where}/name: {name!r} is not a tag name (lower-case letters, digits, '_', "
                            "starting with a letter, at most 63)")
        if name in RESERVED:
            raise UserError(f"{where}/name: {name!r} is reserved for a subscriber field")
        if name in specs:
            raise UserError(f"{where}/name: the tag {name!r} is listed twice")
        try:
            kind = TagType(item.get("type"))
        except ValueError:
            raise UserError(f"{where}/type: {item.get('type')!r} is not one of "
                            f"{', '.join(t.value for t in TagType)}") from None
        values = item.get("values")
        if kind is TagType.ENUM:
            if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
                raise UserError(f"{where}/values: an enum tag lists its values (non-empty strings)")
            values = tuple(values)
        elif values is not None:
            raise UserError(f"{where}/values: only enum tags list values")
        specs[name] = TagSpec(name, kind, str(item.get("group", "")), str(item.get("description", "")),
                              str(item.get("source", "")), values)
    return list(specs.values())


def read_catalog_file(path: str | Path) -> list[TagSpec]:
    return parse_catalog(read_json(path), str(path))


def upsert_tags(engine: Engine, specs: list[TagSpec]) -> int:
    """Create or update the catalog's tags (one statement); tags not listed stay."""
    if not specs:
        return 0
    rows = [{"name": s.name, "type": s.type.value, "group_name": s.group, "description": s.description,
             "source": s.source, "values": list(s.values) if s.values else None, "updated_at": utcnow()}
            for s in specs]
    with engine.begin() as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(Tag.__table__).values(rows)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["name"],
            set_={c: statement.excluded[c] for c in ("type", "group_name", "description", "source", "values",
                                                     "updated_at")},
        ))
    return len(specs)


def read_tags(conn: Connection) -> dict[str, TagSpec]:
    """The catalog as stored, by tag name."""
    return {
        row["name"]: TagSpec(row["name"], TagType(row["type"]), row["group_name"], row["description"], row["source"],
                             tuple(row["values"]) if row["values"] else None)
        for row in conn.execute(select(Tag.__table__)).mappings()
    }
