"""BOSS/CRM adapter: hands accepted offers to the billing system as orders.

`POST /v1/orders` with a batch of orders, each carrying our idempotency key as its id;
BOSS answers per order: accepted (with its order number; a repeated id is acknowledged
with the same number, never ordered twice) or rejected (a permanent refusal, with the
reason). The rate is throttled to what BOSS may take from marketing (seed 004's flow
controller); 429/5xx and timeouts are retried with backoff by the base adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from channel_adapters.base import ChannelAdapter, ChannelError
from touchwave.orders import Answer


@dataclass(frozen=True)
class OrderRequest:
    idempotency_key: str
    msisdn: str
    offer: str
    campaign_id: int


class BossAdapter(ChannelAdapter):
    channel = "boss"

    def submit(self, orders: Sequence[OrderRequest]) -> list[Answer]:
        self._throttle(len(orders))
        response = self._post("/v1/orders", {"orders": [
            {"id": o.idempotency_key, "msisdn": o.msisdn, "offer": o.offer, "campaign": o.campaign_id} for o in orders
        ]})
        if response.status_code != 200:
            raise ChannelError(f"BOSS refused the batch: HTTP {response.status_code} {response.text[:200]}")
        results = {r["id"]: r for r in response.json()["results"]}
        answers = []
        for order in orders:
            result = results.get(order.idempotency_key)
            if result is None:
                raise ChannelError(f"BOSS did not answer for order {order.idempotency_key}")
            answers.append(Answer(order.idempotency_key, result["status"] == "accepted",
                                       result.get("order_id"), result.get("reason")))
        return answers
