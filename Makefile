# gpuledger: one Makefile, the same commands locally and in CI. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help
.PHONY: help run test lint golden tools clean

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

tools: ## Install prometheus/promtool and victoria-metrics if missing (Debian, as root), else say what to install
	@missing=""; \
	  { command -v promtool && command -v prometheus; } >/dev/null || missing="prometheus"; \
	  command -v victoria-metrics >/dev/null || missing="$$missing victoria-metrics"; \
	  missing="$${missing# }"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	        || { echo "make: apt-get could not install '$$missing': install the Debian package(s) yourself"; exit 1; }; \
	    else echo "make: missing tools: install the Debian package(s) '$$missing' (apt-get install -y $$missing)"; exit 1; fi; \
	  fi
	@for tool in promtool prometheus victoria-metrics; do \
	  command -v $$tool >/dev/null || { echo "make: $$tool still missing after install"; exit 1; }; done

test: $(DEV_STAMP) tools ## Run the whole test suite (real DuckDB, Prometheus, VictoriaMetrics, promtool, Streamlit)
	@$(BIN)/python -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests: that is a failure"; exit 1; fi; exit $$rc

lint: $(DEV_STAMP) ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

golden: $(STAMP) ## Regenerate rules/ for the default configuration (review the diff!)
	$(BIN)/gpuledger --config /dev/null rules generate --out rules

clean: ## Remove the virtualenv and generated data
	rm -rf $(VENV) data exports .pytest_cache .mypy_cache .ruff_cache
