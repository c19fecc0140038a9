# `make run` and `make test` work on a fresh clone with only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Synapse, the real homeserver of the Matrix tests, lives in a virtualenv of its own.
SYNAPSE_VENV := .venv-synapse
SYNAPSE_STAMP := $(SYNAPSE_VENV)/.installed

.PHONY: install run test lint format bench clean docker-test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(SYNAPSE_STAMP):
	$(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install --quiet --upgrade pip
	$(SYNAPSE_VENV)/bin/pip install --quiet 'matrix-synapse>=1.163,<2'
	touch $(SYNAPSE_STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/samverkan run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) $(SYNAPSE_STAMP) lint
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# Builds the image and checks it (docker/test.sh says what); as root it installs and
# starts a Docker engine of its own where none runs.
docker-test:
	bash docker/test.sh

clean:
	rm -rf $(VENV) $(SYNAPSE_VENV) .mypy_cache .ruff_cache .pytest_cache
