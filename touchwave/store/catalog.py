"""The offer catalog: offers and their per-channel scripts, loaded from a JSON file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from touchwave.errors import UserError
from touchwave.events import catalog as event_catalog
from touchwave.jsonfile import read_json
from touchwave.store.models import Channel, Offer, Script
from touchwave.templates.compiler import Catalog, ScriptRef

CODE = r"^[A-Z][A-Z0-9_]{1,63}$"


class ScriptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=CODE)
    text: str = Field(min_length=1)


class OfferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=CODE)
    name: str = Field(min_length=1, max_length=200)
    product: str = Field(min_length=1, max_length=64)
    price: Decimal = Field(ge=0, decimal_places=2)
    business_line: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    description: str = ""
    scripts: dict[Channel, ScriptIn] = Field(min_length=1)


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    offers: list[OfferIn]


def read_catalog_file(path: str | Path) -> CatalogFile:
    data = read_json(path)
    try:
        catalog = CatalogFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: /{'/'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise UserError("\n".join(lines)) from None
    codes = [s.code for o in catalog.offers for s in o.scripts.values()]
    repeated = sorted(_repeated(codes) | _repeated([o.code for o in catalog.offers]))
    if repeated:
        raise UserError(f"{path}: these codes are used more than once: {', '.join(repeated)}")
    return catalog


def _repeated(codes: list[str]) -> set[str]:
    return {c for c in set(codes) if codes.count(c) > 1}


def upsert_catalog(session: Session, catalog: CatalogFile) -> tuple[int, int]:
    """Create or update every offer and script by code; returns (offers, scripts)."""
    offers = {o.code: o for o in session.scalars(select(Offer))}
    scripts = {s.code: s for s in session.scalars(select(Script))}
    script_count = 0
    for item in catalog.offers:
        offer = offers.get(item.code) or Offer(code=item.code)
        offer.name, offer.product, offer.price = item.name, item.product, item.price
        offer.business_line, offer.description = item.business_line, item.description
        session.add(offer)
        session.flush()
        for channel, script_in in item.scripts.items():
            script = scripts.get(script_in.code) or Script(code=script_in.code)
            script.offer_id, script.channel, script.text = offer.id, channel, script_in.text
            session.add(script)
            script_count += 1
    session.flush()
    return len(catalog.offers), script_count


def read_catalog(session: Session) -> Catalog:
    """What a template may reference, for the compiler."""
    rows = session.execute(select(Script.code, Offer.code, Script.channel).join(Offer, Script.offer_id == Offer.id))
    return Catalog(
        offers=frozenset(session.scalars(select(Offer.code))),
        scripts={code: ScriptRef(code, offer, str(channel)) for code, offer, channel in rows},
        events=event_catalog.load(session.connection()),
    )
