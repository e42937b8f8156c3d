"""`make demo` runs for real: the embedded stack (Temporal dev server, worker, API,
simulator) takes the ringback-tone campaign through its three waves and stops cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL


def test_the_demo_runs_the_campaign_end_to_end_and_leaves_nothing_running(tmp_path):
    touchwave = Path(sys.executable).parent / "touchwave"
    env = {**os.environ, "TOUCHWAVE_VAR_DIR": str(tmp_path / "var")}
    env.pop("TOUCHWAVE_DATABASE_URL", None)
    result = subprocess.run([str(touchwave), "demo", "--subscribers", "2000", "--seconds-per-day", "0.3"],
                            capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout
    assert "http://127.0.0.1:8233/namespaces/default/workflows/campaign-1" in out
    assert "campaign finished" in out
    assert "Outbound calls placed to members who had already answered: 0." in out
    final = out.split("campaign finished")[-2].splitlines()
    row = {line.split()[0]: line.split() for line in final if line.startswith(("sms_broadcast", "outbound_call"))}
    assert int(row["sms_broadcast"][3]) > 1000 and int(row["outbound_call"][3]) > 0
    # the effect report: the control group held out and the uplift measured against it
    assert "held out as the control group" in out and "uplift" in out.split("held out as the control group")[1]
    # the event-triggered part: events over the API, each match's SMS claimed at once
    entered = int(out.split("data-usage events, ")[1].split(" matched")[0])
    assert entered > 0 and f"their add-on SMS: {entered} claimed for the gateway" in out
    leftover = subprocess.run(["pgrep", "-f", "--", f"--db-filename {tmp_path}"], capture_output=True)
    assert leftover.returncode == 1, "the Temporal dev server was left running"


def _demo_database(url: str) -> str:
    """A database of its own on the test server (the demo drops and creates it)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql", database=f"{parsed.database}_touchwave_demo").render_as_string(
        hide_password=False)


if POSTGRES_URL:  # CI sets it (.ci/run); without a PostgreSQL server there is nothing to run this on

    def test_the_demo_runs_on_postgresql_with_airflow_standalone_beside_it(tmp_path):
        """`make demo-postgres`: the store on PostgreSQL, Airflow's metadata on the same
        server, and Airflow's scheduler running the CPC refit DAG against the demo's store."""
        touchwave = Path(sys.executable).parent / "touchwave"
        env = {**os.environ, "TOUCHWAVE_VAR_DIR": str(tmp_path / "var")}
        env.pop("TOUCHWAVE_DATABASE_URL", None)
        database = _demo_database(POSTGRES_URL)
        result = subprocess.run([str(touchwave), "demo", "--subscribers", "2000", "--seconds-per-day", "0.3",
                                 "--postgres", database, "--airflow"], capture_output=True, text=True, env=env,
                                timeout=420)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        out = result.stdout
        assert re.search(rf"store postgresql\+psycopg://\S+/{make_url(database).database}\b", out)
        assert "campaign finished" in out
        assert "Outbound calls placed to members who had already answered: 0." in out
        assert "Airflow standalone up: UI http://127.0.0.1:8080" in out
        assert re.search(r"Airflow ran touchwave_refresh_cpc: success; the CPC model is fitted on [\d,]+ contacts", out)
        engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM cpc_fits")).scalar_one() >= 1
            assert conn.execute(text("SELECT status FROM campaigns WHERE id = 1")).scalar_one() == "finished"
        engine.dispose()
        for leftover in ("airflow standalone", "airflow scheduler", f"--db-filename {tmp_path}"):
            assert subprocess.run(["pgrep", "-f", "--", leftover], capture_output=True).returncode == 1, \
                f"{leftover} was left running"
