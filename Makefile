# The README's two commands: `make run` (the main job: render the sample stories end to end and stop)
# and `make test` (every test). Each does its own
# set-up from nothing: a virtualenv in .venv, the package and its test extras, and (through the test
# fixtures or `storee stack up`) a real Kafka broker and a real MongoDB-wire server on loopback; `make
# test` also installs a real Prometheus and promtool (ops/install-test-tools.sh, Debian's package).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Reinstall whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: install test-tools run test stop status bench clean poison chaos

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	$(BIN)/python -m pip check
	@rm -f $(VENV)/.installed-* && touch $@

# Prometheus and promtool for tests/ops/test_dashboards.py; does nothing when both are on PATH.
test-tools:
	@./ops/install-test-tools.sh

run: install
	$(BIN)/storee demo

test: install test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The long poison run: 2000 Hypothesis poison records on every topic against the running system.
POISON_ARGS ?= --records 2000 --good 60
poison: install
	$(BIN)/python -m ops.bench.poison $(POISON_ARGS)

# The long chaos run: 20 rounds of SIGKILLs (services and brokers of a three-broker stack).
CHAOS_ARGS ?= --rounds 20 --seed 1 --brokers 3
chaos: install
	$(BIN)/python -m ops.bench.chaos $(CHAOS_ARGS)

stop:
	@test -x $(BIN)/storee && $(BIN)/storee stack down || true

status: install
	$(BIN)/storee stack status

clean: stop
	rm -rf $(VENV) .pytest_cache .hypothesis
