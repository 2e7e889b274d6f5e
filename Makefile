# The two set-up commands of README.md: `make demo` and `make test`.
# Each builds .venv on first use (Python >= 3.11) and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: demo test bench install services test-services

$(BIN)/parcelstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/parcelstream

## Services on this machine: Redis for the demo; for the tests also promtool/prometheus and chromium.
services:
	@bash deploy/local/ensure-services.sh

test-services:
	@bash deploy/local/ensure-services.sh test

demo: install services
	$(BIN)/parcelstream demo $(DEMO_ARGS)

test: install test-services
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

bench: install services
	$(BIN)/python -m benchmarks.run
