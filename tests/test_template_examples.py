"""The seeds' campaigns, written as templates, compile to the plans a workflow will run."""

from __future__ import annotations

import json

import pytest

from touchwave.store.catalog import read_catalog_file
from touchwave.events.catalog import read_catalog_file as read_events_file
from touchwave.templates.compiler import Catalog, ScriptRef, compile_template, read_template, template_hash
from touchwave.templates.plan import Plan
from touchwave.templates.render import as_mermaid, as_text

from .conftest import CATALOG_FILE, EXAMPLES, load_example

DAY = 86_400


def catalog_from_file() -> Catalog:
    catalog = read_catalog_file(CATALOG_FILE)
    return Catalog(
        offers=frozenset(o.code for o in catalog.offers),
        scripts={s.code: ScriptRef(s.code, o.code, str(ch)) for o in catalog.offers for ch, s in o.scripts.items()},
        events={kind.name: kind for kind in read_events_file(CATALOG_FILE.parent / "events.json")},
    )


def test_there_is_an_example_for_each_seed_campaign():
    names = {path.stem for path in EXAMPLES}
    assert {"ringback_tone_download", "contract_retention_96", "sim_swap_4g", "broadband_renewal"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_compiles_against_the_shipped_catalog(path):
    plan = compile_template(read_template(path), catalog_from_file(), source=str(path))
    assert plan.entry == plan.steps[0].id
    assert plan.channel_steps, "an example that contacts no one is no example"
    assert all(s.offer and s.script for s in plan.channel_steps)


def test_ringback_plan_is_sms_then_hall_and_10086_then_outbound_with_waits():
    plan = compile_template(load_example("ringback_tone_download.json"))
    assert [(s.id, s.kind) for s in plan.steps] == [
        ("sms_broadcast", "sms"),
        ("wait_sms", "wait"),
        ("hall_window", "hall"),
        ("hotline_window", "hotline"),
        ("wait_passive", "wait"),
        ("outbound_call", "outbound"),
        ("wait_calls", "wait"),
        ("done", "end"),
    ]
    assert plan.step("wait_sms").wait_seconds == 3 * DAY
    assert plan.step("hall_window").window_seconds == 14 * DAY
    assert plan.step("hall_window").passive and not plan.step("sms_broadcast").passive
    assert plan.step("outbound_call").next == "wait_calls"
    assert plan.duration_seconds == 21 * DAY
    assert plan.control_share == 0.05
    assert plan.audience.rule["all"][0] == {"field": "has_ringback_tone", "op": "eq", "value": False}


def test_split_branches_are_resolved_per_outcome():
    plan = compile_template(load_example("contract_retention_96.json"))
    split = plan.step("after_call")
    assert {(b.outcome, b.next) for b in split.branches} == {
        ("accepted", "closed"),
        ("declined", "closed"),
        ("considering", "hall_window"),
        ("no_response", "hall_window"),
    }
    assert split.next is None


def test_the_same_template_gives_the_same_plan_and_hash(ringback):
    first = compile_template(ringback)
    reordered = json.loads(json.dumps(ringback, sort_keys=True, indent=7))
    reordered.pop("$schema")
    again = compile_template(reordered)
    assert again == first
    assert again.to_json() == first.to_json()
    assert first.template_hash == template_hash(ringback) == template_hash(reordered)
    assert len(first.template_hash) == 64


def test_any_change_of_content_changes_the_hash(ringback):
    before = template_hash(ringback)
    ringback["nodes"][1]["wait"] = "P4D"
    assert template_hash(ringback) != before


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_plan_survives_serialisation(path):
    plan = compile_template(read_template(path))
    restored = Plan.from_dict(json.loads(plan.to_json()))
    assert restored == plan


def test_text_and_mermaid_show_every_step_and_edge():
    plan = compile_template(load_example("contract_retention_96.json"))
    text = as_text(plan, version=3)
    assert text.startswith("contract-retention-96 v3")
    assert all(step.id in text for step in plan.steps)
    mermaid = as_mermaid(plan)
    assert mermaid.splitlines()[0] == "flowchart TD"
    assert "after_call -->|accepted, declined| closed" in mermaid
    assert "after_call -->|considering, no_response| hall_window" in mermaid
    assert "wait_visit --> done" in mermaid
