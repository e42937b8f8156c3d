# touchwave — the two commands: `make demo` and `make test` (plus `make bench`).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TW := $(VENV)/bin/touchwave
STAMP := $(VENV)/.installed
# pip warns about this machine's unused local indexes; keep the output readable
QUIET_PIP := { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: install test browser demo demo-postgres bench airflow clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "touchwave needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing touchwave and its dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	@$(PY) -m pip install --quiet -e '.[test]' 2>&1 | $(QUIET_PIP)
	@touch $@

test: install browser
	$(PY) -m pytest

# the console's browser tests run Debian's Chromium (Playwright drives it; it never downloads
# a browser); the CJK font draws the templates' Chinese labels in the screenshots
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@missing=$$(for p in $(BROWSER_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's $$missing for the console's browser tests ..."; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: install
	@echo "== every template in campaign_templates/ against the schema and the graph rules"
	@$(TW) template validate campaign_templates/*.json
	@echo "== the seed-002 ringback-tone campaign on the embedded stack (Temporal dev server + UI, worker, API, simulator, SQLite)"
	@$(TW) demo

# the same demo on PostgreSQL (this machine's, or DEMO_POSTGRES_URL's), with Airflow standalone
# beside the stack, its metadata on that server too: the compose stack's services, natively
DEMO_POSTGRES_URL ?= postgresql://postgres@127.0.0.1:5432/touchwave_demo

demo-postgres: install
	@echo "== the demo on PostgreSQL ($(DEMO_POSTGRES_URL)) with Airflow standalone (metadata on PostgreSQL)"
	@$(TW) demo --postgres $(DEMO_POSTGRES_URL) --airflow

bench: install
	$(PY) bench/load_subscribers.py
	$(PY) bench/bulk_waves.py
	$(PY) bench/segments.py
	$(PY) bench/policy.py
	$(PY) bench/offer_view.py
	$(PY) bench/events.py
	$(PY) bench/cpc_sim.py

# Airflow standalone (its metadata DB in SQLite under var/airflow) with dags/ as its DAGs
# folder, running against the same touchwave store and Temporal as `touchwave dev`.
AIRFLOW_ENV := PATH=$(CURDIR)/$(VENV)/bin:$$PATH AIRFLOW_HOME=$(CURDIR)/var/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False AIRFLOW__API__PORT=$${AIRFLOW_PORT:-8080} \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$${AIRFLOW_PORT:-8080}/execution/ \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True TOUCHWAVE_VAR_DIR=$${TOUCHWAVE_VAR_DIR:-$(CURDIR)/var}

airflow: install
	@mkdir -p var/airflow var/tag_drops
	@echo "== Airflow UI at http://127.0.0.1:$${AIRFLOW_PORT:-8080} (local admin, no sign-in); DAGs from dags/;"
	@echo "   the day's tag drop goes to var/tag_drops/tags_YYYYMMDD.csv[.gz]; Ctrl-C stops Airflow"
	$(AIRFLOW_ENV) $(VENV)/bin/airflow standalone

clean:
	rm -rf $(VENV) var .pytest_cache
