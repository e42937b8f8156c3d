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

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "touchwave needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing touchwave and its dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	@$(PY) -m pip install --quiet -e '.[test]' 2>&1 | $(QUIET_PIP)
	@touch $@

test: install
	$(PY) -m pytest

demo: install
	@echo "== every template in campaign_templates/ against the schema and the graph rules"
	@$(TW) template validate campaign_templates/*.json
	@echo "== the seed-002 ringback-tone campaign on the embedded stack (Temporal dev server + UI, worker, API, simulator, SQLite)"
	@$(TW) demo

bench: install
	$(PY) bench/load_subscribers.py
	$(PY) bench/bulk_waves.py

clean:
	rm -rf $(VENV) var .pytest_cache
