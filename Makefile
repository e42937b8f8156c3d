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

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "touchwave needs Python 3.11 or newer; set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing touchwave and its dependencies into $(VENV) ..."
	@$(PY) -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	@$(PY) -m pip install --quiet -e '.[test]' 2>&1 | $(QUIET_PIP)
	@touch $@

test: install
	$(PY) -m pytest

demo: install
	@echo "== schema";            $(TW) db upgrade
	@echo "== offer catalog";     $(TW) offers load campaign_templates/catalog/offers.json
	@echo "== subscribers";       $(TW) subscribers synth --count 5000 --seed 7
	@echo "== validate";          $(TW) template validate campaign_templates/*.json
	@echo "== upload";            $(TW) template upload campaign_templates/*.json
	@echo "== what is stored";    $(TW) template list; $(TW) subscribers stats
	@echo "== the ringback-tone campaign of seed 002, compiled"; $(TW) template show ringback-tone-download
	@echo; echo "Paste this into a Mermaid viewer to see the flowchart:"; $(TW) template show ringback-tone-download --format mermaid

bench: install
	$(PY) bench/load_subscribers.py

clean:
	rm -rf $(VENV) var .pytest_cache
