"""Flowchart template versions: upload (compile against the catalog, then store), list, show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.orm import Session

from touchwave.errors import UserError
from touchwave.store.catalog import read_catalog
from touchwave.store.models import FlowchartTemplate
from touchwave.templates.compiler import compile_template
from touchwave.templates.plan import Plan


@dataclass(frozen=True)
class TemplateVersion:
    name: str
    version: int
    content_hash: str
    author: str
    created_at: datetime
    plan: Plan
    content: dict[str, Any]

    @classmethod
    def of(cls, row: FlowchartTemplate) -> TemplateVersion:
        return cls(row.name, row.version, row.content_hash, row.author, row.created_at,
                   Plan.from_dict(row.plan), row.content)


@dataclass(frozen=True)
class TemplateSummary:
    name: str
    latest_version: int
    versions: int
    content_hash: str
    title: str
    author: str
    created_at: datetime


def upload(session: Session, document: Any, author: str, source: str | None = None) -> tuple[TemplateVersion, bool]:
    """Store `document` as the next version of its template.

    Returns the version and whether it is new: content equal to the latest version
    (by hash, so layout and key order do not count) stores nothing.
    Raises `TemplateInvalid` (nothing stored) if it does not compile against the catalog.
    """
    plan = compile_template(document, read_catalog(session), source)
    latest = session.scalars(
        select(FlowchartTemplate)
        .where(FlowchartTemplate.name == plan.template)
        .order_by(FlowchartTemplate.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.content_hash == plan.template_hash:
        return TemplateVersion.of(latest), False
    row = FlowchartTemplate(
        name=plan.template,
        version=(latest.version + 1) if latest else 1,
        content=document,
        content_hash=plan.template_hash,
        plan=plan.to_dict(),
        author=author,
    )
    session.add(row)
    session.flush()
    return TemplateVersion.of(row), True


def list_templates(session: Session) -> list[TemplateSummary]:
    """The latest version of every template, by name."""
    latest = (
        select(FlowchartTemplate.name, func.max(FlowchartTemplate.version).label("v"), func.count().label("n"))
        .group_by(FlowchartTemplate.name)
        .subquery()
    )
    rows = session.execute(
        select(FlowchartTemplate, latest.c.n)
        .join(latest, (FlowchartTemplate.name == latest.c.name) & (FlowchartTemplate.version == latest.c.v))
        .order_by(FlowchartTemplate.name)
    ).all()
    return [
        TemplateSummary(t.name, t.version, n, t.content_hash, t.plan.get("title", t.name), t.author, t.created_at)
        for t, n in rows
    ]


def get_template(session: Session, name: str, version: int | None = None) -> TemplateVersion:
    query = select(FlowchartTemplate).where(FlowchartTemplate.name == name)
    query = query.where(FlowchartTemplate.version == version) if version else query.order_by(FlowchartTemplate.version.desc())
    row = session.scalars(query.limit(1)).first()
    if row is None:
        known = session.scalars(select(FlowchartTemplate.name).distinct().order_by(FlowchartTemplate.name)).all()
        if known and name in known:
            raise UserError(f'template "{name}" has no version {version}')
        raise UserError(f'no template named "{name}"' + (f"; uploaded: {', '.join(known)}" if known else "; none uploaded yet"))
    return TemplateVersion.of(row)


_PLAN = select(FlowchartTemplate.plan).where(FlowchartTemplate.id == bindparam("template_id"))
#: compiled plans by store and template version id: versions never change, so each is read once
_PLANS: dict[tuple[str, int], Plan] = {}


def plan_of(conn: Connection, template_id: int) -> Plan:
    """The compiled plan of a template version (by its row id), read once per process."""
    key = (str(conn.engine.url), template_id)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = Plan.from_dict(conn.execute(_PLAN, {"template_id": template_id}).scalar_one())
    return plan
