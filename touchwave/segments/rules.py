"""Audience rules (the template's inline `rule`) → a SQLAlchemy WHERE clause.

Only bound parameters reach the database. Fields are the subscriber columns
(msisdn, region, plan) or keys of the `attributes` JSON; an attribute's type is taken
from the value it is compared with. The segments issue replaces this with rules typed
against the tag catalog.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, false, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from touchwave.errors import UserError
from touchwave.store.models import Subscriber

COLUMNS = {"msisdn": Subscriber.msisdn, "region": Subscriber.region, "plan": Subscriber.plan}


def _field(name: str, sample: Any) -> ColumnElement:
    if name in COLUMNS:
        return COLUMNS[name]
    item = Subscriber.attributes[name]
    if isinstance(sample, bool):
        return item.as_boolean()
    if isinstance(sample, (int, float)):
        return item.as_float()
    return item.as_string()


def to_clause(rule: dict[str, Any], today: date | None = None, path: str = "/audience/rule") -> ColumnElement[bool]:
    """The WHERE clause selecting the subscribers `rule` describes."""
    today = today or date.today()
    if "all" in rule:
        return and_(true(), *(to_clause(r, today, f"{path}/all/{i}") for i, r in enumerate(rule["all"])))
    if "any" in rule:
        return or_(false(), *(to_clause(r, today, f"{path}/any/{i}") for i, r in enumerate(rule["any"])))
    if "not" in rule:
        return not_(to_clause(rule["not"], today, f"{path}/not"))
    name, op, value = rule["field"], rule["op"], rule.get("value")
    sample = value[0] if isinstance(value, list) and value else value
    column = _field(name, sample)
    match op:
        case "eq":
            return column == value
        case "ne":
            return column != value
        case "lt":
            return column < value
        case "le":
            return column <= value
        case "gt":
            return column > value
        case "ge":
            return column >= value
        case "in" | "not_in" if isinstance(value, list):
            return column.in_(value) if op == "in" else column.not_in(value)
        case "between" if isinstance(value, list) and len(value) == 2:
            return column.between(value[0], value[1])
        case "is_null":
            return _field(name, "").is_(None)
        case "not_null":
            return _field(name, "").is_not(None)
        case "within_days" if isinstance(value, int):
            column = _field(name, "")
            return and_(column >= today.isoformat(), column <= (today + timedelta(days=value)).isoformat())
        case "more_than_days_ago" if isinstance(value, int):
            return _field(name, "") < (today - timedelta(days=value)).isoformat()
    raise UserError(f"{path}: the operator {op!r} does not take the value {value!r}")
