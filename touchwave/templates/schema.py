"""JSON Schema validation of templates, with jsonschema's errors put in plain words."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from touchwave.config import SCHEMA_PATH
from touchwave.templates.problems import Problem, pointer

_JSON_TYPES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


@cache
def flowchart_schema() -> dict[str, Any]:
    with SCHEMA_PATH.open(encoding="utf-8") as f:
        return json.load(f)


@cache
def _validator() -> Draft202012Validator:
    schema = flowchart_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    for name, py in (("null", type(None)), ("true or false", bool), ("a number", (int, float)),
                     ("a string", str), ("a list", list), ("an object", dict)):
        if isinstance(value, py):
            return name
    return type(value).__name__


def _problem(error: ValidationError) -> Problem:
    path = list(error.absolute_path)
    kind, value, schema = error.validator, error.instance, error.schema
    if kind == "required":
        missing = error.message.split("'")[1]
        return Problem(pointer(*path), f'"{missing}" is required here')
    if kind == "additionalProperties":
        allowed = set(schema.get("properties", {}))
        extra = sorted(set(value) - allowed)
        where = pointer(*path, extra[0]) if len(extra) == 1 else pointer(*path)
        names = ", ".join(f'"{e}"' for e in extra)
        known = ", ".join(sorted(allowed))
        return Problem(where, f"unknown field {names}; the fields allowed here are: {known}")
    if kind == "type":
        wanted = schema["type"]
        wanted = [wanted] if isinstance(wanted, str) else wanted
        wanted_text = " or ".join(_JSON_TYPES[w] for w in wanted)
        return Problem(pointer(*path), f"should be {wanted_text}, not {_kind(value)} {_shown(value)}")
    if kind == "pattern" and "x-format-name" in schema:
        return Problem(pointer(*path), f"{_shown(value)} is not {schema['x-format-name']}")
    if kind in ("enum", "const"):
        options = schema.get("enum", [schema.get("const")])
        return Problem(pointer(*path), f"{_shown(value)} is not one of: {', '.join(map(str, options))}")
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most",
                 "exclusiveMinimum": "more than", "exclusiveMaximum": "less than"}[kind]
        return Problem(pointer(*path), f"{_shown(value)} should be {words} {schema[kind]}")
    if kind == "minItems":
        return Problem(pointer(*path), f"needs at least {schema['minItems']} item(s)")
    if kind == "minLength":
        return Problem(pointer(*path), "must not be empty")
    if kind == "uniqueItems":
        return Problem(pointer(*path), "lists the same value twice")
    if kind == "oneOf" and path[-1:] == ["audience"]:
        return Problem(pointer(*path), 'give exactly one of "segment" or "rule"')
    if kind in ("oneOf", "minProperties", "maxProperties") and path and _inside_rule(path):
        return Problem(
            pointer(*path),
            'a rule is one of {"all": [rules]}, {"any": [rules]}, {"not": rule} '
            'or a condition {"field", "op", "value"}',
        )
    return Problem(pointer(*path), error.message)


def _inside_rule(path: list[str | int]) -> bool:
    return "rule" in path


def schema_problems(document: Any) -> list[Problem]:
    """Every schema violation in `document`, deepest first per branch, sorted by path."""
    if not isinstance(document, dict):
        return [Problem("/", f"a template must be a JSON object, not {_kind(document)}")]
    problems = {_problem(e) for e in _validator().iter_errors(document)}
    return sorted(problems)
