"""The `touchwave` command: exit 0 on success, 2 with a clear message on a user's mistake."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from touchwave import cli
from touchwave.config import TEMPLATES_DIR

from .conftest import CATALOG_FILE, EXAMPLES, load_example

RINGBACK = str(TEMPLATES_DIR / "ringback_tone_download.json")


@pytest.fixture
def run(capsys, monkeypatch, tmp_path):
    """Run the CLI in-process with var/ in a temporary folder; returns (code, stdout, stderr)."""
    monkeypatch.setenv("TOUCHWAVE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("TOUCHWAVE_DATABASE_URL", raising=False)

    def invoke(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def with_store(run, database_url, monkeypatch):
    """A migrated store with the shipped catalog, named by TOUCHWAVE_DATABASE_URL."""
    monkeypatch.setenv("TOUCHWAVE_DATABASE_URL", database_url)
    assert run("db", "upgrade")[0] == 0
    assert run("offers", "load", str(CATALOG_FILE))[0] == 0
    return run


def broken_file(tmp_path: Path, content: str) -> str:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    return str(path)


def test_validate_needs_no_database(run, tmp_path):
    code, out, err = run("template", "validate", *map(str, EXAMPLES))
    assert code == 0, err
    assert out.count(": ok") == len(EXAMPLES)
    assert "references not checked" in out
    assert not (tmp_path / "var").exists(), "validate must not create a database"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ("{\"name\": ", "not valid JSON: Expecting value at line 1, column 10"),
        ("[1, 2]", "/: a template must be a JSON object, not a list"),
        ('{"name": "x"}', '/: "business_line" is required here'),
    ],
)
def test_validate_rejects_bad_files_with_exit_2_and_no_traceback(run, tmp_path, content, words):
    path = str(tmp_path / "missing.json") if content is None else broken_file(tmp_path, content)
    code, out, err = run("template", "validate", path)
    assert code == 2
    assert words in err
    assert err.startswith(path)
    assert "Traceback" not in err


def test_validate_reports_every_problem_of_every_file(run, tmp_path):
    doc = load_example("ringback_tone_download.json")
    doc["nodes"][1]["wait"] = "P3X"
    doc["priority"] = "high"
    code, out, err = run("template", "validate", broken_file(tmp_path, json.dumps(doc)), RINGBACK)
    assert code == 2
    assert '/nodes/1/wait: "P3X" is not an ISO-8601 duration' in err
    assert "/priority: should be a whole number" in err
    assert f"{RINGBACK}: ok" in out


def test_validate_checks_references_when_a_store_is_configured(with_store, tmp_path):
    doc = load_example("ringback_tone_download.json")
    doc["nodes"][0]["offer"] = "NO_SUCH_OFFER"
    code, _, err = with_store("template", "validate", broken_file(tmp_path, json.dumps(doc)))
    assert code == 2
    assert '/nodes/0/offer: no offer "NO_SUCH_OFFER" in the catalog' in err


def test_upload_list_show(with_store):
    run = with_store
    code, out, _ = run("template", "upload", RINGBACK)
    assert (code, "stored as new version 1" in out) == (0, True)
    code, out, _ = run("template", "upload", RINGBACK)
    assert (code, "unchanged, still version 1" in out) == (0, True)
    code, out, _ = run("template", "list")
    assert code == 0 and "ringback-tone-download" in out and "彩铃下载多渠道协同营销" in out
    code, out, _ = run("template", "show", "ringback-tone-download")
    assert code == 0
    assert "sms_broadcast" in out and "window P14D" in out and "→ wait_sms" in out
    code, out, _ = run("template", "show", "ringback-tone-download", "--format", "mermaid")
    assert code == 0 and out.startswith("flowchart TD") and "outbound_call --> wait_calls" in out
    code, out, _ = run("template", "show", "ringback-tone-download", "--format", "json")
    assert json.loads(out)["entry"] == "sms_broadcast"


def test_upload_of_a_broken_template_stores_nothing(with_store, tmp_path):
    doc = load_example("sim_swap_4g.json")
    doc["nodes"][0]["script"] = "RBT_SMS"
    code, _, err = with_store("template", "upload", broken_file(tmp_path, json.dumps(doc)))
    assert code == 2
    assert "/nodes/0/script: script \"RBT_SMS\" is written for offer \"RBT_DOWNLOAD\"" in err
    code, out, _ = with_store("template", "list")
    assert "no templates uploaded yet" in out


def test_show_of_an_unknown_template_is_a_user_error(with_store):
    with_store("template", "upload", RINGBACK)
    code, _, err = with_store("template", "show", "ringback")
    assert code == 2
    assert 'no template named "ringback"; uploaded: ringback-tone-download' in err
    code, _, err = with_store("template", "show", "ringback-tone-download", "--version", "9")
    assert (code, "has no version 9" in err) == (2, True)


def test_subscribers_synth_and_stats(with_store):
    code, out, _ = with_store("subscribers", "synth", "--count", "1200", "--seed", "3")
    assert (code, out.strip()) == (0, "1200 synthetic subscribers loaded with 9 tags each (seed 3, tag snapshot 1)")
    code, out, _ = with_store("subscribers", "stats", "--format", "json")
    stats = json.loads(out)
    assert stats["total"] == 1200 == sum(stats["by_region"].values()) == sum(stats["by_plan"].values())


def test_an_unreachable_database_is_exit_2_with_the_address(run, monkeypatch):
    monkeypatch.setenv("TOUCHWAVE_DATABASE_URL", "postgresql://touchwave:secret@127.0.0.1:9/touchwave")
    code, _, err = run("template", "list")
    assert code == 2
    assert "cannot reach the database postgresql+psycopg://touchwave:***@127.0.0.1:9/touchwave" in err
    assert "secret" not in err and "Traceback" not in err


def test_a_malformed_database_url_is_exit_2(run):
    code, _, err = run("--database-url", "not a url", "template", "list")
    assert code == 2 and "cannot use the database URL" in err


def test_an_unmigrated_database_says_how_to_fix_it(run, tmp_path):
    code, _, err = run("--database-url", f"sqlite:///{tmp_path / 'empty.db'}", "template", "list")
    assert code == 2 and "run `touchwave db upgrade`" in err


def test_an_internal_failure_is_exit_1_with_a_traceback(run, monkeypatch):
    def broken(_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "cmd_template_list", broken)
    code, _, err = run("template", "list")
    assert code == 1
    assert "Traceback" in err and "internal error" in err


def test_the_installed_command_runs():
    touchwave = shutil.which("touchwave", path=str(Path(sys.executable).parent))
    assert touchwave, "the touchwave entry point is not installed in this environment"
    result = subprocess.run([touchwave, "template", "validate", RINGBACK], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "TOUCHWAVE_VAR_DIR": "/nonexistent/var"})
    assert result.returncode == 0, result.stderr
    assert "ringback-tone-download" in result.stdout


def test_tags_and_segments_from_the_command_line(with_store, tmp_path):
    catalog = tmp_path / "tags.json"
    catalog.write_text(json.dumps({"tags": [{"name": "arpu", "type": "number"}, {"name": "vip", "type": "bool"}]}))
    assert with_store("subscribers", "load", str(write_csv(tmp_path)))[0] == 0
    assert with_store("tags", "catalog", str(catalog))[1].strip().endswith("2 tags stored in the catalog")
    bad = tmp_path / "bad.csv"
    bad.write_text("msisdn,arpu,vip\n13800000001,12,true\n13800000002,lots,false\n")
    code, _, err = with_store("tags", "import", str(bad))
    assert code == 2 and "line 3, column arpu: 'lots' is not a number" in err and "Traceback" not in err
    good = tmp_path / "good.csv"
    good.write_text("msisdn,arpu,vip\n13800000001,12,true\n13800000002,80,false\n")
    code, out, _ = with_store("tags", "import", str(good))
    assert code == 0 and "2 subscribers × 2 tags imported as snapshot" in out
    rule = '{"field": "arpu", "op": "ge", "value": 50}'
    code, out, _ = with_store("segment", "preview", rule)
    assert code == 0 and out.splitlines()[0] == "1 subscribers match now" and "138****0002" in out
    assert with_store("segment", "save", "rich", rule)[1].strip() == "segment rich: stored as version 1"
    code, out, _ = with_store("segment", "refresh", "rich")
    assert code == 0 and "segment rich v1: 1 members, +1 joined, -0 left" in out
    code, _, err = with_store("segment", "preview", '{"field": "arpu", "op": "ge", "value": "lots"}')
    assert code == 2 and "/value: 'lots' is not a number" in err


def write_csv(folder: Path) -> Path:
    path = folder / "subscribers.csv"
    path.write_text("msisdn,region,plan\n13800000001,南京,4G-58\n13800000002,无锡,4G-96\n", encoding="utf-8")
    return path


def test_do_not_disturb_from_the_command_line(with_store, tmp_path):
    code, out, _ = with_store("dnd", "add", "13800000001", "--scope", "channel:sms", "--source", "complaint",
                              "--expires", "2027-01-31", "--note", "投诉")
    assert code == 0 and out.strip() == "13800000001: do not disturb at channel:sms (complaint) until 2027-01-31 23:59 UTC"
    code, _, err = with_store("dnd", "add", "13800000001", "--scope", "channel:fax", "--source", "complaint")
    assert code == 2 and "'channel:fax' is not a do-not-disturb scope" in err
    listing = tmp_path / "regulator.csv"
    listing.write_text("msisdn,scope,source\n13800000002,global,regulator\n13800000003,global,regulator\n")
    assert with_store("dnd", "import", str(listing))[1].strip() == f"{listing}: 2 do-not-disturb entries stored"
    code, out, _ = with_store("dnd", "show", "13800000001")
    assert code == 0 and "channel:sms" in out and "complaint" in out and "投诉" in out
    assert with_store("dnd", "remove", "13800000001", "--scope", "channel:sms")[0] == 0
    code, _, err = with_store("dnd", "remove", "13800000001", "--scope", "channel:sms")
    assert code == 2 and "no do-not-disturb entry" in err


def test_frequency_caps_from_the_command_line(with_store):
    code, out, _ = with_store("caps", "set", "sms_weekly", "--channel", "sms", "--max", "2", "--per", "P7D")
    assert (code, out.strip()) == (0, "cap sms_weekly: at most 2 sms contact(s) per subscriber per P7D")
    code, _, err = with_store("caps", "set", "monthly", "--max", "4", "--per", "30days")
    assert code == 2 and "'30days' is not a period" in err
    assert with_store("caps", "set", "monthly", "--max", "4", "--per", "month")[0] == 0
    code, out, _ = with_store("caps", "list")
    assert [line.split()[0] for line in out.splitlines()] == ["monthly", "sms_weekly"]
    assert with_store("caps", "remove", "monthly")[0] == 0
    assert with_store("caps", "remove", "monthly")[0] == 2


def test_channel_rules_from_the_command_line(with_store):
    code, out, _ = with_store("channels", "list")
    assert code == 0 and "sms          quiet 21:00–08:00" in out and "hall         no quiet hours" in out
    code, out, _ = with_store("channels", "set", "outbound", "--seats", "120", "--calls-per-seat", "80",
                              "--quiet", "20:30-09:00")
    assert (code, out.strip()) == (0, "outbound     quiet 20:30–09:00    9,600 contacts a day     no unit cost")
    code, out, _ = with_store("channels", "set", "outbound", "--capacity", "none", "--unit-cost", "3.5")
    assert (code, out.strip()) == (0, "outbound     quiet 20:30–09:00    no daily limit           3.5 a contact")
    code, _, err = with_store("channels", "set", "outbound", "--unit-cost", "cheap")
    assert code == 2 and "give an amount per contact" in err
    code, _, err = with_store("channels", "set", "sms", "--quiet", "9pm-8am")
    assert code == 2 and "'9pm' is not a time of day (HH:MM, 24-hour)" in err
    code, _, err = with_store("channels", "set", "outbound", "--seats", "120")
    assert code == 2 and "--seats needs --calls-per-seat" in err


def test_refused_orders_are_listed_with_their_reason_and_retried_from_the_command_line(with_store, database_url):
    from touchwave import contacts, orders
    from touchwave.store import Store
    from touchwave.store.models import Outcome

    from .test_waves import members, seed

    store = Store.open(database_url)
    campaign = seed(store)
    buyer = members(store, campaign.id)[0]
    contacts.respond(store.engine, campaign.id, buyer, Outcome.ACCEPTED, "hall")
    taken = orders.take_due(store.engine, 10, orders.utcnow())
    orders.settle(store.engine, taken, [orders.Answer(taken[0].idempotency_key, False, None, "plan cannot take it")],
                  orders.utcnow())
    store.close()
    code, out, _ = with_store("orders", "list", "--status", "failed")
    assert code == 0 and buyer in out and "RBT_DOWNLOAD" in out and "plan cannot take it" in out
    code, _, err = with_store("orders", "retry", "1", "--all-failed")
    assert code == 2 and "not both" in err
    assert with_store("orders", "retry", "--all-failed")[1].strip() == "1 failed order(s) back in the outbox"
    assert "pending" in with_store("orders", "list")[1]


def test_tokens_from_the_command_line(with_store, database_url):
    from touchwave import tokens
    from touchwave.store import Store

    code, out, err = with_store("token", "create", "--role", "agent", "--user", "hall-0571")
    token = out.strip()
    assert code == 0 and token.startswith("tw_") and "shown once" in err
    store = Store.open(database_url)
    try:
        with store.engine.connect() as conn:
            principal = tokens.verify(conn, token)
    finally:
        store.close()
    assert (principal.user, principal.role.value) == ("hall-0571", "agent")
    code, out, _ = with_store("token", "list")
    assert "hall-0571" in out and "agent" in out and token not in out
    assert with_store("token", "revoke", "1")[0] == 0
    code, _, err = with_store("token", "revoke", "1")
    assert code == 2 and "no live token with id 1" in err


@pytest.fixture
def api_url(with_store, database_url):
    """The API (no Temporal) served over HTTP by uvicorn in a thread, as `touchwave api` would."""
    import threading

    import uvicorn

    from touchwave.api.app import create_app
    from touchwave.store import Store

    from .test_worker_crash import free_port, wait_for_port

    store = Store.open(database_url)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(store.engine), host="127.0.0.1", port=port,
                                          log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    store.close()


def test_the_lifecycle_from_the_command_line_goes_through_the_api_with_its_roles(with_store, api_url, monkeypatch):
    monkeypatch.setenv("TOUCHWAVE_API_URL", api_url)
    assert with_store("template", "upload", RINGBACK)[0] == 0
    assert with_store("subscribers", "synth", "--count", "50")[0] == 0
    tokens = {user: with_store("token", "create", "--role", role, "--user", user)[1].strip()
              for user, role in (("cfg", "configurer"), ("apr", "approver"), ("ops", "operator"))}

    def as_user(user: str, *argv: str) -> tuple[int, str, str]:
        monkeypatch.setenv("TOUCHWAVE_TOKEN", tokens[user])
        return with_store(*argv)

    code, out, _ = as_user("cfg", "campaign", "create", "ringback-tone-download", "--name", "RBT December")
    assert code == 0 and "«RBT December»: draft" in out
    campaign = out.split()[1].rstrip(":")
    # the wrong role is refused with the API's reason, and nothing changes
    code, _, err = as_user("cfg", "campaign", "approve", campaign)
    assert code == 2 and "403" in err and "role configurer may not do this" in err
    assert as_user("cfg", "campaign", "submit", campaign, "--comment", "for the December push")[0] == 0
    code, out, _ = as_user("apr", "campaign", "approve", campaign)
    assert code == 0 and "pending_approval → approved" in out
    code, _, err = as_user("apr", "campaign", "approve", campaign)
    assert code == 2 and "409" in err
    # this API has no Temporal: starting is refused with the reason, and the campaign stays approved
    code, _, err = as_user("ops", "campaign", "launch", campaign)
    assert code == 2 and "503" in err
    code, out, _ = as_user("ops", "campaign", "cancel", campaign, "--comment", "budget moved")
    assert code == 0 and "approved → cancelled" in out
    code, out, _ = as_user("ops", "campaign", "audit", campaign)
    lines = out.splitlines()
    assert [line.split()[3] for line in lines] == ["create", "submit", "approve", "cancel"]
    assert lines[1].split()[2] == "cfg" and lines[-1].endswith("budget moved")


def test_the_command_line_says_when_the_api_is_not_there_or_no_token_is_set(with_store, monkeypatch):
    monkeypatch.delenv("TOUCHWAVE_TOKEN", raising=False)
    code, _, err = with_store("campaign", "submit", "1")
    assert code == 2 and "set TOUCHWAVE_TOKEN" in err
    monkeypatch.setenv("TOUCHWAVE_TOKEN", "tw_nothing")
    monkeypatch.setenv("TOUCHWAVE_API_URL", "http://127.0.0.1:9")
    code, _, err = with_store("campaign", "submit", "1")
    assert code == 2 and "does not answer" in err and "Traceback" not in err
