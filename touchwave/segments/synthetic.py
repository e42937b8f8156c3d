"""A synthetic population — subscribers and their tag snapshot — for demos, tests and benchmarks.

The subscribers go through the subscriber loader, their tags through the same import
as the platform's daily drop (catalog `campaign_templates/catalog/tags.json`), so a
demo exercises the real paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import Engine

from touchwave.config import TEMPLATES_DIR
from touchwave.segments.catalog import read_catalog_file, upsert_tags
from touchwave.segments.snapshots import KEY, ImportReport, import_rows
from touchwave.store.subscribers import SubscriberRow, bulk_load, synthetic

DEMO_TAGS = TEMPLATES_DIR / "catalog" / "tags.json"


def as_text(value: Any) -> str:
    """A value as the platform's CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_population(engine: Engine, count: int, seed: int = 0, today: date | None = None) -> ImportReport:
    """Load `count` synthetic subscribers and import their tags as the current snapshot."""
    rows = list(synthetic(count, seed=seed, today=today))
    bulk_load(engine, (SubscriberRow(r.msisdn, r.region, r.plan) for r in rows))
    specs = read_catalog_file(DEMO_TAGS)
    upsert_tags(engine, specs)
    names = [spec.name for spec in specs]

    def records() -> Iterator[tuple[int, list[str]]]:
        for line, row in enumerate(rows, start=2):
            yield line, [row.msisdn, *(as_text(row.attributes.get(name)) for name in names)]

    return import_rows(engine, [KEY, *names], records(), source=f"synthetic population (seed {seed})")
