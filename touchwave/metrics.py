"""Prometheus metrics of the API and the workers (prometheus_client).

Counters and histograms live in the process that does the work: workers count contacts,
suppressions and step dispatch; the API counts answers and times the offer view. The
order outbox's depth is read from the store when Prometheus scrapes the API, so every
API process reports the same number and none keeps a copy that goes stale.

The API serves `/metrics`; a worker with TOUCHWAVE_METRICS_PORT serves its own, and
Temporal's SDK metrics on TOUCHWAVE_SDK_METRICS_PORT. An API running several uvicorn workers
needs `PROMETHEUS_MULTIPROC_DIR` (prometheus_client's own variable) so that one scrape
sums every process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import Engine, text

#: counted per campaign too: a dashboard follows one running campaign (campaigns number in
#: the hundreds, not the millions: the label's cardinality stays small)
CONTACTS = Counter("touchwave_contacts", "Contacts handed to a channel, by campaign, channel and outcome "
                   "(sent, failed; shown for a passive channel's offer windows)", ["campaign", "channel", "outcome"])
SUPPRESSIONS = Counter("touchwave_suppressions", "Members a step did not contact, by campaign, channel and "
                       "reason (dnd, cap:<name>, arbitration…)", ["campaign", "channel", "reason"])
STEP_SECONDS = Histogram("touchwave_step_dispatch_seconds", "How long one step activity ran on one shard, "
                         "by channel (its count is the dispatch rate)", ["channel"],
                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900))
RESPONSES = Counter("touchwave_responses", "Customers' answers recorded, by campaign, channel and outcome",
                    ["campaign", "channel", "outcome"])
OFFER_VIEW_SECONDS = Histogram("touchwave_offer_view_seconds", "Offer view requests, by passive channel",
                               ["channel"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
EVENTS = Counter("touchwave_events", "Customer events received, by result "
                 "(accepted, duplicate, expired, rejected)", ["result"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def contacted(campaign_id: int, channel: str, sent: int, failed: int, passive: bool = False) -> None:
    if sent:
        CONTACTS.labels(str(campaign_id), channel, "shown" if passive else "sent").inc(sent)
    if failed:
        CONTACTS.labels(str(campaign_id), channel, "failed").inc(failed)


def suppressed(campaign_id: int, channel: str, by_reason: Mapping[str, int]) -> None:
    for reason, count in by_reason.items():
        SUPPRESSIONS.labels(str(campaign_id), channel, reason).inc(count)


class OutboxDepth(Collector):
    """`touchwave_order_outbox{status}`: orders by status, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily("touchwave_order_outbox", "Orders in the outbox to BOSS, by status "
                                   "(pending and sending: not yet delivered)", labels=["status"])
        with self.engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT status, count(*) FROM orders GROUP BY status")).all())
        for status in ("pending", "sending", "delivered", "failed"):
            family.add_metric([status], counts.pop(status, 0))
        for status, count in counts.items():
            family.add_metric([status], count)
        yield family


def registry_for_scrape(engine: Engine | None = None) -> CollectorRegistry:
    """What one scrape reports: this process (or, with PROMETHEUS_MULTIPROC_DIR, every
    process of the API), plus the outbox when the store is given."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_Process())
    if engine is not None:
        registry.register(OutboxDepth(engine))
    return registry


class _Process(Collector):
    """This process's own metrics (the default registry), under a registry of the scrape's."""

    def collect(self):
        return REGISTRY.collect()


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
