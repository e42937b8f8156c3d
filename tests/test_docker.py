"""docker/: no Docker engine runs here, so the compose stack is checked against the code —
it parses, every touchwave variable it sets is one touchwave reads (and is documented),
each service's settings load, each command is a real command, every long-running
service has a health check, and Prometheus scrapes the ports the workers serve."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from touchwave.cli import build_parser
from touchwave.config import PROJECT_ROOT, Settings
from touchwave import metrics  # noqa: F401 (defines the metrics in the registry)

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict] = COMPOSE["services"]
TOUCHWAVE_IMAGE = "${TOUCHWAVE_IMAGE:-touchwave:latest}"
OURS = {name: s for name, s in SERVICES.items() if s.get("image") == TOUCHWAVE_IMAGE}
#: what else may be set on a touchwave-image service: Airflow's and prometheus_client's own
FOREIGN = re.compile(r"^(AIRFLOW__[A-Z_]+__[A-Z_]+|AIRFLOW_HOME|PROMETHEUS_MULTIPROC_DIR)$")
RUNTIME_CODE = ["touchwave", "activities", "workflows", "channel_adapters", "dags"]


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's `${VAR:-default}` with the defaults (or `env`), and `$$` as `$`."""
    env = env or {}
    value = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m.group(1), m.group(2) or ""), value)
    return value.replace("$$", "$")


def environment(service: dict) -> dict[str, str]:
    return {key: interpolate(str(value)) for key, value in (service.get("environment") or {}).items()}


def variables_read_by_touchwave() -> set[str]:
    names = set()
    for folder in RUNTIME_CODE:
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"\bTOUCHWAVE_[A-Z_]+\b", path.read_text(encoding="utf-8")))
    return names


def documented() -> set[str]:
    table = (DOCKER / "README.md").read_text(encoding="utf-8").split("## Configuration")[1].split("## Metrics")[0]
    return set(re.findall(r"^\| `(TOUCHWAVE_[A-Z_]+)` \|", table, re.MULTILINE))


def test_the_stack_has_every_service_the_design_names():
    assert {"postgres", "temporal", "temporal-ui", "api", "worker", "worker-sms", "worker-outbound", "orders",
            "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "simulator", "prometheus",
            "grafana"} <= set(SERVICES)
    assert SERVICES["simulator"]["profiles"] == ["simulator"]
    assert SERVICES["prometheus"]["profiles"] == SERVICES["grafana"]["profiles"] == ["monitoring"]
    assert "postgres12" == SERVICES["temporal"]["environment"]["DB"]


def test_every_touchwave_variable_the_stack_sets_is_read_and_documented():
    read, docs = variables_read_by_touchwave(), documented()
    assert read - {"TOUCHWAVE_TEST_DATABASE_URL"} <= docs, "variables touchwave reads but docker/README.md omits"
    for name, service in OURS.items():
        for key in environment(service):
            if key.startswith("TOUCHWAVE_"):
                assert key in read, f"{name} sets {key}, which touchwave never reads"
                assert key in docs, f"{name} sets {key}, which docker/README.md does not document"
            else:
                assert FOREIGN.match(key), f"{name} sets {key}: neither touchwave's nor its images' own"


@pytest.mark.parametrize("name", sorted(OURS))
def test_each_touchwave_service_loads_its_settings(name, monkeypatch):
    for key in [k for k in os.environ if k.startswith("TOUCHWAVE_")]:
        monkeypatch.delenv(key)
    for key, value in environment(SERVICES[name]).items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.database_url == "postgresql+psycopg://touchwave:touchwave@postgres:5432/touchwave"
    assert settings.temporal_address == "temporal:7233"
    assert set(settings.channel_queues) == {"sms", "outbound"}
    for channel in settings.worker_channels:
        assert channel in settings.channel_queues, f"{name} serves {channel}, which has no queue"
    if name.startswith("worker"):
        assert settings.metrics_port and settings.sdk_metrics_port


@pytest.mark.parametrize("name", sorted(n for n, s in OURS.items() if s["command"][0] == "touchwave"))
def test_each_touchwave_command_is_one_the_cli_knows(name):
    command = [interpolate(part) for part in SERVICES[name]["command"]]
    args = build_parser().parse_args(command[1:])
    assert callable(args.handler)


def test_every_long_running_service_has_a_health_check_and_dependencies_exist():
    for name, service in SERVICES.items():
        if service.get("restart") != "no":
            assert "healthcheck" in service, f"{name} has no health check"
        for needed, rule in (service.get("depends_on") or {}).items():
            assert needed in SERVICES, f"{name} depends on {needed}, which is not a service"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[needed], f"{name} waits for {needed} to be healthy: it has no check"


def test_airflow_runs_the_dags_folder_on_the_stack_postgresql():
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-init"):
        env = environment(SERVICES[name])
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/app/dags"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg_async://")
    init = (DOCKER / "postgres-init.sql").read_text(encoding="utf-8")
    assert "CREATE DATABASE touchwave;" in init and "CREATE DATABASE airflow;" in init


def test_prometheus_scrapes_the_ports_the_api_and_workers_serve():
    scrape = yaml.safe_load((DOCKER / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: job for job in scrape["scrape_configs"]}
    assert targets["touchwave-api"]["static_configs"][0]["targets"] == ["api:8000"]
    for job, variable in (("touchwave-workers", "TOUCHWAVE_METRICS_PORT"),
                          ("temporal-sdk", "TOUCHWAVE_SDK_METRICS_PORT")):
        [config] = targets[job]["dns_sd_configs"]
        workers = [n for n in OURS if n.startswith("worker")]
        assert sorted(config["names"]) == sorted(workers)
        assert {int(environment(SERVICES[w])[variable]) for w in workers} == {config["port"]}


def test_the_dashboard_shows_only_metrics_touchwave_exports():
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "touchwave-campaign.json").read_text(encoding="utf-8"))
    exported = {family.name for family in REGISTRY.collect()} | {"touchwave_order_outbox"}
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\btouchwave_[a-z_]+", target["expr"])}
    suffixes = re.compile(r"_(total|bucket|count|sum)$")
    assert used and {suffixes.sub("", name) for name in used} <= exported
    assert {p["gridPos"]["y"] for p in dashboard["panels"]} and dashboard["templating"]["list"][0]["name"] == "campaign"


def test_the_dockerfile_copies_what_exists_and_runs_the_api():
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        for source in shlex.split(line)[:-1]:
            assert source == "." or (PROJECT_ROOT / source).exists(), f"COPY {source}: no such file"
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE).group(1))
    assert build_parser().parse_args(cmd[1:]).handler.__name__ == "cmd_api"
    assert Path(PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").split()[0] == ".venv"
