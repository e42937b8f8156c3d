"""The simulator's logic as a plain object: tests drive it through `httpx.MockTransport`
(`transport()`), the dev stack serves it over HTTP (`app.py`).

It keeps what a real gateway, call centre and billing system keep — messages by id (so
a repeated id is not sent twice), call tasks that are queued, dialled or withdrawn,
orders by id (placed once) — and plays the customers: after a contact some accept, decline or consider, like real replies.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class CustomerModel:
    """Chance of each answer after a contact, per channel (the rest do not answer)."""

    accept: dict[str, float] = field(default_factory=lambda: {"sms": 0.02, "outbound": 0.15})
    decline: dict[str, float] = field(default_factory=lambda: {"sms": 0.01, "outbound": 0.10})
    consider: dict[str, float] = field(default_factory=lambda: {"sms": 0.01, "outbound": 0.05})

    def answer(self, channel: str, rng: random.Random, msisdn: str | None = None,
               campaign_id: int | None = None) -> str | None:
        """One customer's answer after a contact (None: no answer). This model is the same
        for everyone; a model of individual customers can use `msisdn` and `campaign_id`."""
        roll = rng.random()
        for outcome, table in (("accepted", self.accept), ("declined", self.decline), ("considering", self.consider)):
            roll -= table.get(channel, 0.0)
            if roll < 0:
                return outcome
        return None


@dataclass(frozen=True)
class SimulatedOutcome:
    campaign_id: int
    msisdn: str
    outcome: str
    channel: str


@dataclass(slots=True)
class CallTask:
    task_id: str
    key: str
    msisdn: str
    campaign_id: int
    #: what the agent reads out (the batch's script)
    script: str = ""
    state: str = "queued"  # queued → dialled | withdrawn


class Simulator:
    """SMS gateway + call centre + BOSS + customers. Thread-safe: adapters call it from workers."""

    def __init__(self, seed: int = 0, customers: CustomerModel | None = None, *,
                 fail_next: int = 0, timeout_next: int = 0, reject_numbers: set[str] | None = None,
                 latency_seconds: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.customers = customers or CustomerModel()
        #: answer the next N requests with HTTP 500, then the next M by timing out
        self.fail_next = fail_next
        self.timeout_next = timeout_next
        #: numbers the gateway permanently rejects (HTTP 200, status rejected)
        self.reject_numbers = reject_numbers or set()
        #: how long each request takes (a slow gateway)
        self.latency_seconds = latency_seconds
        self.sms: dict[str, str] = {}  # message id (our key) → the gateway's id
        self.sms_sent = Counter()  # msisdn → messages actually sent
        self.tasks: dict[str, CallTask] = {}
        self._task_by_key: dict[str, CallTask] = {}
        self.dials = Counter()  # msisdn → calls actually dialled
        self.outcomes: list[SimulatedOutcome] = []
        self.requests = Counter()
        self.orders: dict[str, str] = {}  # order id (our key) → BOSS's order number
        self.ordered = Counter()  # (msisdn, offer) → orders actually placed
        #: offers BOSS refuses (e.g. the customer's plan cannot take them)
        self.refuse_offers: set[str] = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- transport ----------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        with self._lock:
            self.requests[request.url.path] += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return httpx.Response(500, json={"error": "gateway busy"})
            if self.timeout_next > 0:
                self.timeout_next -= 1
                raise httpx.ReadTimeout("simulated timeout", request=request)
            body = json.loads(request.content or b"{}")
            route = {
                ("POST", "/v1/sms/batch"): self._sms_batch,
                ("POST", "/v1/calls/tasks"): self._call_tasks,
                ("POST", "/v1/calls/withdraw"): self._withdraw,
                ("POST", "/v1/orders"): self._orders,
            }.get((request.method, request.url.path))
            if route is None:
                return httpx.Response(404, json={"error": f"no route {request.method} {request.url.path}"})
            return httpx.Response(200, json=route(body))

    # -- SMS gateway ------------------------------------------------------------------------

    def _sms_batch(self, body: dict) -> dict:
        results = []
        for message in body["messages"]:
            key, msisdn = message["id"], message["to"]
            if msisdn in self.reject_numbers:
                results.append({"id": key, "status": "rejected", "reason": "number not in service"})
                continue
            if key not in self.sms:  # a repeated id is acknowledged, not sent again
                self.sms[key] = f"sms-{next(self._ids)}"
                self.sms_sent[msisdn] += 1
                self._customer_answers(_campaign_of(key), msisdn, "sms")
            results.append({"id": key, "status": "accepted", "message_id": self.sms[key]})
        return {"results": results}

    # -- call centre ------------------------------------------------------------------------

    def _call_tasks(self, body: dict) -> dict:
        results = []
        campaign, script = int(body["campaign"]), body.get("script", "")
        for task in body["tasks"]:
            key = task["id"]
            existing = self._task_by_key.get(key)  # a repeated id is the same task, not a new call
            if existing is None:
                existing = CallTask(f"call-{next(self._ids)}", key, task["to"], campaign, script)
                self.tasks[existing.task_id] = existing
                self._task_by_key[key] = existing
            results.append({"id": key, "status": "queued", "task_id": existing.task_id})
        return {"results": results}

    def _withdraw(self, body: dict) -> dict:
        withdrawn, dialled = [], []
        for task_id in body["task_ids"]:
            task = self.tasks.get(task_id)
            if task and task.state == "queued":
                task.state = "withdrawn"
                withdrawn.append(task_id)
            elif task:
                dialled.append(task_id)
        return {"withdrawn": withdrawn, "dialled": dialled}

    def dial_queued(self) -> int:
        """The agents work through the queue: each queued task is dialled once."""
        with self._lock:
            queued = [t for t in self.tasks.values() if t.state == "queued"]
            for task in queued:
                task.state = "dialled"
                self.dials[task.msisdn] += 1
                self._customer_answers(task.campaign_id, task.msisdn, "outbound")
        return len(queued)

    # -- BOSS ---------------------------------------------------------------------------------

    def _orders(self, body: dict) -> dict:
        results = []
        for order in body["orders"]:
            key = order["id"]
            if order["offer"] in self.refuse_offers:
                results.append({"id": key, "status": "rejected", "reason": f"offer {order['offer']} not orderable"})
                continue
            if key not in self.orders:  # a repeated id is the same order, not a second one
                self.orders[key] = f"boss-{next(self._ids)}"
                self.ordered[(order["msisdn"], order["offer"])] += 1
            results.append({"id": key, "status": "accepted", "order_id": self.orders[key]})
        return {"results": results}

    # -- customers --------------------------------------------------------------------------

    def _customer_answers(self, campaign_id: int, msisdn: str, channel: str) -> None:
        outcome = self.customers.answer(channel, self.rng, msisdn=msisdn, campaign_id=campaign_id)
        if outcome:
            self.outcomes.append(SimulatedOutcome(campaign_id, msisdn, outcome, channel))

    def sms_recipients(self) -> list[str]:
        with self._lock:
            return list(self.sms_sent)

    def drain_outcomes(self) -> list[SimulatedOutcome]:
        """The customers' answers since the last call, to post to touchwave."""
        with self._lock:
            drained, self.outcomes = self.outcomes, []
        return drained


def _campaign_of(idempotency_key: str) -> int:
    return int(idempotency_key.split(":", 1)[0])
