"""Property: for random rules over random subscribers, the SQL a rule compiles to selects
exactly whom a plain-Python reading of the rule selects (SQL's three-valued logic: a
condition on a missing value is unknown, and unknown is not selected)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from touchwave.segments.catalog import parse_catalog, upsert_tags
from touchwave.segments.rules import Vocabulary
from touchwave.segments.snapshots import import_rows
from touchwave.segments.synthetic import as_text
from touchwave.store.models import Subscriber
from touchwave.store.subscribers import SubscriberRow, bulk_load

TODAY = date(2026, 11, 25)
REGIONS = ("南京", "无锡", "苏州")
SUBSCRIBERS = [(f"1390000{i:04d}", REGIONS[i % 3]) for i in range(24)]
CATALOG = {"tags": [{"name": "n", "type": "number"}, {"name": "t", "type": "text"},
                    {"name": "e", "type": "enum", "values": ["a", "b", "c"]}, {"name": "b", "type": "bool"},
                    {"name": "d", "type": "date"}]}
ORDER_OPS = ("eq", "ne", "lt", "le", "gt", "ge")

numbers = st.sampled_from([-2.0, -0.5, 0.0, 1.0, 2.5, 3.0, 100.0])
texts = st.text(alphabet="ab", min_size=1, max_size=2)
enums = st.sampled_from(["a", "b", "c"])
bools = st.booleans()
dates = st.integers(min_value=-6, max_value=6).map(lambda d: TODAY + timedelta(days=d))
VALUES = {"n": numbers, "t": texts, "e": enums, "b": bools, "d": dates, "region": st.sampled_from(REGIONS)}


def operators(field: str) -> list[str]:
    ops = ["eq", "ne", "in", "not_in", "is_null", "not_null"]
    if field in ("n", "t", "d", "region"):
        ops += ["lt", "le", "gt", "ge", "between"]
    if field == "d":
        ops += ["within_days", "within_last_days", "more_than_days_ago"]
    return ops


@st.composite
def leaves(draw) -> dict[str, Any]:
    """A condition; every (field, operator) pair is equally likely."""
    field, op = draw(st.sampled_from([(f, op) for f in VALUES for op in operators(f)]))
    values = VALUES[field]
    as_json = (lambda v: v.isoformat()) if field == "d" else (lambda v: v)
    rule: dict[str, Any] = {"field": field, "op": op}
    if op in ("eq", "ne", *ORDER_OPS):
        rule["value"] = as_json(draw(values))
    elif op in ("in", "not_in"):
        rule["value"] = [as_json(v) for v in draw(st.lists(values, min_size=1, max_size=3))]
    elif op == "between":
        rule["value"] = [as_json(v) for v in sorted([draw(values), draw(values)])]
    elif op in ("within_days", "within_last_days", "more_than_days_ago"):
        rule["value"] = draw(st.integers(min_value=0, max_value=5))
    return rule


rules = st.recursive(leaves(), lambda inner: st.one_of(
    st.builds(lambda parts: {"all": parts}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda parts: {"any": parts}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda part: {"not": part}, inner),
), max_leaves=8)
# values first: Hypothesis leans towards the first choice, and a population of missing
# values would test little
tag_rows = st.one_of(st.fixed_dictionaries({name: st.one_of(VALUES[name], st.none())
                                            for name in ("n", "t", "e", "b", "d")}), st.none())
populations = st.lists(tag_rows, min_size=len(SUBSCRIBERS), max_size=len(SUBSCRIBERS))


def truth(rule: dict[str, Any], row: dict[str, Any]) -> bool | None:
    """The rule read in plain Python with SQL's three-valued logic (None = unknown)."""
    if "all" in rule or "any" in rule:
        parts = [truth(r, row) for r in rule.get("all") or rule["any"]]
        if "all" in rule:
            return False if False in parts else (None if None in parts else True)
        return True if True in parts else (None if None in parts else False)
    if "not" in rule:
        inner = truth(rule["not"], row)
        return None if inner is None else not inner
    field, op, value = rule["field"], rule["op"], rule.get("value")
    x = row.get(field)
    if op in ("is_null", "not_null"):
        return (x is None) == (op == "is_null")
    if x is None:
        return None
    if field == "d" and op not in ("within_days", "within_last_days", "more_than_days_ago"):
        value = [date.fromisoformat(v) for v in value] if isinstance(value, list) else date.fromisoformat(value)
    match op:
        case "eq": return x == value
        case "ne": return x != value
        case "lt": return x < value
        case "le": return x <= value
        case "gt": return x > value
        case "ge": return x >= value
        case "in": return x in value
        case "not_in": return x not in value
        case "between": return value[0] <= x <= value[1]
        case "within_days": return TODAY <= x <= TODAY + timedelta(days=value)
        case "within_last_days": return TODAY - timedelta(days=value) <= x <= TODAY
        case "more_than_days_ago": return x < TODAY - timedelta(days=value)
    raise AssertionError(op)


@pytest.fixture
def population_store(store):
    bulk_load(store.engine, [SubscriberRow(msisdn, region, "4G-58") for msisdn, region in SUBSCRIBERS])
    upsert_tags(store.engine, parse_catalog(CATALOG))
    return store


def assert_sql_matches_python(store, rule: dict[str, Any], tags: list[dict[str, Any] | None]) -> None:
    engine = store.engine
    names = ["n", "t", "e", "b", "d"]
    drop = [(line, [msisdn, *(as_text(row[name].isoformat() if name == "d" and row[name] else row[name])
                              for name in names)])
            for line, ((msisdn, _), row) in enumerate(zip(SUBSCRIBERS, tags), start=2) if row is not None]
    import_rows(engine, ["msisdn", *names], drop, source="hypothesis")
    with engine.connect() as conn:
        ids = dict(conn.execute(select(Subscriber.msisdn, Subscriber.id)).all())
        selected = set(conn.execute(Vocabulary.load(conn).subscribers(rule, TODAY)).scalars())
    expected = {ids[msisdn] for (msisdn, region), row in zip(SUBSCRIBERS, tags)
                if truth(rule, {**(row or {}), "region": region}) is True}
    assert selected == expected


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(rule=leaves(), tags=populations)
def test_each_condition_selects_in_sql_whom_it_selects_in_python(population_store, rule, tags):
    assert_sql_matches_python(population_store, rule, tags)


@SETTINGS
@given(rule=rules, tags=populations)
def test_all_any_and_not_select_in_sql_whom_they_select_in_python(population_store, rule, tags):
    assert_sql_matches_python(population_store, rule, tags)
