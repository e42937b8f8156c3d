"""Broken templates are rejected with the JSON path and a sentence a configurer understands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from touchwave.templates.compiler import Catalog, ScriptRef, compile_template, read_template
from touchwave.templates.problems import TemplateInvalid

from .conftest import load_example

Doc = dict[str, Any]


def node(doc: Doc, node_id: str) -> Doc:
    return next(n for n in doc["nodes"] if n["id"] == node_id)


def edge(doc: Doc, source: str) -> Doc:
    return next(e for e in doc["edges"] if e["from"] == source)


def retention() -> Doc:
    return load_example("contract_retention_96.json")


# (what is broken, the template, how it is broken, expected path, words the message must hold)
CASES: list[tuple[str, Callable[[], Doc], Callable[[Doc], None], str, str]] = [
    ("bad wait duration", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "wait_sms").update(wait="P3X"), "/nodes/1/wait", '"P3X" is not an ISO-8601 duration'),
    ("months are not a fixed wait", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "wait_sms").update(wait="P1M"), "/nodes/1/wait", "weeks, days, hours"),
    ("zero wait", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "wait_sms").update(wait="PT0S"), "/nodes/1/wait", "longer than zero"),
    ("misspelt field", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "wait_sms").update(wiat="P1D"), "/nodes/1/wiat", 'unknown field "wiat"'),
    ("channel step without offer", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "sms_broadcast").pop("offer"), "/nodes/0", '"offer" is required'),
    ("passive step without window", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "hall_window").pop("window"), "/nodes/2", '"window" is required'),
    ("unknown node type", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "sms_broadcast").update(type="fax"), "/nodes/0/type", '"fax" is not one of'),
    ("priority not a number", lambda: load_example("ringback_tone_download.json"),
     lambda d: d.update(priority="high"), "/priority", "should be a whole number"),
    ("priority out of range", lambda: load_example("ringback_tone_download.json"),
     lambda d: d.update(priority=101), "/priority", "at most 100"),
    ("unknown time zone", lambda: load_example("ringback_tone_download.json"),
     lambda d: d.update(timezone="Asia/Beijing"), "/timezone", '"Asia/Beijing" is not a time zone'),
    ("control group too big", lambda: load_example("ringback_tone_download.json"),
     lambda d: d.update(control_share=0.6), "/control_share", "less than 0.5"),
    ("missing business line", lambda: load_example("ringback_tone_download.json"),
     lambda d: d.pop("business_line"), "/", '"business_line" is required'),
    ("bad template name", lambda: load_example("ringback_tone_download.json"),
     lambda d: d.update(name="Ringback Tone!"), "/name", "is not a template name"),
    ("audience with both segment and rule", lambda: load_example("ringback_tone_download.json"),
     lambda d: d["audience"].update(segment="rbt_targets"), "/audience", 'exactly one of "segment" or "rule"'),
    ("rule that is neither a condition nor all/any/not", lambda: load_example("ringback_tone_download.json"),
     lambda d: d["audience"]["rule"]["all"].append({"field": "arpu"}), "/audience/rule/all/2", "a rule is one of"),
    ("unknown rule operator", lambda: load_example("ringback_tone_download.json"),
     lambda d: d["audience"]["rule"]["all"][1].update(op="approximately"), "/audience/rule/all/1/op", "is not one of"),
    ("duplicate node id", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "wait_calls").update(id="wait_sms"), "/nodes/6/id", 'node id "wait_sms" is already used by /nodes/1'),
    ("edge to a node that does not exist", lambda: load_example("ringback_tone_download.json"),
     lambda d: edge(d, "wait_calls").update(to="finish"), "/edges/6/to", 'no node has the id "finish"'),
    ("node that leads nowhere", lambda: load_example("ringback_tone_download.json"),
     lambda d: d["edges"].remove(edge(d, "wait_calls")), "/nodes/6", 'node "wait_calls" leads nowhere'),
    ("a second entry", lambda: load_example("ringback_tone_download.json"),
     lambda d: d["nodes"].append({"id": "stray", "type": "end"}), "/nodes/8", "already the entry"),
    ("split edge without when", retention,
     lambda d: edge(d, "after_call").pop("when"), "/edges/2", 'needs "when"'),
    ("cycle", lambda: load_example("ringback_tone_download.json"),
     lambda d: (d["edges"].remove(edge(d, "wait_calls")), d["edges"].append({"from": "wait_calls", "to": "hall_window"})),
     "/edges/6", "closes a cycle (hall_window → hotline_window → wait_passive → outbound_call → wait_calls → hall_window)"),
    ("a plain step that branches", lambda: load_example("ringback_tone_download.json"),
     lambda d: d["edges"].append({"from": "sms_broadcast", "to": "done"}), "/edges/7",
     'node "sms_broadcast" already leads to "wait_sms"; only a split may branch'),
    ("end node with an outgoing edge", lambda: load_example("sim_swap_4g.json"),
     lambda d: (d["nodes"].append({"id": "later", "type": "end"}), d["edges"].append({"from": "done", "to": "later"})),
     "/edges/4", 'end node "done" cannot lead anywhere'),
    ("when on an edge that is not a split's", lambda: load_example("sim_swap_4g.json"),
     lambda d: edge(d, "wait_call").update(when=["accepted"]), "/edges/1/when", 'only edges leaving a split carry "when"'),
    ("split that forgets an outcome", retention,
     lambda d: edge(d, "after_call").update(when=["accepted"]), "/nodes/2", "whose outcome is: declined"),
    ("split that routes an outcome twice", retention,
     lambda d: [e for e in d["edges"] if e["from"] == "after_call"][1]["when"].append("accepted"),
     "/edges/3/when", 'outcome "accepted" already leads to "closed"'),
    ("completed members contacted again", retention,
     lambda d: (edge(d, "after_call").update(when=["considering"]),
                [e for e in d["edges"] if e["from"] == "after_call"][1].update(when=["accepted", "declined", "no_response"])),
     "/edges/3/when", "have finished the campaign"),
    ("offer window longer than the campaign", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "hall_window").update(window="P30D"), "/nodes/2/window", "past its duration P21D"),
    ("waits longer than the campaign", lambda: load_example("ringback_tone_download.json"),
     lambda d: node(d, "wait_passive").update(wait="P20D"), "/nodes/4/wait", "past its duration P21D"),
    ("no channel step at all", lambda: load_example("ringback_tone_download.json"),
     lambda d: (d.update(nodes=[{"id": "w", "type": "wait", "wait": "P1D"}, {"id": "e", "type": "end"}]),
                d.update(edges=[{"from": "w", "to": "e"}])), "/nodes", "would contact no one"),
    ("root is a list", lambda: [load_example("ringback_tone_download.json")], lambda d: None, "/",
     "must be a JSON object, not a list"),
]


@pytest.mark.parametrize(("what", "make", "breaks", "path", "words"), CASES, ids=[c[0] for c in CASES])
def test_broken_template_is_rejected_with_its_path(what, make, breaks, path, words):
    document = make()
    breaks(document)
    with pytest.raises(TemplateInvalid) as caught:
        compile_template(document)
    found = [str(p) for p in caught.value.problems]
    assert any(p.path == path and words in p.message for p in caught.value.problems), found


def test_there_are_at_least_fifteen_distinct_broken_templates():
    assert len({c[3] + c[4] for c in CASES}) >= 15


def test_every_problem_is_reported_at_once(ringback):
    node(ringback, "wait_sms").update(wait="P3X")
    node(ringback, "sms_broadcast").pop("script")
    ringback["priority"] = -1
    edge(ringback, "wait_calls").update(to="finish")
    with pytest.raises(TemplateInvalid) as caught:
        compile_template(ringback)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["/edges/6/to", "/nodes/0", "/nodes/1/wait", "/priority"]


def test_unreachable_island_is_reported_when_it_has_an_entry_edge(ringback):
    ringback["nodes"] += [{"id": "island", "type": "wait", "wait": "P1D"}, {"id": "island_end", "type": "end"}]
    ringback["edges"] += [{"from": "island", "to": "island_end"}, {"from": "island_end", "to": "island"}]
    with pytest.raises(TemplateInvalid) as caught:
        compile_template(ringback)
    messages = [str(p) for p in caught.value.problems]
    assert any("cannot be reached from the entry" in m for m in messages), messages


CATALOG = Catalog(
    offers=frozenset({"RBT_DOWNLOAD", "OTHER"}),
    scripts={
        "RBT_SMS": ScriptRef("RBT_SMS", "RBT_DOWNLOAD", "sms"),
        "RBT_HALL": ScriptRef("RBT_HALL", "RBT_DOWNLOAD", "hall"),
        "RBT_HOTLINE": ScriptRef("RBT_HOTLINE", "RBT_DOWNLOAD", "hotline"),
        "RBT_OUTBOUND": ScriptRef("RBT_OUTBOUND", "RBT_DOWNLOAD", "outbound"),
        "OTHER_SMS": ScriptRef("OTHER_SMS", "OTHER", "sms"),
    },
)


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        ({"offer": "RBT_FREE"}, "/nodes/0/offer", 'no offer "RBT_FREE" in the catalog'),
        ({"script": "RBT_SMS_V9"}, "/nodes/0/script", 'no script "RBT_SMS_V9" in the catalog'),
        ({"script": "OTHER_SMS"}, "/nodes/0/script", 'written for offer "OTHER", not "RBT_DOWNLOAD"'),
        ({"script": "RBT_HALL"}, "/nodes/0/script", "written for the hall channel, not sms"),
    ],
)
def test_references_are_checked_against_the_catalog(ringback, change, path, words):
    node(ringback, "sms_broadcast").update(change)
    assert compile_template(load_example("ringback_tone_download.json"), CATALOG)
    with pytest.raises(TemplateInvalid) as caught:
        compile_template(ringback, CATALOG)
    assert [(p.path, words in p.message) for p in caught.value.problems] == [(path, True)]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("  \n", "the file is empty"),
        ('{"name": "x",', "not valid JSON"),
        ("\xff\xfe", "not UTF-8"),
    ],
)
def test_unreadable_files_give_one_clear_problem(tmp_path, content, words):
    path = tmp_path / "template.json"
    if content == "\xff\xfe":
        path.write_bytes(b"\xff\xfe{")
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(TemplateInvalid) as caught:
        read_template(path)
    assert len(caught.value.problems) == 1
    assert words in caught.value.problems[0].message
    assert str(caught.value).startswith(str(path))


BEST = "ringback_best_channel.json"


@pytest.mark.parametrize("label, change, path, words", [
    ("best-channel split with an outcome", lambda d: d["edges"][0].update(when=["accepted"]),
     "/edges/0/when", 'routes by best channel: "accepted" is not a channel'),
    ("outcome split with a channel", lambda d: d["nodes"][0].pop("by"),
     "/edges/0/when", 'routes by outcome: "sms" is a channel'),
    ("channel edge into another channel's step", lambda d: d["edges"][0].update(to="call_offer"),
     "/edges/0/to", "members routed to sms must go to a sms step"),
    ("a channel routed twice", lambda d: d["edges"][1].update(when=["sms"]),
     "/edges/1/when", 'channel "sms" already leads to "sms_offer"'),
    ("unknown split kind", lambda d: d["nodes"][0].update(by="cheapest"),
     "/nodes/0/by", "cheapest"),
])
def test_a_broken_best_channel_split_is_named(label, change, path, words):
    document = load_example(BEST)
    change(document)
    with pytest.raises(TemplateInvalid) as caught:
        compile_template(document)
    problems = [f"{p.path}: {p.message}" for p in caught.value.problems]
    assert any(p.startswith(path) and words in p for p in problems), problems
