"""SMS gateway adapter: batch submit with per-message ids (our idempotency key)."""

from __future__ import annotations

from collections.abc import Sequence

from touchwave.contacts import Delivery, Outgoing
from touchwave.store.models import ContactStatus

from channel_adapters.base import ChannelAdapter, ChannelError, Message


class SmsAdapter(ChannelAdapter):
    """`POST /v1/sms/batch` (one text, many recipients, each with our message id) → one
    result per message: accepted (with the gateway's message id) or rejected (a
    permanent failure for that number, with the reason)."""

    channel = "sms"

    def send(self, contacts: Sequence[Outgoing], message: Message) -> list[Delivery]:
        self._throttle(len(contacts))
        response = self._post("/v1/sms/batch", {
            "text": message.script,
            "messages": [{"id": c.idempotency_key, "to": c.msisdn} for c in contacts],
        })
        if response.status_code != 200:
            raise ChannelError(f"sms gateway refused the batch: HTTP {response.status_code} {response.text[:200]}")
        results = {r["id"]: r for r in response.json()["results"]}
        deliveries = []
        for contact in contacts:
            result = results.get(contact.idempotency_key)
            if result is None:
                raise ChannelError(f"sms gateway did not answer for message {contact.idempotency_key}")
            if result["status"] == "accepted":
                deliveries.append(Delivery(contact.idempotency_key, ContactStatus.SENT, result.get("message_id")))
            else:
                deliveries.append(Delivery(contact.idempotency_key, ContactStatus.FAILED, None,
                                           result.get("reason", "rejected")))
        return deliveries
