"""The console in a real browser: Debian's headless Chromium (installed by `make test`),
driven by Playwright, against the embedded stack on loopback — the Temporal dev server, a
worker, the API with the console, the simulator and its customers.

A configurer uploads a broken template and sees its errors, then a good one and sees its
diagram, and drafts a campaign; an approver approves it; an operator starts it and
watches the funnel change without reloading the page. Each page's screenshot is saved
under var/test-artifacts/console/ (TOUCHWAVE_TEST_ARTIFACTS overrides the folder).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import CATALOG_FILE, load_example
from touchwave import tokens
from touchwave.config import PROJECT_ROOT, Settings
from touchwave.policy import channels
from touchwave.segments.synthetic import load_population
from touchwave.stack import Ports, Stack
from touchwave.store.catalog import read_catalog_file, upsert_catalog

CHROMIUM = "/usr/bin/chromium"
#: without the networking flags Chromium keeps calling Google's hosts, which this closed network refuses
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]
ARTIFACTS = Path(os.environ.get("TOUCHWAVE_TEST_ARTIFACTS", PROJECT_ROOT / "var" / "test-artifacts")) / "console"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveStack(threading.Thread):
    """The embedded stack on free ports, in a thread with its own event loop."""

    def __init__(self, var: Path) -> None:
        super().__init__(name="live-stack", daemon=True)
        self.settings = dataclasses.replace(Settings.from_env(), database_url=f"sqlite:///{var / 'touchwave.db'}",
                                            var_dir=var)
        self.ports = Ports(temporal=_free_port(), temporal_ui=_free_port(), api=_free_port(), simulator=_free_port())
        self.temporal_db = var / "temporal.db"
        self.ready = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test by start(), not swallowed
            self.failure = exc
            self.ready.set()

    async def _serve(self) -> None:
        async with Stack(self.settings, self.ports, temporal_db=self.temporal_db) as stack:
            self.stack, self.loop, self._stopping = stack, asyncio.get_running_loop(), asyncio.Event()
            self.ready.set()
            await self._stopping.wait()

    def start_and_wait(self) -> LiveStack:
        self.start()
        self.ready.wait(timeout=120)
        if self.failure is not None:
            raise RuntimeError("the embedded stack did not start") from self.failure
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=60)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveStack]:
    stack = LiveStack(tmp_path_factory.mktemp("console-stack")).start_and_wait()
    engine = stack.stack.store.engine
    with stack.stack.store.session.begin() as session:
        upsert_catalog(session, read_catalog_file(CATALOG_FILE))
    load_population(engine, 1500, seed=11)
    channels.lift_quiet_hours(engine)  # the test runs at any hour, as conftest's store
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, base: str, token: str) -> None:
    page.goto(base + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Campaigns", level=1)).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()


#: every number in the live funnel (per step and channel, members by state), as one string
FUNNEL_NUMBERS_JS = ("Array.from(document.querySelectorAll('#funnel td.n, #funnel .count strong'))"
                     ".map(e => e.textContent.trim()).join(' ')")


def funnel_numbers(page: Page) -> str:
    return page.evaluate(f"() => {FUNNEL_NUMBERS_JS}")


def test_configure_approve_start_and_watch_the_funnel_in_a_browser(live, browser, tmp_path):
    base = live.stack.api_url
    engine = live.stack.store.engine
    configurer = tokens.create(engine, "carla", "configurer")
    approver = tokens.create(engine, "abe", "approver")
    operator = tokens.create(engine, "otto", "operator")
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    page.goto(base + "/")
    shot(page, "01-sign-in")
    sign_in(page, base, configurer)
    page.get_by_role("link", name="Templates").click()

    # a broken template: every problem next to its JSON path, the text kept in the form
    broken = load_example("ringback_tone_download.json")
    broken["nodes"][1]["wait"] = "three days"
    broken["edges"].append({"from": "wait_sms", "to": "nowhere"})
    page.get_by_label("or paste it here").fill(json.dumps(broken, ensure_ascii=False, indent=2))
    page.get_by_role("button", name="Upload").click()
    problems = page.locator("#problems tr.problem")
    expect(page.get_by_role("heading", name=re.compile(r"problems? in the template: nothing was stored"))).to_be_visible()
    expect(problems.filter(has_text="/nodes/1/wait")).to_have_count(1)
    expect(problems.filter(has_text="nowhere")).not_to_have_count(0)
    expect(page.get_by_label("or paste it here")).to_have_value(re.compile("three days"))
    shot(page, "02-template-errors")

    # a good one, as a file: stored, and its flowchart drawn
    good = tmp_path / "ringback.json"
    good.write_text(json.dumps(load_example("ringback_tone_download.json"), ensure_ascii=False), encoding="utf-8")
    page.get_by_label("or paste it here").fill("")
    page.get_by_label("A template file (JSON)").set_input_files(str(good))
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("status")).to_have_text("Stored ringback-tone-download v1.")
    diagram = page.get_by_role("img", name=re.compile("Flowchart of"))
    expect(diagram).to_be_visible()
    for step in ("sms_broadcast", "hall_window", "hotline_window", "outbound_call", "done"):
        expect(diagram.locator(f'g.node[data-step="{step}"]')).to_be_visible()
    shot(page, "03-template-diagram")

    page.get_by_label("Campaign name (optional)").fill("Ringback tones, browser test")
    page.get_by_role("button", name="Create draft campaign").click()
    expect(page.get_by_role("heading", name="Ringback tones, browser test")).to_be_visible()
    campaign_url = page.url.split("?")[0]
    page.get_by_label("Comment (kept in the audit log)").fill("ready for review")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#campaign-status")).to_have_text("pending_approval")
    sign_out(page)

    sign_in(page, base, approver)
    page.get_by_role("link", name="Ringback tones, browser test").click()
    expect(page.get_by_role("button", name="Start")).to_have_count(0)  # not an approver's step
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#campaign-status")).to_have_text("approved")
    shot(page, "04-approved")
    sign_out(page)

    sign_in(page, base, operator)
    page.goto(campaign_url)
    before = funnel_numbers(page)
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#campaign-status")).to_have_text("running")
    campaign_id = campaign_url.rsplit("/", 1)[1]
    expect(page.get_by_role("link", name=re.compile("in the Temporal UI"))).to_have_attribute(
        "href", f"{live.stack.ui_url}/namespaces/default/workflows/campaign-{campaign_id}")
    # the SMS wave goes out and customers answer: the funnel changes on the page by itself
    loaded, at_load = page.url, funnel_numbers(page)
    page.wait_for_function(f"() => ({FUNNEL_NUMBERS_JS}) !== {json.dumps(at_load)}", timeout=60_000)
    sms_sent = page.locator('#funnel tr[data-step="sms_broadcast"] td.reached')
    expect(sms_sent).not_to_have_text("0", timeout=60_000)
    assert page.url == loaded, "the page reloaded; the funnel should refresh in place"
    assert funnel_numbers(page) != before and int(sms_sent.inner_text()) > 0
    shot(page, "05-campaign-running")

    page.get_by_role("link", name="Effect report").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    shot(page, "06-effect-report")
    page.close()
