# driftline — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
STACK := driftline/stack/stack.sh
VENV_SH := driftline/stack/venv.sh
# Everything runs from the project virtualenv, installed from the committed lock file.
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PY := $(BIN)/python
export VENV
export PATH := $(BIN):$(PATH)
# Tests and tools read the stack's addresses from here unless KAFKA_BOOTSTRAP/REDIS_URL are set.
STACK_ENV = set -a; [ -n "$$KAFKA_BOOTSTRAP" ] && [ -n "$$REDIS_URL" ] || source <($(STACK) env); set +a

.PHONY: help install lock test-latest test-tools deploy-tools stack stack-down stack-status lint testdata unit integration test demo bench clean

help:
	@echo "make demo        run driftline end to end on this machine (starts the stack)"
	@echo "make test        lint + unit + integration tests against a real Kafka and Redis"
	@echo "make stack       start Kafka (KRaft) and Redis on 127.0.0.1 (no Docker)"
	@echo "make stack-down  stop what 'make stack' started"
	@echo "make bench       run the benchmarks, writing bench/RESULTS.md"
	@echo "make lock        refresh requirements-lock.txt to the newest versions pyproject allows"
	@echo "make test-latest unit tests in a throw-away venv with the newest releases (ignores the lock)"

$(VENV)/.installed: requirements-lock.txt pyproject.toml $(VENV_SH)
	@$(VENV_SH) sync
	@touch $@

install: $(VENV)/.installed

lock:
	@$(VENV_SH) lock

test-latest: testdata
	@$(VENV_SH) latest .venv-latest
	.venv-latest/bin/python -m pytest tests/unit -q -p no:cacheprovider

stack:
	@$(STACK) up

stack-down:
	@$(STACK) down

stack-status:
	@$(STACK) status

lint: install
	$(BIN)/ruff check sketches streams alerts driftline tests bench
	$(BIN)/mypy

# NannyML's car-loan CSVs for the CBPE test, fetched once into ~/.cache/driftline
testdata: install
	@driftline/stack/testdata.sh >/dev/null

unit: install testdata
	$(PY) -m pytest tests/unit -q

test-tools:
	@$(STACK) tools

# helm (built through the Go module proxy) and kubernetes-validate, cached in
# ~/.cache/driftline and linked into .tools/bin: the chart's tests use them.
deploy-tools:
	@driftline/stack/deploytools.sh

# the chart's tests (tests/integration/test_helm.py) fail, not skip, if deploy-tools left no helm
integration: install test-tools deploy-tools stack
	@$(STACK_ENV); DRIFTLINE_REQUIRE_DEPLOY_TOOLS=1 $(PY) -m pytest tests/integration tests/e2e -q

# the deployment tools (helm takes minutes to build, once) are built in the background
# while lint and unit run; `integration` waits for them (deploytools.sh holds a lock)
test: install
	@mkdir -p .tools && (driftline/stack/deploytools.sh >.tools/deploytools.log 2>&1 &)
	@$(MAKE) --no-print-directory lint unit integration

demo: install stack
	@$(STACK_ENV); $(BIN)/driftline demo

bench: install stack
	@$(STACK_ENV); for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf .install.stamp .pytest_cache .mypy_cache .ruff_cache .venv-latest
