# inbetween: two commands for a newcomer, `make demo` and `make test`; everything else is for developers.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced

export UV_PROJECT_ENVIRONMENT := $(VENV)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test lint unit integration e2e demo bench bench-quick audit local-up fmt clean typecheck contracts gates

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON) --quiet
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml

# Every gate; the unit and integration tiers with branch coverage of shared/inbetween (held at fail_under in
# pyproject.toml); then the end-to-end tier, not traced: tracing would slow the fault suites' timings 2x.
test: lint typecheck contracts
	$(VENV)/bin/pytest -n 2 --dist loadgroup -q --cov --cov-branch --cov-report=term-missing:skip-covered \
		tests/unit tests/integration
	$(VENV)/bin/pytest -n 2 --dist loadgroup -q tests/e2e

# mypy --strict on shared/inbetween and functions/ ([tool.mypy] in pyproject.toml)
typecheck: install
	$(VENV)/bin/mypy

# import contracts ([tool.importlinter]); the three roots live in shared/, local/ and the repo root
contracts: install
	PYTHONPATH=shared:local:media:. $(VENV)/bin/lint-imports --no-cache

gates: typecheck contracts

# the unit tier alone (in-memory fakes, no moto, no sockets), with the use cases' coverage beside it
unit: install
	$(VENV)/bin/pytest -q tests/unit --cov=shared/inbetween/usecases --cov-branch --cov-report=term-missing:skip-covered

integration: install
	$(VENV)/bin/pytest -q tests/integration

e2e: install
	$(VENV)/bin/pytest -q tests/e2e

demo: install
	$(PY) -m inbetween_local.demo

# every figure, 5 seeds a case (under 15 minutes on 2 cores); writes docs/bench.md, bench/results.json and
# the plot; exits non-zero on any FAIL or missing figure. The lead's re-run after product changes is this.
bench: install
	$(PY) -m bench.run --publish

# one seed, small numbers, under 2 minutes: the same code paths, so a broken bench fails CI (.ci/run)
bench-quick: install
	$(PY) -m bench.run --quick

audit: install
	PYTHON=$(PYTHON) tools/audit.sh

local-up: install
	$(VENV)/bin/inbetween local up

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache .mypy_cache .coverage .coverage.* demo-output
