"""The Airflow DAGs, run with `dag.test()` against a real Airflow metadata DB (SQLite,
migrated once per session), the test store and the time-skipping Temporal server."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from touchwave import campaigns
from touchwave.config import PROJECT_ROOT, Settings
from touchwave.segments import named
from touchwave.segments.catalog import read_catalog_file
from touchwave.segments.synthetic import DEMO_TAGS, as_text, load_population
from touchwave.store.catalog import read_catalog_file as read_offers, upsert_catalog
from touchwave.store.subscribers import synthetic
from touchwave.store.templates import upload
from touchwave.temporal import start_campaign
from touchwave.worker import build_worker

from .conftest import CATALOG_FILE, load_example
from .test_waves import CampaignWorker, adapters, members, sent_everyone, sim, until  # noqa: F401 (fixture)

DAGS = PROJECT_ROOT / "dags"
RUNNER = Path(__file__).with_name("airflow_runner.py")
ALL_DAGS = ["touchwave_import_tags", "touchwave_refresh_segments", "touchwave_sync_audiences"]
CPC_DAG = "touchwave_refresh_cpc"
RBT_RULE = {"all": [{"field": "has_ringback_tone", "op": "eq", "value": False},
                    {"field": "arpu", "op": "ge", "value": 30}]}


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """Environment for an Airflow process with its own home and a migrated metadata DB."""
    home = tmp_path_factory.mktemp("airflow")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS)}
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def run_dags(env: dict[str, str], *dag_ids: str) -> dict:
    done = subprocess.run([sys.executable, str(RUNNER), str(DAGS), *dag_ids], env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the DAG runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def test_every_dag_imports_without_errors(airflow_env):
    result = run_dags(airflow_env)
    assert result["errors"] == {}
    assert {*ALL_DAGS, CPC_DAG} <= set(result["dags"])


def test_the_cpc_dag_refits_when_due_and_not_otherwise(store, airflow_env):
    env = {**airflow_env, "TOUCHWAVE_DATABASE_URL": store.engine.url.render_as_string(hide_password=False)}

    def fits() -> int:
        with store.engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM cpc_fits")).scalar_one()

    result = run_dags(env, CPC_DAG)
    assert result["runs"][CPC_DAG]["state"] == "success" and fits() == 1
    # fitted today and no campaign ended since: the hourly run leaves the fit alone
    run_dags(env, CPC_DAG)
    assert fits() == 1
    campaign = seed_finished(store)
    run_dags(env, CPC_DAG)
    assert fits() == 2, f"campaign {campaign} finished after the fit"


def seed_finished(store) -> int:
    load_population(store.engine, 50, seed=5, today=date.today())
    with store.session.begin() as session:
        upsert_catalog(session, read_offers(CATALOG_FILE))
        upload(session, load_example("ringback_tone_download.json"), author="ana")
    campaign = campaigns.create(store, "ringback-tone-download", created_by="ana")
    campaigns.set_status(store.engine, campaign.id, campaigns.CampaignStatus.FINISHED)
    return campaign.id


def write_drop(folder: Path, day: date, rows, change: dict[str, dict]) -> Path:
    """The platform's drop for `day`: every synthetic subscriber's tags, with `change` applied."""
    names = [spec.name for spec in read_catalog_file(DEMO_TAGS)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"tags_{day:%Y%m%d}.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["msisdn", *names])
        for row in rows:
            tags = {**row.attributes, **change.get(row.msisdn, {})}
            writer.writerow([row.msisdn, *(as_text(tags.get(name)) for name in names)])
    return path


async def test_a_subscriber_who_qualifies_in_the_new_drop_joins_the_running_campaign(
        temporal, store, sim, airflow_env, tmp_path):
    today = date.today()
    population = list(synthetic(300, seed=5, today=today))
    load_population(store.engine, 300, seed=5, today=today)
    named.save(store.engine, "rbt_targets", RBT_RULE, "ana")
    template = load_example("ringback_tone_download.json")
    template["audience"] = {"segment": "rbt_targets"}
    template.pop("control_share")  # everyone at launch is contacted, and so is the newcomer
    with store.session.begin() as session:
        upsert_catalog(session, read_offers(CATALOG_FILE))
        upload(session, template, author="ana")
    campaign = campaigns.create(store, template["name"], created_by="ana")
    launch = set(members(store, campaign.id))
    newcomer = next(r.msisdn for r in population
                    if r.msisdn not in launch and r.attributes["arpu"] >= 30 and r.attributes["has_ringback_tone"])

    queue = f"dags-{campaign.id}-{store.engine.dialect.name}"
    worker = build_worker(temporal.client, store.engine, adapters(sim), task_queue=queue, batch_size=40)
    # the DAG signals the campaign's own workflow id, as in production
    handle = await start_campaign(temporal.client, campaign, queue, shard_size=100)
    async with CampaignWorker(worker, handle):
        await until(sent_everyone(store, campaign.id, "sms_broadcast", len(launch)))
        day = datetime.now(ZoneInfo(Settings.from_env().timezone)).date()
        write_drop(tmp_path / "drops", day, population, {newcomer: {"has_ringback_tone": False}})
        env = {**airflow_env, "TOUCHWAVE_DATABASE_URL": store.engine.url.render_as_string(hide_password=False),
               "TOUCHWAVE_TEMPORAL_ADDRESS": temporal.client.service_client.config.target_host,
               "AIRFLOW_VAR_TOUCHWAVE_TAG_DROP_DIR": str(tmp_path / "drops")}
        result = await asyncio.to_thread(run_dags, env, *ALL_DAGS)
        assert {dag: run["state"] for dag, run in result["runs"].items()} == dict.fromkeys(ALL_DAGS, "success")
        with store.engine.connect() as conn:
            cohort = conn.execute(text(
                "SELECT m.cohort FROM campaign_members m JOIN subscribers s ON s.id = m.subscriber_id "
                "WHERE m.campaign_id = :c AND s.msisdn = :m"), {"c": campaign.id, "m": newcomer}).scalar_one()
        assert cohort == 1
        outcome = await asyncio.wait_for(handle.result(), 60)
    assert outcome.cohorts == 2 and outcome.members == len(launch) + 1
    assert sim.sms_sent.get(newcomer) == 1
