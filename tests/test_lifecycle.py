"""Tokens, roles and the campaign lifecycle over the API: draft → submitted → approved →
running → finished, every step by the right role and in the audit log."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from touchwave import campaigns, tokens
from touchwave.api.app import create_app
from touchwave.worker import build_worker

from .conftest import api_client, load_example
from .test_waves import CampaignWorker, adapters, seed, sim  # noqa: F401 (fixture)


def test_every_endpoint_wants_a_valid_token(store):
    app = create_app(store.engine)
    anonymous = api_client(store.engine)
    anonymous.headers.pop("Authorization")
    routes = [(m, r.path) for r in app.routes if r.path.startswith("/v1") for m in r.methods]
    assert len(routes) >= 18
    for method, path in routes:
        url = path.replace("{msisdn}", "13800000001").replace("{campaign_id}", "1")
        # the offer view checks its token on the connection that reads the offers, after
        # FastAPI has checked the query: give it a well-formed one
        url += "?channel=hall" if url.endswith("/offers") else ""
        assert anonymous.request(method, url).status_code == 401, (method, path)
        answer = anonymous.request(method, url, headers={"Authorization": "Bearer tw_not-a-token"})
        assert answer.status_code == 401 and answer.json()["detail"] == "the token is unknown or revoked"


def test_a_role_may_only_do_its_own_work_and_a_revoked_token_nothing(store):
    analyst = api_client(store.engine, "analyst")
    answer = analyst.post("/v1/responses", json={"campaign_id": 1, "msisdn": "13800000001", "outcome": "accepted",
                                                 "channel": "hall"})
    assert answer.status_code == 403 and "it takes agent" in answer.json()["detail"]
    assert api_client(store.engine, "agent").post("/v1/campaigns", json={"template": "x"}).status_code == 403
    admin = api_client(store.engine, "admin")
    made = admin.post("/v1/tokens", json={"user": "lin", "role": "approver"})
    assert made.status_code == 201 and made.json()["token"].startswith("tw_")
    [lin] = [t for t in tokens.listed(store.engine) if t.user == "lin"]
    tokens.revoke(store.engine, lin.id)
    revoked = admin.get("/v1/campaigns/1", headers={"Authorization": f"Bearer {made.json()['token']}"})
    assert revoked.status_code == 401


def test_a_template_is_validated_uploaded_and_its_campaign_walked_through_approval(store):
    seed(store)
    ana = api_client(store.engine, "configurer", "ana")
    template = load_example("ringback_tone_download.json") | {"name": "ringback-api"}
    broken = template | {"priority": 101}
    refused = ana.post("/v1/templates/validate", json=broken)
    assert refused.status_code == 422
    assert [(p["path"], "at most 100" in p["message"]) for p in refused.json()["detail"]] == [("/priority", True)]
    assert ana.post("/v1/templates/validate", json=template).status_code == 200
    uploaded = ana.post("/v1/templates", json=template).json()
    assert (uploaded["name"], uploaded["version"], uploaded["new"]) == ("ringback-api", 1, True)
    assert ana.post("/v1/campaigns", json={"template": "no-such"}).status_code == 404
    assert ana.post("/v1/campaigns", json={"template": 7}).status_code == 422
    draft = ana.post("/v1/campaigns", json={"template": "ringback-api"}).json()
    cid = draft["id"]
    assert draft["status"] == "draft" and draft["members"] > 0

    assert ana.post(f"/v1/campaigns/{cid}/approve").status_code == 403  # a configurer does not approve
    assert ana.post(f"/v1/campaigns/{cid}/submit", json={"comment": "for the December push"}).json()["to_status"] \
        == "pending_approval"
    also_ana = api_client(store.engine, "approver", "ana")
    own = also_ana.post(f"/v1/campaigns/{cid}/approve")
    assert own.status_code == 403 and "another approver" in own.json()["detail"]
    bo = api_client(store.engine, "approver", "bo")
    assert bo.post(f"/v1/campaigns/{cid}/reject", json={"comment": "script too long"}).json()["to_status"] == "draft"
    ana.post(f"/v1/campaigns/{cid}/submit")
    assert bo.post(f"/v1/campaigns/{cid}/approve").json()["to_status"] == "approved"
    twice = bo.post(f"/v1/campaigns/{cid}/approve")
    assert twice.status_code == 409 and "is approved" in twice.json()["detail"]
    operator = api_client(store.engine, "operator", "chen")
    assert operator.post(f"/v1/campaigns/{cid}/start").status_code == 503  # this app has no Temporal
    assert operator.post(f"/v1/campaigns/{cid}/cancel", json={"comment": "budget cut"}).json()["to_status"] \
        == "cancelled"
    assert operator.post("/v1/campaigns/999/cancel").status_code == 404
    trail = [(a["actor"], a["action"], a["from_status"], a["to_status"], a["comment"])
             for a in api_client(store.engine, "analyst").get(f"/v1/campaigns/{cid}/audit").json()]
    assert trail == [
        ("ana", "create", None, "draft", None),
        ("ana", "submit", "draft", "pending_approval", "for the December push"),
        ("bo", "reject", "pending_approval", "draft", "script too long"),
        ("ana", "submit", "draft", "pending_approval", None),
        ("bo", "approve", "pending_approval", "approved", None),
        ("chen", "cancel", "approved", "cancelled", "budget cut"),
    ]


async def test_an_operator_starts_an_approved_campaign_and_its_workflow_runs(temporal, store, sim):
    campaign = seed(store)
    campaigns.set_status(store.engine, campaign.id, "approved")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    app = create_app(store.engine, temporal=temporal.client, task_queue=queue)
    token = tokens.create(store.engine, "chen", "operator")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                 headers={"Authorization": f"Bearer {token}"}) as api:
        started = await api.post(f"/v1/campaigns/{campaign.id}/start")
        assert started.status_code == 200, started.text
        handle = temporal.client.get_workflow_handle(campaign.workflow_id)
        async with CampaignWorker(build_worker(temporal.client, store.engine, adapters(sim), task_queue=queue,
                                               batch_size=40), handle):
            # time skips on request: result() on a handle fetched by id met an empty long
            # poll from the time-skipping server ("No completion event found")
            for _ in range(60):
                if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                    break
                await temporal.sleep(timedelta(days=1))
            assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        shown = (await api.get(f"/v1/campaigns/{campaign.id}")).json()
    assert shown["status"] == "finished"
    assert shown["progress"]["steps"]["sms_broadcast"]["statuses"]["sent"] == campaign.members


@pytest.mark.parametrize("body", [{"comment": 5}, {"comment": "x" * 2001}])
def test_a_malformed_step_body_is_a_422(store, body):
    campaign = seed(store)
    answer = api_client(store.engine, "configurer").post(f"/v1/campaigns/{campaign.id}/submit", json=body)
    assert answer.status_code == 422


def test_the_campaign_list_shows_the_newest_first_with_status(store):
    first, second = seed(store), campaigns.create(store, "ringback-tone-download", created_by="carla")
    analyst = api_client(store.engine, "analyst")
    listed = analyst.get("/v1/campaigns")
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert [r["id"] for r in rows] == [second.id, first.id]
    assert rows[0]["status"] == "draft" and rows[0]["created_by"] == "carla"
    assert rows[0]["template"] == "ringback-tone-download" and rows[0]["template_version"] == 1
    assert [r["id"] for r in analyst.get("/v1/campaigns", params={"limit": 1}).json()] == [second.id]
    assert api_client(store.engine, "agent").get("/v1/campaigns").status_code == 403
