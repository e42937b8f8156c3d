"""Call-centre adapter: create call tasks with the script; withdraw tasks not yet dialled."""

from __future__ import annotations

from collections.abc import Sequence

from touchwave.contacts import Delivery, Outgoing
from touchwave.store.models import ContactStatus

from channel_adapters.base import ChannelAdapter, ChannelError, Message


class OutboundAdapter(ChannelAdapter):
    """`POST /v1/calls/tasks` queues calls for agents (one campaign and script, many
    numbers, each with our task id); `POST /v1/calls/withdraw` takes back the ones not
    dialled yet (completion elsewhere must reach queued calls)."""

    channel = "outbound"

    def send(self, contacts: Sequence[Outgoing], message: Message) -> list[Delivery]:
        self._throttle(len(contacts))
        # the campaign and the agents' script once per batch, not once per task: a script
        # is a few hundred bytes, a task's id and number fifty
        response = self._post("/v1/calls/tasks", {
            "campaign": message.campaign_id,
            "script": message.script,
            "tasks": [{"id": c.idempotency_key, "to": c.msisdn} for c in contacts],
        })
        if response.status_code != 200:
            raise ChannelError(f"call centre refused the tasks: HTTP {response.status_code} {response.text[:200]}")
        results = {r["id"]: r for r in response.json()["results"]}
        return [
            Delivery(c.idempotency_key, ContactStatus.SENT, results[c.idempotency_key]["task_id"])
            if results[c.idempotency_key]["status"] == "queued"
            else Delivery(c.idempotency_key, ContactStatus.FAILED, None, results[c.idempotency_key].get("reason"))
            for c in contacts
        ]

    def withdraw(self, task_ids: Sequence[str]) -> list[str]:
        """Withdraw queued tasks; returns the ones the call centre took back."""
        if not task_ids:
            return []
        response = self._post("/v1/calls/withdraw", {"task_ids": list(task_ids)})
        if response.status_code != 200:
            raise ChannelError(f"call centre refused the withdrawal: HTTP {response.status_code}")
        return list(response.json()["withdrawn"])
