# i2v-gateway. `make demo` and `make test` work on a fresh machine: they create .venv and install first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install demo local test lint format validate build deploy bench invoke clean

help:
	@echo "make demo      animate the sample image on the local stack (HTTP + S3 upload) -> ./out"
	@echo "make test      run the whole test suite"
	@echo "make local     serve the API on http://127.0.0.1:3000 until Ctrl-C"
	@echo "make lint      ruff + mypy"
	@echo "make validate  sam validate --lint"
	@echo "make build     sam build (no Docker needed)"
	@echo "make bench     cold-start and hot-path ratios against a floor measured in the same run"
	@echo "make invoke FN=ApiFunction EVENT=events/api_create.json   one handler, one event, local stack"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m i2v_local demo $(if $(PROVIDER),--provider $(PROVIDER))

local: $(STAMP)
	$(BIN)/python -m i2v_local up

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The SAM CLI lives in its own venv: its pins must not steer the app's dependencies.
$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli

validate: $(SAM)
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(SAM) validate --lint

# BuildMethod makefile everywhere: no Docker and no python3.12 on PATH are needed (see layers/common/Makefile).
build: $(SAM)
	$(SAM) build

deploy: build
	$(SAM) deploy --guided

bench: $(STAMP)
	$(BIN)/python -m benchmarks

invoke: $(STAMP)
	$(BIN)/python -m i2v_local invoke $(FN) $(EVENT)

clean:
	rm -rf $(VENV) $(SAM_VENV) .venv-checkov .aws-sam out .pytest_cache .mypy_cache .ruff_cache
