"""The contract every active channel adapter keeps: send a batch, close.

Vendor errors become `ChannelError` here and nowhere else; what a gateway says about
each message becomes a `Delivery` for the contact ledger.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx

from touchwave.contacts import Delivery, Outgoing

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


class ChannelError(Exception):
    """The channel could not be reached or kept failing; the activity retries the batch."""


@dataclass(frozen=True)
class Message:
    """What a step sends: its offer and that channel's script."""

    campaign_id: int
    step_id: str
    offer: str
    script: str


class ChannelAdapter:
    """Base for HTTP channel adapters: a client on an injectable transport, retries with
    backoff on 429/5xx/timeouts, and throttling to the gateway's rate."""

    channel: str = ""

    def __init__(self, base_url: str, transport: httpx.BaseTransport | None = None, *,
                 rate_per_second: float | None = None, max_attempts: int = 5, backoff_seconds: float = 0.2,
                 timeout_seconds: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = httpx.Client(base_url=base_url, transport=transport, timeout=timeout_seconds)
        self.rate_per_second = rate_per_second
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self._next_slot = 0.0

    def send(self, contacts: Sequence[Outgoing], message: Message) -> list[Delivery]:
        raise NotImplementedError

    def close(self) -> None:
        self.client.close()

    def _throttle(self, count: int) -> None:
        """Space batches so that `count` messages fit the gateway's rate."""
        if not self.rate_per_second:
            return
        wait = self._next_slot - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self._next_slot = max(self._next_slot, time.monotonic()) + count / self.rate_per_second

    def _post(self, path: str, payload: dict) -> httpx.Response:
        """POST with retries: 429 and 5xx and transport errors back off and try again."""
        delay = self.backoff_seconds
        for attempt in range(1, self.max_attempts + 1):
            with _mapped_errors(path) as failure:
                response = self.client.post(path, json=payload)
                if response.status_code not in RETRYABLE_STATUS:
                    return response
                failure.append(f"HTTP {response.status_code}")
                retry_after = response.headers.get("retry-after")
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.max_attempts:
                self.sleep(delay)
                delay *= 2
        raise ChannelError(f"{self.channel}: {path} kept failing after {self.max_attempts} attempts")


@contextlib.contextmanager
def _mapped_errors(path: str) -> Iterator[list[str]]:
    """Timeouts and connection failures are retried like a 5xx; the rest is ours."""
    failure: list[str] = []
    try:
        yield failure
    except (httpx.TimeoutException, httpx.NetworkError) as exc:
        failure.append(type(exc).__name__)
