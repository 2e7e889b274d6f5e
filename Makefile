# The two set-up commands of README.md: `make demo` and `make test`.
# Each builds .venv on first use (Python >= 3.11) and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_ARGS ?=

.PHONY: demo test lint bench install services

$(BIN)/parcelstream: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/parcelstream

## Services the demo and tests use on this machine: Redis (and Debian tools for some tests).
services:
	@bash deploy/local/ensure-services.sh

demo: install services
	$(BIN)/parcelstream demo $(DEMO_ARGS)

test: install services
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: install services
	$(BIN)/python -m benchmarks.run
