"""`make demo-postgres`'s Airflow: `airflow standalone` (api-server, scheduler,
dag-processor, triggerer) with its metadata on PostgreSQL and dags/ as its DAGs folder,
run against the demo's store — the native stand-in for the compose stack's Airflow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from touchwave.config import PROJECT_ROOT
from touchwave.errors import UserError


def fresh_postgres_database(url: str) -> str:
    """Drop and create the database `url` names (it must be a demo's: its name holds
    "demo"); the URL with psycopg 3 as its driver."""
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    name = parsed.database or ""
    if "demo" not in name:
        raise UserError(f"the demo drops and re-creates its database: give one whose name says demo, not {name!r}")
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        raise UserError(f"cannot prepare PostgreSQL database {name} at {parsed.host}:{parsed.port} ({exc})") from None
    finally:
        server.dispose()
    return parsed.render_as_string(hide_password=False)


class AirflowStandalone:
    """`async with AirflowStandalone(...) as airflow: await airflow.run_dag(id)`; leaving
    stops every Airflow process (they run in a process group of their own)."""

    def __init__(self, home: Path, metadata_url: str, store_url: str, temporal_address: str, port: int) -> None:
        self.home, self.port = home, port
        psycopg = make_url(metadata_url).set(drivername="postgresql+psycopg")
        bin_dir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": psycopg.render_as_string(hide_password=False),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC":
                psycopg.set(drivername="postgresql+psycopg_async").render_as_string(hide_password=False),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "TOUCHWAVE_DATABASE_URL": store_url,
            "TOUCHWAVE_TEMPORAL_ADDRESS": temporal_address,
        }
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _airflow(self, *args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            "airflow", *args, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await process.communicate()
        return process.returncode or 0, out.decode(errors="replace")

    async def __aenter__(self) -> AirflowStandalone:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise UserError(f"port {self.port} is already in use: is another Airflow (`make airflow`) running?")
        self.home.mkdir(parents=True, exist_ok=True)
        code, out = await self._airflow("db", "migrate")
        if code:
            raise UserError(f"airflow db migrate failed:\n{out[-2000:]}")
        log = open(self.home / "standalone.log", "wb")  # noqa: SIM115 (the process writes it until we stop it)
        self._process = await asyncio.create_subprocess_exec(
            "airflow", "standalone", env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + 180
        async with httpx.AsyncClient(timeout=3) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    health = (await client.get(f"{self.url}/api/v2/monitor/health")).json()
                    if all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler")):
                        return self
                if time.monotonic() > deadline or self._process.returncode is not None:
                    await self.__aexit__()
                    raise UserError(f"Airflow standalone did not come up; see {self.home / 'standalone.log'}")
                await asyncio.sleep(1)

    async def run_dag(self, dag_id: str, seconds: float = 240) -> str:
        """Trigger the DAG (once its file is parsed) and wait for the run's end state."""
        deadline = time.monotonic() + seconds
        while True:
            code, out = await self._airflow("dags", "trigger", dag_id, "-o", "json")
            if code == 0:
                run_id = json.loads(out.strip().splitlines()[-1])[0]["dag_run_id"]
                break
            if time.monotonic() > deadline:
                raise UserError(f"Airflow would not trigger {dag_id}:\n{out[-1500:]}")
            await asyncio.sleep(2)  # the dag-processor has not parsed dags/ yet
        while time.monotonic() < deadline:
            code, out = await self._airflow("dags", "list-runs", dag_id, "-o", "json")
            runs = json.loads(out.strip().splitlines()[-1]) if code == 0 else []
            state = next((r["state"] for r in runs if r["run_id"] == run_id), None)
            if state in ("success", "failed"):
                return state
            await asyncio.sleep(2)
        return "timed out"

    async def __aexit__(self, *exc) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            await self._process.wait()
        # the standalone's children (scheduler, api-server, …) share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
