"""Alembic environment: runs on the engine touchwave hands over, or on TOUCHWAVE_DATABASE_URL."""

from alembic import context

from touchwave.config import Settings
from touchwave.store.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    from touchwave.store.db import make_engine

    engine = make_engine(Settings.from_env().database_url)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
