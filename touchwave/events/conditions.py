"""Conditions on an event's payload, in the rule language of audiences (all / any / not
over {field, op, value}); fields are the payload's properties in the catalog.

They are checked in Python, event by event, as events arrive: a payload is a handful
of values, and what is set-wise (the subscriber's tags, re-entry, contact policy) is
left to SQL.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from touchwave.errors import UserError
from touchwave.events.catalog import EventKind

Payload = dict[str, Any]
Predicate = Callable[[Payload], bool]

_ORDER = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
_OPS = ("eq", "ne", *_ORDER, "in", "not_in", "between", "is_null", "not_null")


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    return "number" if kind in ("number", "integer") else kind if isinstance(kind, str) else "any"


def _fits(value: Any, kind: str) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def compile_conditions(rule: Any, kind: EventKind, path: str = "/trigger/when") -> Predicate:
    """A predicate over `kind`'s payloads; a mistake names its path in the template."""
    if not isinstance(rule, dict):
        raise UserError(f"{path}: a condition is an object")
    for key in ("all", "any"):
        if key in rule:
            parts = rule[key]
            if not isinstance(parts, list) or not parts:
                raise UserError(f"{path}/{key}: needs a list of at least one condition")
            checks = [compile_conditions(r, kind, f"{path}/{key}/{i}") for i, r in enumerate(parts)]
            combine = all if key == "all" else any
            return lambda payload: combine(check(payload) for check in checks)
    if "not" in rule:
        inner = compile_conditions(rule["not"], kind, f"{path}/not")
        return lambda payload: not inner(payload)
    field, op, value = rule.get("field"), rule.get("op"), rule.get("value")
    if field not in kind.fields:
        known = ", ".join(sorted(kind.fields)) or "none"
        raise UserError(f'{path}/field: {kind.name} events have no "{field}" (their payload has: {known})')
    if op not in _OPS:
        raise UserError(f'{path}/op: "{op}" does not apply to an event payload (one of {", ".join(_OPS)})')
    field_type = _type_of(kind.fields[field])
    if op in ("is_null", "not_null"):
        return (lambda p: p.get(field) is None) if op == "is_null" else (lambda p: p.get(field) is not None)
    if op in _ORDER or op == "between":
        if field_type not in ("number", "string"):
            raise UserError(f'{path}/op: "{op}" compares order; "{field}" is {field_type}')
    values = value if op in ("in", "not_in", "between") else [value]
    if not isinstance(values, list) or (op == "between" and len(values) != 2) or not values:
        what = "[low, high]" if op == "between" else "a non-empty list"
        raise UserError(f'{path}/value: "{op}" takes {what}')
    for v in values:
        if not _fits(v, field_type):
            raise UserError(f'{path}/value: {v!r} is not a {field_type}, as "{field}" is')
    return _condition(field, op, value)


def _condition(field: str, op: str, value: Any) -> Predicate:
    def present(payload: Payload) -> Any:
        return payload.get(field)

    if op == "eq":
        return lambda p: present(p) == value
    if op == "ne":
        return lambda p: present(p) is not None and present(p) != value
    if op in _ORDER:
        compare = _ORDER[op]
        return lambda p: present(p) is not None and compare(present(p), value)
    if op == "between":
        low, high = value
        return lambda p: present(p) is not None and low <= present(p) <= high
    members = frozenset(value)
    if op == "in":
        return lambda p: present(p) in members
    return lambda p: present(p) is not None and present(p) not in members
