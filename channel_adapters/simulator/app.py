"""The simulator over HTTP (an ASGI app for uvicorn), and the customers it plays.

`play_customers` is the customers' side: the answers to SMS and calls are posted to
touchwave's `/v1/responses`, like the real gateway and call centre do, and some
customers walk into a hall, where the agent's screen shows the offer and they answer.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channel_adapters.simulator.core import Simulator

log = logging.getLogger(__name__)


def create_app(sim: Simulator) -> Starlette:
    async def proxy(request: Request) -> Response:
        body = await request.body()
        outgoing = httpx.Request(request.method, str(request.url), content=body, headers=dict(request.headers))
        try:
            answer = await asyncio.to_thread(sim.handle, outgoing)
        except httpx.TimeoutException:
            await asyncio.sleep(1)
            return Response(status_code=504)
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST", "DELETE"])])


async def play_customers(sim: Simulator, api_url: str, token: str, every_seconds: float = 0.5,
                         walk_ins_per_tick: int = 40, hall_accept: float = 0.12, hall_decline: float = 0.05,
                         seed: int = 0) -> None:
    """Until cancelled: agents dial queued calls, customers answer, some walk into a hall.
    The agents call touchwave's API with `token` (role agent)."""
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=api_url, timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            await asyncio.sleep(every_seconds)
            await asyncio.to_thread(sim.dial_queued)
            for outcome in sim.drain_outcomes():
                await _post(client, {"campaign_id": outcome.campaign_id, "msisdn": outcome.msisdn,
                                     "outcome": outcome.outcome, "channel": outcome.channel, "agent": "simulator"})
            known = sim.sms_recipients()
            for msisdn in rng.sample(known, min(walk_ins_per_tick, len(known))):
                shown = await client.get(f"/v1/customers/{msisdn}/offers", params={"channel": "hall"})
                if shown.status_code != 200 or not shown.json():
                    continue
                roll = rng.random()
                answer = "accepted" if roll < hall_accept else "declined" if roll < hall_accept + hall_decline else None
                if answer:
                    await _post(client, {"campaign_id": shown.json()[0]["campaign_id"], "msisdn": msisdn,
                                         "outcome": answer, "channel": "hall", "agent": "hall-sim"})


async def _post(client: httpx.AsyncClient, body: dict) -> None:
    answer = await client.post("/v1/responses", json=body)
    if answer.status_code not in (200, 409):
        log.warning("touchwave refused a simulated response", extra={"status": answer.status_code,
                                                                     "body": answer.text[:200]})
