# gpuledger: one Makefile, the same commands locally and in CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help run test lint golden tools clean screenshots bench bench-load bench-deps guard-tree guard-build

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP) ## Simulated fleet -> warehouse -> analytics -> rules -> export -> dashboard on :8501
	$(BIN)/gpuledger demo

DEBIAN_TOOLS := prometheus:promtool prometheus:prometheus victoria-metrics:victoria-metrics chromium:chromium

tools: ## Install the real servers the tests use if missing (Debian packages, as root), else say what to install
	@missing=""; for pair in $(DEBIAN_TOOLS); do pkg=$${pair%%:*}; bin=$${pair##*:}; \
	  command -v $$bin >/dev/null || missing="$$missing $$pkg"; done; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	        || { echo "make: could not install$$missing with apt-get; install those Debian packages"; exit 1; }; \
	    else echo "make: missing Debian packages:$$missing (apt-get install -y$$missing)"; exit 1; fi; fi
	@for pair in $(DEBIAN_TOOLS); do bin=$${pair##*:}; command -v $$bin >/dev/null || { echo "make: $$bin still missing after install"; exit 1; }; done

FOCUS_VENV := .focus-venv
FOCUS_VALIDATOR := $(FOCUS_VENV)/bin/focus-validator

$(FOCUS_VALIDATOR): ## the FinOps Foundation's FOCUS validator (needs Python 3.12; pyenv has it)
	@PY312=$$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 2>/dev/null | tail -1); \
	  [ -n "$$PY312" ] || PY312=$$(command -v python3.12); \
	  [ -n "$$PY312" ] || { echo "make: the FOCUS validator needs Python 3.12: install it (pyenv install 3.12)"; exit 1; }; \
	  $$PY312 -m venv $(FOCUS_VENV) && \
	  $(FOCUS_VENV)/bin/pip install --quiet focus-validator==2.2.1 numpy==1.26.4 'pyarrow<19' \
	  || { echo "make: could not install focus-validator 2.2.1 into $(FOCUS_VENV)"; exit 1; }

guard-tree: ## Fail, naming the path, on a tracked symlink leaving the clone or a tracked path .gitignore ignores
	@$(PYTHON) .ci/clone_guard.py tree

guard-build: ## Fail, naming the path, when a virtualenv of the clone reads anything outside it but the system's Python
	@$(PYTHON) .ci/clone_guard.py build

test: guard-tree $(DEV_STAMP) tools $(FOCUS_VALIDATOR) guard-build ## Run the whole test suite (real DuckDB, Prometheus, VictoriaMetrics, promtool, Streamlit, FOCUS validator)
	@$(BIN)/python -m pytest -n auto --dist loadfile; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests: that is a failure"; exit 1; fi; exit $$rc

lint: $(DEV_STAMP) ## ruff (check, format), mypy, vulture (dead code) and import-linter (the architecture's contracts)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/vulture
	$(BIN)/lint-imports

bench: $(DEV_STAMP) tools ## Benchmarks at 100/1,000/10,000 GPUs vs PromQL and pandas, the dashboard load test, the dependencies -> bench/results.md, bench/deps.md (not in `test`)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.run

golden: $(STAMP) ## Regenerate rules/ (and deploy/prometheusrules.yaml, grafana-dashboards.yaml) for the default configuration (review the diff!)
	$(BIN)/gpuledger --config /dev/null rules generate --out rules
	for f in rules/*.yaml; do echo '---'; cat $$f; done > deploy/prometheusrules.yaml
	tmp=$$(mktemp -d) && $(BIN)/gpuledger --config /dev/null dashboards generate --out $$tmp >/dev/null && \
	  cp $$tmp/grafana-dashboards.yaml deploy/ && rm -rf $$tmp

screenshots: $(DEV_STAMP) ## Re-take docs/screenshots from the demo's week in Chromium (after `make run` once)
	GPULEDGER_SCREENSHOTS=$(CURDIR)/docs/screenshots GPULEDGER_BROWSER_WAREHOUSE=$(CURDIR)/data/demo/gpuledger.duckdb \
	  GPULEDGER_BROWSER_CONFIG=$(CURDIR)/data/demo/gpuledger.yaml GPULEDGER_BROWSER_QUERY="start=2026-11-02&end=2026-11-08" \
	  $(BIN)/python -m pytest -q tests/test_browser.py

bench-deps: $(DEV_STAMP) tools ## prometheus-api-client vs the own client, polars vs pandas, where each would serve -> bench/deps.md
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.deps

bench-load: $(DEV_STAMP) tools ## Dashboard load: 20 sessions x 60 s on a 1,000-GPU warehouse while serve collects (p95 < 1.5 s)
	$(BIN)/python bench/dashboard_load.py

clean: ## Remove the virtualenv and generated data
	rm -rf $(VENV) $(FOCUS_VENV) data exports .pytest_cache .mypy_cache .ruff_cache
