"""The console's pages over HTTP: sign-in, roles, template errors by path, the flowchart,
the lifecycle by role, and the funnel fragment the campaign page refreshes itself with.
(`test_console_browser.py` drives the same pages in a real browser.)"""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from tests.conftest import CATALOG_FILE, load_example
from touchwave import tokens
from touchwave.api.app import create_app
from touchwave.console.routes import COOKIE
from touchwave.segments.synthetic import load_population
from touchwave.store.catalog import read_catalog_file, upsert_catalog


@pytest.fixture
def console(store):
    with store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
    load_population(store.engine, 400, seed=5)
    return TestClient(create_app(store.engine, temporal_ui="http://ui.example:8233"))


def sign_in(client: TestClient, engine, role: str, user: str | None = None) -> TestClient:
    client.cookies.clear()
    token = tokens.create(engine, user or f"console-{role}", role)
    answer = client.post("/signin", data={"token": token})
    assert answer.status_code == 200 and answer.url.path == "/campaigns", answer.text
    return client


def problems(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="problem"><td><code>(.*?)</code></td><td>(.*?)</td></tr>', html)


def said(html: str) -> list[str]:
    return re.findall(r'role="(?:status|alert)">(.*?)</p>', html)


def test_pages_need_a_live_token_of_a_console_role(console, store):
    assert console.get("/campaigns", follow_redirects=False).headers["location"] == "/"
    assert "API token" in console.get("/").text
    refused = console.post("/signin", data={"token": "not-a-token"})
    assert refused.status_code == 401 and "unknown or revoked" in refused.text
    agent = console.post("/signin", data={"token": tokens.create(store.engine, "ann", "agent")})
    assert agent.status_code == 403 and "offer view" in agent.text
    assert COOKIE not in console.cookies
    sign_in(console, store.engine, "analyst")
    assert console.get("/templates").status_code == 200
    console.post("/signout")
    assert console.get("/templates", follow_redirects=False).status_code == 303


def test_the_session_cookie_is_http_only_and_same_site_strict(console, store):
    answer = console.post("/signin", data={"token": tokens.create(store.engine, "cy", "configurer")},
                          follow_redirects=False)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_a_broken_template_shows_every_problem_by_path_and_keeps_the_text(console, store, ringback):
    sign_in(console, store.engine, "configurer")
    ringback["nodes"][1]["wait"] = "three days"
    ringback["edges"].append({"from": "wait_sms", "to": "nowhere"})
    text = json.dumps(ringback, ensure_ascii=False, indent=2)
    page = console.post("/templates", data={"intent": "upload", "document": text})
    assert page.status_code == 422
    found = dict(problems(page.text))
    assert "/nodes/1/wait" in found and any("nowhere" in message for message in found.values()), found
    assert "nothing was stored" in page.text
    assert "three days" in page.text  # the text stays in the form
    assert "ringback-tone-download" not in page.text.split("Stored templates")[1]


def test_malformed_json_is_one_problem_at_its_line(console, store):
    sign_in(console, store.engine, "configurer")
    page = console.post("/templates", data={"intent": "validate", "document": '{\n  "name": "x",\n}'})
    assert page.status_code == 422
    [(path, message)] = problems(page.text)
    assert path == "/" and "line 3" in message


def test_validate_draws_the_flowchart_and_stores_nothing(console, store):
    sign_in(console, store.engine, "configurer")
    text = json.dumps(load_example("ringback_tone_download.json"), ensure_ascii=False)
    page = console.post("/templates", data={"intent": "validate", "document": text})
    assert page.status_code == 200 and "not stored yet" in page.text
    steps = re.findall(r'<g class="node" data-step="(\w+)"', page.text)
    assert steps[:2] == ["sms_broadcast", "wait_sms"] and "outbound_call" in steps
    assert "No template stored yet" in page.text


def test_only_a_configurer_uploads_and_drafts(console, store):
    sign_in(console, store.engine, "operator")
    text = json.dumps(load_example("ringback_tone_download.json"), ensure_ascii=False)
    refused = console.post("/templates", data={"intent": "upload", "document": text})
    assert refused.status_code == 403 and "may not upload" in refused.text
    assert 'id="upload-form"' not in console.get("/templates").text


def test_a_campaign_walks_the_lifecycle_by_role_in_the_console(console, store):
    """Configurer uploads and drafts, approver approves, the operator's start needs
    Temporal (this app has none: the page says so and nothing changes)."""
    sign_in(console, store.engine, "configurer", "carla")
    doc = json.dumps(load_example("ringback_tone_download.json"), ensure_ascii=False).encode()
    stored = console.post("/templates", data={"intent": "upload"}, files={"file": ("ringback.json", doc, "application/json")})
    assert stored.url.path == "/templates/ringback-tone-download" and said(stored.text) == ["Stored ringback-tone-download v1."]
    assert 'data-step="hall_window"' in stored.text
    drafted = console.post("/campaigns", data={"template": "ringback-tone-download", "version": "1"})
    campaign = drafted.url.path
    assert re.fullmatch(r"/campaigns/\d+", campaign) and "Draft campaign" in said(drafted.text)[0]
    assert re.findall(r'name="action" value="(\w+)"', drafted.text) == ["submit"]
    submitted = console.post(f"{campaign}/step", data={"action": "submit", "comment": "for Tuesday"})
    assert said(submitted.text) == [f"Campaign {campaign.split('/')[-1]}: draft → pending_approval."]

    sign_in(console, store.engine, "approver", "carla")  # the author may not approve
    own = console.post(f"{campaign}/step", data={"action": "approve"})
    assert "another approver must approve it" in said(own.text)[0]
    sign_in(console, store.engine, "approver", "abe")
    page = console.get(campaign).text
    assert re.findall(r'name="action" value="(\w+)"', page) == ["approve", "reject"]
    approved = console.post(f"{campaign}/step", data={"action": "approve", "comment": "ok"})
    assert "pending_approval → approved" in said(approved.text)[0]
    assert "<td>abe</td><td>approve</td><td>pending_approval</td><td>approved</td><td>ok</td>" in approved.text

    sign_in(console, store.engine, "operator")
    refused = console.post(f"{campaign}/step", data={"action": "approve"})
    assert "may not approve" in said(refused.text)[0]
    start = console.post(f"{campaign}/step", data={"action": "start"})
    assert "not connected to Temporal" in said(start.text)[0]
    assert 'id="campaign-status">approved<' in start.text
    assert f'href="http://ui.example:8233/namespaces/default/workflows/campaign-{campaign.split("/")[-1]}"' in start.text


def test_the_funnel_fragment_counts_the_members(console, store):
    sign_in(console, store.engine, "configurer")
    doc = json.dumps(load_example("ringback_tone_download.json"), ensure_ascii=False)
    console.post("/templates", data={"intent": "upload", "document": doc})
    campaign = console.post("/campaigns", data={"template": "ringback-tone-download"}).url.path
    members = int(re.search(r"· (\d+) members", console.get(campaign).text).group(1))
    fragment = console.get(f"{campaign}/funnel")
    assert fragment.status_code == 200 and "<html" not in fragment.text
    states = {state: int(n) for state, n in re.findall(r'data-state="(\w+)">\w+ <strong>(\d+)</strong>', fragment.text)}
    # the template holds 5% out as its control group: suppressed from the start
    assert members > 0 and states["pending"] + states["suppressed"] == members and states["suppressed"] > 0
    assert re.findall(r'<tr data-step="(\w+)">', fragment.text) == ["sms_broadcast", "hall_window", "hotline_window",
                                                                     "outbound_call"]
    missing = console.get("/campaigns/999/funnel")
    assert missing.status_code == 404 and "no campaign 999" in missing.text and "<h1>Not found</h1>" in missing.text
    assert console.get("/templates/no-such-template").status_code == 404
