"""`touchwave api`: the API on its own, as production serves it — uvicorn with several
worker processes, each building the app from TOUCHWAVE_* variables (uvicorn's factory)."""

from __future__ import annotations

from fastapi import FastAPI
from temporalio.client import Client

from channel_adapters.outbound import OutboundAdapter
from touchwave.api.app import create_app
from touchwave.config import Settings
from touchwave.store.db import make_engine


def app() -> FastAPI:
    """One worker process's app: the store at TOUCHWAVE_DATABASE_URL, the call centre at
    TOUCHWAVE_CALL_CENTRE_URL (withdrawing queued calls on an answer), Temporal at
    TOUCHWAVE_TEMPORAL_ADDRESS, connected when the worker starts."""
    settings = Settings.from_env()

    async def connect() -> Client:
        return await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)

    return create_app(make_engine(settings.database_url), OutboundAdapter(settings.call_centre_url),
                      task_queue=settings.task_queue, connect=connect)


def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run("touchwave.api.server:app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", lifespan="on")
