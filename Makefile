# make help: what each target does. Every target installs first (idempotent) into .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.genlab-installed
ARGS ?=
# pytest-xdist processes for make test: the suite is mostly one-threaded work (imports, scripts, small models)
TEST_WORKERS ?= 2

.PHONY: help install train test test-all lint format bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install genlab with its dev tools

train: install  ## python train.py $(ARGS) on the embedded default (digits, DCGAN)
	$(PY) train.py $(ARGS)

test: install  ## the offline test suite (no slow, no network), on TEST_WORKERS processes
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow and not network" --durations=15 $(ARGS)

test-all: install  ## every test, slow ones included
	$(PY) -m pytest -n $(TEST_WORKERS) $(ARGS)

lint: install  ## ruff lint + format check
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: install  ## ruff autofix + format
	$(PY) -m ruff check --fix . && $(PY) -m ruff format .

bench: install  ## python -m genlab.bench $(ARGS), e.g. make bench ARGS=dcgan
	$(PY) -m genlab.bench $(ARGS)

clean:  ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
	find outputs -mindepth 1 ! -name .gitkeep -exec rm -rf {} +
