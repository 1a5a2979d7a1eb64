# kfp-gated-training: every workflow starts here. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# The runtime image compiled into the pipeline YAML: a tag or a digest (name@sha256:...).
IMAGE ?= localhost/kfp-gated-training:$(VERSION)
PIPELINE_YAML := compiled/training_pipeline.yaml
SAMPLE_PARAMS := data/german_credit.params.yaml
WORKDIR ?= .gated-training
PYTEST_ARGS ?=

export GX_ANALYTICS_ENABLED := false

.PHONY: help venv compile run test test-unit test-integration check-compiled clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed ## create .venv with the pinned dependencies

compile: venv ## write compiled/training_pipeline.yaml (IMAGE=... to choose the image)
	IMAGE=$(IMAGE) $(BIN)/python -m pipelines.compile $(PIPELINE_YAML)

run: compile ## set up, compile, and run the compiled pipeline locally on the bundled sample
	$(BIN)/gated-training run --params $(SAMPLE_PARAMS) --workdir $(WORKDIR)

test: venv ## set up and run every test (unit + compiled pipeline through kfp.local)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: venv ## unit tests only
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: venv ## the compiled pipeline through kfp.local
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

clean: ## remove local run state (registry, MLflow database, outputs)
	rm -rf $(WORKDIR) local_outputs
