SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.stamp-run
TEST_STAMP := $(VENV)/.stamp-test
LINT_PATHS := daemon triggers tasks tests bench
PYTEST_ARGS ?=

# What `make run` executes (exec'd, so signals reach podium directly).
PODIUM_RUN ?= $(VENV)/bin/podium serve --flows flows --port 8080

.PHONY: run test lint bench clean ui

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  found=$$(command -v $(PYTHON) >/dev/null && $(PYTHON) -V 2>&1 || echo 'not found'); \
	  echo "podium needs Python >= 3.11, but '$(PYTHON)' is: $$found." >&2; \
	  echo "Install python3.11+ or run: make PYTHON=/path/to/python3.11 ..." >&2; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

# Not quiet: the first install takes a minute, and a silent minute looks like a hang.
$(RUN_STAMP): pyproject.toml | $(VPY)
	@echo "Installing podium and its dependencies into $(VENV) (once)..."
	$(VPY) -m pip install --progress-bar on -e '.[data,remote]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q -e '.[test,data,remote]'
	touch $@

run: $(RUN_STAMP)
	exec $(PODIUM_RUN)

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy daemon
	$(VENV)/bin/lint-imports --no-cache

# pytest exits 5 when it collected nothing: that is a failure here, never a pass.
test: $(TEST_STAMP)
	bash .ci/ensure-packages
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy daemon
	$(VENV)/bin/lint-imports --no-cache
	rc=0; $(VENV)/bin/pytest $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

bench: $(RUN_STAMP)
	@shopt -s nullglob; files=(bench/[!_]*.py); \
	if [ $${#files[@]} -eq 0 ]; then echo "bench: no bench/*.py yet"; exit 0; fi; \
	for f in "$${files[@]}"; do echo "== $$f"; $(VPY) "$$f"; done

# The UI's third-party code (CodeMirror, Chart.js) is bundled into daemon/api/ui/static/
# and committed, so that `make run` needs Python only; this rebuilds the bundles after a
# change of the sources in daemon/api/ui/frontend/ (tests/test_ui_bundle.py checks).
ui:
	cd daemon/api/ui/frontend && npm ci --no-audit --no-fund && node build.mjs

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
