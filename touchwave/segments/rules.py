"""Segment rules → SQL, typed against the tag catalog.

A rule is `{"all": [rules]}`, `{"any": [rules]}`, `{"not": rule}` or a condition
`{"field", "op", "value"}` over a subscriber field (msisdn, region, plan) or a tag of
the current snapshot. Every value reaches the database as a bound parameter; fields are
columns looked up in the vocabulary, never names pasted into SQL. A condition on a
missing value is unknown, as in SQL: `not` of unknown stays unknown and the member is
not selected — ask for missing values with `is_null`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, Select, and_, false, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from touchwave.errors import UserError
from touchwave.segments.catalog import SUBSCRIBER_FIELDS, read_tags
from touchwave.segments.snapshots import Snapshot, current_snapshot, is_iso_date
from touchwave.store.models import Subscriber, TagType

ORDERED = (TagType.NUMBER, TagType.DATE, TagType.TEXT)
DAY_OPS = ("within_days", "within_last_days", "more_than_days_ago")


@dataclass(frozen=True)
class Field:
    column: ColumnElement
    type: TagType
    values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Vocabulary:
    """What a rule may name: subscriber fields and the current snapshot's tags."""

    fields: dict[str, Field]
    snapshot: Snapshot | None
    #: catalog tags that have no column yet (no snapshot, or one older than the tag)
    pending_tags: frozenset[str] = frozenset()

    @classmethod
    def load(cls, conn: Connection) -> Vocabulary:
        fields = {name: Field(getattr(Subscriber, name), TagType.TEXT) for name in sorted(SUBSCRIBER_FIELDS)}
        catalog = read_tags(conn)
        snapshot = current_snapshot(conn)
        if snapshot is not None:
            for name, kind in snapshot.columns.items():
                spec = catalog.get(name)
                fields[name] = Field(snapshot.table.c[name], kind, spec.values if spec else None)
        return cls(fields, snapshot, frozenset(catalog) - set(fields))

    def field(self, name: str, path: str) -> Field:
        if name in self.fields:
            return self.fields[name]
        if name in self.pending_tags:
            when = "no tag drop has been imported yet" if self.snapshot is None else \
                "the current tag snapshot predates it"
            raise UserError(f"{path}/field: the tag {name!r} has no values: {when} (touchwave tags import FILE)")
        raise UserError(f"{path}/field: {name!r} is neither a subscriber field ({', '.join(sorted(SUBSCRIBER_FIELDS))}) "
                        "nor a tag in the catalog")

    def subscribers(self, rule: dict[str, Any], today: date | None = None, path: str = "") -> Select:
        """SELECT the ids of the subscribers `rule` selects."""
        clause = to_clause(rule, self, today or date.today(), path)
        query = select(Subscriber.id)
        if self.snapshot is not None:
            table = self.snapshot.table
            query = query.select_from(Subscriber.__table__.outerjoin(table, table.c.subscriber_id == Subscriber.id))
        return query.where(clause)


def to_clause(rule: dict[str, Any], vocabulary: Vocabulary, today: date, path: str = "") -> ColumnElement[bool]:
    """The WHERE clause selecting the subscribers `rule` describes; a mistake names its path."""
    if not isinstance(rule, dict):
        raise UserError(f"{path or '/'}: a rule is an object")
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        parts = rule[key]
        if not isinstance(parts, list) or not parts:
            raise UserError(f"{path}/{key}: needs a list of at least one rule")
        clauses = [to_clause(r, vocabulary, today, f"{path}/{key}/{i}") for i, r in enumerate(parts)]
        return and_(true(), *clauses) if key == "all" else or_(false(), *clauses)
    if "not" in rule:
        return not_(to_clause(rule["not"], vocabulary, today, f"{path}/not"))
    if "field" not in rule or "op" not in rule:
        raise UserError(f'{path or "/"}: a rule is one of {{"all": [...]}}, {{"any": [...]}}, {{"not": rule}} '
                        'or a condition {"field", "op", "value"}')
    field = vocabulary.field(rule["field"], path)
    return _condition(field, rule["op"], rule.get("value"), today, path)


def _condition(field: Field, op: str, value: Any, today: date, path: str) -> ColumnElement[bool]:
    column = field.column
    if op in ("is_null", "not_null"):
        return column.is_(None) if op == "is_null" else column.is_not(None)
    if op in DAY_OPS:
        if field.type is not TagType.DATE:
            raise UserError(f"{path}/op: {op} compares dates; this field is a {field.type}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise UserError(f"{path}/value: {op} takes a whole number of days (0 or more), not {value!r}")
        if op == "within_days":
            return column.between(today, today + timedelta(days=value))
        if op == "within_last_days":
            return column.between(today - timedelta(days=value), today)
        return column < today - timedelta(days=value)
    if op in ("eq", "ne"):
        bound = _value(field, value, f"{path}/value")
        return column == bound if op == "eq" else column != bound
    if op in ("lt", "le", "gt", "ge"):
        _ordered(field, op, path)
        bound = _value(field, value, f"{path}/value")
        return {"lt": column < bound, "le": column <= bound, "gt": column > bound, "ge": column >= bound}[op]
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise UserError(f"{path}/value: {op} takes a non-empty list")
        bound = [_value(field, v, f"{path}/value/{i}") for i, v in enumerate(value)]
        return column.in_(bound) if op == "in" else column.not_in(bound)
    if op == "between":
        _ordered(field, op, path)
        if not isinstance(value, list) or len(value) != 2:
            raise UserError(f"{path}/value: between takes [low, high]")
        low, high = (_value(field, v, f"{path}/value/{i}") for i, v in enumerate(value))
        return column.between(low, high)
    raise UserError(f"{path}/op: {op!r} is not an operator")


def _ordered(field: Field, op: str, path: str) -> None:
    if field.type not in ORDERED:
        raise UserError(f"{path}/op: {op} needs an ordered field (number, date or text); this one is a {field.type}")


def _value(field: Field, value: Any, path: str) -> Any:
    """`value` as the field's type, or a clear refusal."""
    kind = field.type
    if kind is TagType.NUMBER and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is TagType.BOOL and isinstance(value, bool):
        return value
    if kind is TagType.DATE and isinstance(value, str) and is_iso_date(value):
        return date.fromisoformat(value)
    if kind is TagType.ENUM and isinstance(value, str):
        if value not in (field.values or ()):
            raise UserError(f"{path}: {value!r} is not one of the tag's values ({', '.join(field.values or ())})")
        return value
    if kind is TagType.TEXT and isinstance(value, str):
        return value
    raise UserError(f"{path}: {value!r} is not a {_NAMES[kind]}")


_NAMES = {TagType.NUMBER: "number", TagType.BOOL: "boolean (true or false)", TagType.DATE: "date (YYYY-MM-DD)",
          TagType.ENUM: "text value", TagType.TEXT: "text value"}
