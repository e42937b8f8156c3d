"""The store: SQLAlchemy models, migrations and the set-based operations on them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from touchwave.config import hide_password
from touchwave.errors import StoreUnavailable
from touchwave.store.db import make_engine, require_current, session_factory


@dataclass(frozen=True)
class Store:
    engine: Engine
    session: sessionmaker[Session]

    @classmethod
    def open(cls, url: str, migrated: bool = True) -> Store:
        """Connect to `url`; with `migrated`, refuse a schema that is not at the code's revision."""
        try:
            engine = make_engine(url)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise StoreUnavailable(f"cannot use the database URL {hide_password(url)!r}: {exc}") from exc
        if migrated:
            require_current(engine)
        return cls(engine, session_factory(engine))

    def close(self) -> None:
        self.engine.dispose()
