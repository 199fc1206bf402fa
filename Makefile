# driftline — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
STACK := driftline/stack/stack.sh
# Tests and tools read the stack's addresses from here unless KAFKA_BOOTSTRAP/REDIS_URL are set.
STACK_ENV = set -a; [ -n "$$KAFKA_BOOTSTRAP" ] && [ -n "$$REDIS_URL" ] || source <($(STACK) env); set +a

.PHONY: help install test-tools stack stack-down stack-status lint unit integration test demo bench clean

help:
	@echo "make demo        run driftline end to end on this machine (starts the stack)"
	@echo "make test        lint + unit + integration tests against a real Kafka and Redis"
	@echo "make stack       start Kafka (KRaft) and Redis on 127.0.0.1 (no Docker)"
	@echo "make stack-down  stop what 'make stack' started"
	@echo "make bench       run the benchmarks, writing bench/RESULTS.md"

.install.stamp: pyproject.toml
	$(PYTHON) -m pip install -q -e '.[dev]'
	@touch $@

install: .install.stamp

stack:
	@$(STACK) up

stack-down:
	@$(STACK) down

stack-status:
	@$(STACK) status

lint: install
	ruff check sketches streams alerts driftline tests bench
	mypy

unit: install
	$(PYTHON) -m pytest tests/unit -q

test-tools:
	@$(STACK) tools

integration: install test-tools stack
	@$(STACK_ENV); $(PYTHON) -m pytest tests/integration tests/e2e -q

test: lint unit integration

demo: install stack
	@$(STACK_ENV); driftline demo

bench: install stack
	@$(STACK_ENV); for b in bench/*.py; do echo "== $$b"; $(PYTHON) $$b || exit 1; done

clean:
	rm -rf .install.stamp .pytest_cache .mypy_cache .ruff_cache
