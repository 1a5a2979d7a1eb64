# kfp-gated-training: every workflow starts here. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
# The runtime image compiled into the pipeline YAML: a tag or a digest (name@sha256:...).
IMAGE ?= localhost/kfp-gated-training:$(VERSION)
# The serving image (MLServer + the verifying runtime); the component image names it, and every
# version's manifest records it, so serve-model deploys the image the version was verified with.
SERVING_IMAGE ?= localhost/kfp-gated-training-serving:$(VERSION)
PIPELINE_YAML := compiled/training_pipeline.yaml
MONITORING_YAML := compiled/monitoring_pipeline.yaml
SAMPLE_PARAMS := data/german_credit.params.yaml
WORKDIR ?= .gated-training
PYTEST_ARGS ?=
# One pytest-xdist worker per core (auto: 2 on the CI machine); a test module stays on one worker, as its tests share fixtures in order.
PYTEST_WORKERS ?= auto
# --durations: every run names its slowest tests, so the suite's time is watched where it is spent.
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=30
# Compile-time cluster options (pipelines/cluster.py): secret *names*, never values.
GCS_KEY_SECRET ?=
GCS_KEY_SECRET_KEY ?=
MLFLOW_TOKEN_SECRET ?=
MLFLOW_TOKEN_SECRET_KEY ?=
MLFLOW_BASIC_AUTH_SECRET ?=
WEBHOOK_SECRET ?=
WEBHOOK_SECRET_KEY ?=
REGISTRY_KEY_SECRET ?=
REGISTRY_KEY_SECRET_KEY ?=
RESOURCES_FILE ?=
ALLOW_POD_LOCAL_STATE ?=
WEBHOOK_ALLOWED_HOSTS ?=
# A Prometheus Pushgateway every step pushes its run's result to (docs/observability.md).
PUSHGATEWAY_URL ?=
# The Spark engine on a cluster (pipelines/cluster.py, docs/scaling.md): the Spark image and the gs:// prefix its
# steps stage through; the rest have defaults (default-editor, 60 min, 2 executors x 2 cores x 4g, driver 1 core 2g).
SPARK_IMAGE ?=
SPARK_STAGING_URI ?=
SPARK_SERVICE_ACCOUNT ?=
SPARK_DEADLINE_MINUTES ?=
SPARK_EXECUTORS ?=
SPARK_EXECUTOR_CORES ?=
SPARK_EXECUTOR_MEMORY ?=
SPARK_DRIVER_CORES ?=
SPARK_DRIVER_MEMORY ?=
# Image build options (component_images/build-image.sh).
BUILDER ?=
BASE_IMAGE ?=
EXTRA_CA_CERT ?=
PUSH ?=
# Kubeflow options: the endpoint comes from KF_PIPELINES_ENDPOINT (or KFP_ARGS="--host ..."),
# a token from KF_PIPELINES_TOKEN; PARAMS is a YAML file of run parameters (gs:// registry, MLflow server).
PARAMS ?= $(wildcard cluster.params.yaml)
# The monitoring pipeline's run form defaults (prediction_log_uri, labels_uri, registry...), baked like PARAMS.
MONITORING_PARAMS ?= $(wildcard cluster.monitoring.params.yaml)
EXPERIMENT ?= gated-training
# The run's Kubernetes service account: with serving_namespace set it needs get, create and patch on
# KServe's inferenceservices and servingruntimes there (Kubeflow's kubeflow-edit grants them).
SERVICE_ACCOUNT ?=
CRON ?= 0 0 2 * * *
KFP_ARGS ?=
# make run ENGINE=spark: validate-data, check-drift and engineer-features on Spark (local[2]) instead of pandas.
ENGINE ?=
# engine=spark trains estimator=xgboost (xgboost.spark); depth 3 suits the 1,000-row sample (a deeper booster overfits it past max_overfit_gap)
SPARK_TRAINING ?= --set training.estimator=xgboost --set training.max_depth=3

export GX_ANALYTICS_ENABLED := false
# MLflow's usage telemetry stays off unless you turn it on (gated_training/__init__.py sets the same default).
export MLFLOW_DISABLE_TELEMETRY ?= true
COMPILE_ENV := IMAGE=$(IMAGE) GCS_KEY_SECRET=$(GCS_KEY_SECRET) GCS_KEY_SECRET_KEY=$(GCS_KEY_SECRET_KEY) \
	MLFLOW_TOKEN_SECRET=$(MLFLOW_TOKEN_SECRET) MLFLOW_TOKEN_SECRET_KEY=$(MLFLOW_TOKEN_SECRET_KEY) \
	MLFLOW_BASIC_AUTH_SECRET=$(MLFLOW_BASIC_AUTH_SECRET) WEBHOOK_SECRET=$(WEBHOOK_SECRET) \
	WEBHOOK_SECRET_KEY=$(WEBHOOK_SECRET_KEY) REGISTRY_KEY_SECRET=$(REGISTRY_KEY_SECRET) \
	REGISTRY_KEY_SECRET_KEY=$(REGISTRY_KEY_SECRET_KEY) RESOURCES_FILE=$(RESOURCES_FILE) \
	ALLOW_POD_LOCAL_STATE=$(ALLOW_POD_LOCAL_STATE) WEBHOOK_ALLOWED_HOSTS=$(WEBHOOK_ALLOWED_HOSTS) PUSHGATEWAY_URL=$(PUSHGATEWAY_URL) PARAMS=$(PARAMS) \
	SPARK_IMAGE=$(SPARK_IMAGE) SPARK_STAGING_URI=$(SPARK_STAGING_URI) SPARK_SERVICE_ACCOUNT=$(SPARK_SERVICE_ACCOUNT) \
	SPARK_DEADLINE_MINUTES=$(SPARK_DEADLINE_MINUTES) SPARK_EXECUTORS=$(SPARK_EXECUTORS) \
	SPARK_EXECUTOR_CORES=$(SPARK_EXECUTOR_CORES) SPARK_EXECUTOR_MEMORY=$(SPARK_EXECUTOR_MEMORY) \
	SPARK_DRIVER_CORES=$(SPARK_DRIVER_CORES) SPARK_DRIVER_MEMORY=$(SPARK_DRIVER_MEMORY)
RUN_ARGS = $(if $(PARAMS),--params $(PARAMS)) $(if $(SERVICE_ACCOUNT),--service-account $(SERVICE_ACCOUNT)) \
	--experiment "$(EXPERIMENT)" $(KFP_ARGS)

.PHONY: bench-startup bench-encoding help venv serving-venv spark-venv spark-image test-spark bench-spark docs compile run monitor loop upload-monitoring schedule-monitoring test test-slow test-all lint test-unit test-integration test-robustness bench bench-gate bench-monitoring bench-serving observability profile-memory clean image serving-image image-test upload submit schedule \
	cluster-image-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test]'
	$(BIN)/python -m gated_training.logs --install-hook >/dev/null  # JSON logs from a process's first line when GATED_TRAINING_LOG_FORMAT=json
	touch $@

venv: $(BIN)/.installed ## create .venv with the pinned dependencies

# The serving stack (MLServer + mlserver-sklearn) at the serving image's pins, beside .venv: its web
# stack conflicts with MLflow's, so it has its own constraints (requirements/serving-constraints.txt).
SERVING_VENV ?= .venv-serving
SERVING_BIN := $(SERVING_VENV)/bin
export GATED_TRAINING_SERVING_BIN := $(abspath $(SERVING_BIN))
$(SERVING_BIN)/.installed: requirements/serving.txt requirements/serving-constraints.txt pyproject.toml
	test -x $(SERVING_BIN)/python || $(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_BIN)/python -m pip install --quiet --upgrade pip
	$(SERVING_BIN)/python -m pip install --quiet -c requirements/serving-constraints.txt -r requirements/serving.txt
	$(SERVING_BIN)/python -m pip install --quiet --no-deps -e .
	$(SERVING_BIN)/python -m gated_training.logs --install-hook >/dev/null
	touch $@

serving-venv: $(SERVING_BIN)/.installed ## create .venv-serving: MLServer and the ML pins, as in the serving image

# The KFP UI's Markdown renderer (markdown-to-jsx 7.7.17 + React, pinned by tests/js/package-lock.json),
# for the tests that read the Markdown reports as the UI shows them. Installs Node from Debian if missing.
JS_DEPS := tests/js/node_modules/.installed
$(JS_DEPS): tests/js/package.json tests/js/package-lock.json
	command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
	cd tests/js && npm ci --silent --no-audit --no-fund
	touch $@

docs: venv ## rewrite the generated parts of docs/parameters.md (the CLI synopsis, the run form's tables) from the code
	$(BIN)/python -m pipelines.docs

observability: venv ## rewrite the PrometheusRule from observability/prometheus/gated-training.rules.yml (its one source)
	$(BIN)/python -m observability.generate

# promtool (alert-rule tests) and the Pushgateway (push tests), from Debian: make test installs them when missing.
PROMTOOL := /usr/bin/promtool
$(PROMTOOL):
	command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus prometheus-pushgateway; }

# Headless Chromium (Debian's, without a desktop): the report screenshots in tests/integration/test_report_screenshots.py.
CHROMIUM := /usr/bin/chromium-headless-shell
$(CHROMIUM):
	command -v chromium-headless-shell >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium-headless-shell; }

compile: venv ## write compiled/training_pipeline.yaml and compiled/monitoring_pipeline.yaml (IMAGE=..., secret names, PARAMS=cluster.params.yaml baked in as the run form's defaults; see docs/kubeflow.md)
	$(COMPILE_ENV) $(BIN)/python -m pipelines.compile $(PIPELINE_YAML)
	$(COMPILE_ENV) MONITORING_PARAMS=$(MONITORING_PARAMS) $(BIN)/python -m pipelines.compile --monitoring $(MONITORING_YAML)

# The local run compiles without cluster defaults (PARAMS is for the cluster's run form).
run: PARAMS =
run: compile $(if $(filter spark,$(ENGINE)),spark-venv) ## set up, compile, and run the compiled pipeline locally on the bundled sample (ENGINE=spark: the Spark engine on local[2])
	$(BIN)/gated-training run --params $(SAMPLE_PARAMS) --workdir $(WORKDIR) $(if $(ENGINE),--set engine=$(ENGINE)) $(if $(filter spark,$(ENGINE)),$(SPARK_TRAINING))

test: venv serving-venv $(JS_DEPS) $(PROMTOOL) $(CHROMIUM) lint ## set up and run every test suite: lint, unit, integration (the compiled YAML through kfp.local), robustness, contract (all but the slow guarantees)
	$(PYTEST) -m "not slow and not spark" $(PYTEST_ARGS)

test-slow: venv serving-venv spark-venv $(JS_DEPS) ## the heaviest guarantees: concurrent promotions, an accumulating table, 100k unique ids, MLflow down, the monitoring loop, real Prometheus alerts, the sample deploying on Spark, every step in a SparkApplication (out of CI's 25 minutes: make test-all)
	$(PYTEST) -m slow $(PYTEST_ARGS)

lint: venv ## ruff (lint and format) and mypy (strict on the gate, the registry, stats, config and parameters): pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The Spark engine: pyspark and the learner in .venv, and a JVM from Debian (openjdk-17-jre-headless) when none is found.
SPARK_INSTALLED := $(BIN)/.spark-installed
$(SPARK_INSTALLED): $(BIN)/.installed pyproject.toml requirements/constraints.txt
	command -v java >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; }
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test,spark]'
	touch $@

spark-venv: $(SPARK_INSTALLED) ## add the Spark engine to .venv: pyspark and Java 17 from Debian when missing

test-spark: spark-venv ## the Spark engine on local[2]: the same decisions, fingerprints and errors as pandas (tests/spark but its slow cases, which make test-slow runs; CI runs it after make test)
	$(PYTEST) -m "spark and not slow" tests/spark $(PYTEST_ARGS)

test-all: test test-slow test-spark image-test ## everything: make test, the slow guarantees, the Spark engine and the image test (before a release; ~45 min)

test-unit: venv $(JS_DEPS) $(PROMTOOL) ## unit tests only
	$(PYTEST) tests/unit $(PYTEST_ARGS)

test-integration: venv serving-venv $(JS_DEPS) ## the compiled pipeline through kfp.local
	$(PYTEST) tests/integration $(PYTEST_ARGS)

test-robustness: venv $(JS_DEPS) ## the deployment guarantees: races, crashes, GCS faults, MLflow down, bad inputs
	$(PYTEST) tests/robustness $(PYTEST_ARGS)

BENCH_ROWS ?= 10000,100000,1000000
bench: compile ## pipeline vs single process vs reference design at BENCH_ROWS × 30 columns → docs/benchmarks.md (~25 min here: two runs of each, the reference design once)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test,bench]'
	$(BIN)/python -m benchmarks.bench --rows $(BENCH_ROWS)
	$(BIN)/python -m benchmarks.monitoring --calls $(MONITORING_BENCH_CALLS)

bench-startup: compile ## re-measure only the fixed start-up per step (a 1,000-row run; first read, wall, flame graph) into docs/benchmarks.md, keeping the sizes' rows (~3 min)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test,bench]'
	$(BIN)/python -m benchmarks.bench --startup-only

bench-serving: venv serving-venv ## what the runtime's metrics cost per one-row request (p50/p95 with and without) → docs/benchmarks-monitoring.md (~2 min)
	$(BIN)/python -m benchmarks.serving_metrics

MONITORING_BENCH_CALLS ?= 100000,1000000
bench-monitoring: venv ## the sink's events/s on one core and a monitoring window of MONITORING_BENCH_CALLS calls → docs/benchmarks-monitoring.md (~10 min)
	$(BIN)/python -m benchmarks.monitoring --calls $(MONITORING_BENCH_CALLS)

GATE_BENCH_ROWS ?= 100000,1000000
bench-gate: venv ## what the model gate's evidence checks add per step at GATE_BENCH_ROWS (~4 min here) → docs/benchmarks-gate.md
	$(BIN)/python -m benchmarks.gate_costs --rows $(GATE_BENCH_ROWS) --output docs/benchmarks-gate.md

ENCODING_BENCH_ROWS ?= 100000
bench-encoding: venv ## HistGradientBoosting's accuracy on one-hot columns and on ordinal codes, paired (German credit, 20x5-fold CV; the bench table, 5 seeds) → docs/benchmarks-encoding.md (~4 min here)
	$(BIN)/python -m benchmarks.encoding_accuracy --rows $(ENCODING_BENCH_ROWS) --output docs/benchmarks-encoding.md

SPARK_BENCH_ROWS ?= 100000,1000000
bench-spark: spark-venv ## validate-data, check-drift, engineer-features and train-model on pandas and on Spark (local[2]) at SPARK_BENCH_ROWS: wall, start-up, peak RSS of the process tree → docs/benchmarks-spark.md (~10 min here)
	$(BIN)/python -m benchmarks.spark_engine --rows $(SPARK_BENCH_ROWS)

PROFILE_ROWS ?= 1000000
profile-memory: venv ## memray: what each heavy step holds at its peak at PROFILE_ROWS rows → docs/memory-profile.md (~6 min here)
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test,bench]'
	$(BIN)/python -m benchmarks.memory_profile --rows $(PROFILE_ROWS)

image: ## build the component image with docker, podman or buildah (IMAGE=..., SERVING_IMAGE=..., EXTRA_CA_CERT=..., PUSH=1)
	IMAGE=$(IMAGE) SERVING_IMAGE=$(SERVING_IMAGE) BUILDER=$(BUILDER) BASE_IMAGE=$(BASE_IMAGE) \
		EXTRA_CA_CERT=$(EXTRA_CA_CERT) PUSH=$(PUSH) component_images/build-image.sh

serving-image: ## build the serving image (MLServer + verifying runtime, the same ML pins) as SERVING_IMAGE (PUSH=1)
	IMAGE=$(SERVING_IMAGE) DOCKERFILE=component_images/Dockerfile.serving BUILDER=$(BUILDER) BASE_IMAGE=$(BASE_IMAGE) \
		EXTRA_CA_CERT=$(EXTRA_CA_CERT) PUSH=$(PUSH) component_images/build-image.sh

# The Spark image: Debian's JRE 17, pyspark, this package, the driver's main file (docs/scaling.md).
# It is built as SPARK_IMAGE, the name `make compile` compiles in (a local name when unset).
SPARK_JARS ?=
spark-image: ## build the Spark image (JVM, pyspark, this package) as SPARK_IMAGE (SPARK_JARS="gcs-connector.jar", PUSH=1)
	IMAGE=$(or $(SPARK_IMAGE),localhost/kfp-gated-training-spark:$(VERSION)) TARGET=spark BUILDER=$(BUILDER) BASE_IMAGE=$(BASE_IMAGE) EXTRA_CA_CERT=$(EXTRA_CA_CERT) \
		SPARK_JARS="$(SPARK_JARS)" PUSH=$(PUSH) component_images/build-image.sh

image-test: ## build the image (buildah) and run every component inside it, non-root and offline
	EXTRA_CA_CERT=$(EXTRA_CA_CERT) component_images/image-test.sh

cluster-image-check:
	@case "$(IMAGE)" in localhost/*) echo "error: IMAGE=$(IMAGE) is a local image a cluster cannot pull;" \
		"pass IMAGE=<registry>/kfp-gated-training:<tag> (the one \`make image PUSH=1\` pushed)" >&2; exit 2;; esac

upload: cluster-image-check compile ## compile for IMAGE and upload it as a new pipeline version
	$(BIN)/gated-training upload $(KFP_ARGS)

submit: cluster-image-check compile ## start a run on Kubeflow (PARAMS=file.yaml, EXPERIMENT=..., KFP_ARGS="--wait")
	$(BIN)/gated-training submit $(RUN_ARGS)

schedule: venv ## schedule the version `make upload` made (CRON="0 0 2 * * *", PARAMS=..., EXPERIMENT=...)
	$(BIN)/gated-training schedule create --cron "$(CRON)" $(RUN_ARGS)

upload-monitoring: cluster-image-check compile ## upload compiled/monitoring_pipeline.yaml as a new version of its own pipeline
	$(BIN)/gated-training upload --pipeline $(MONITORING_YAML) $(KFP_ARGS)

# The monitoring pipeline reads the last window_hours (24) before each run: a daily cron to match (set both to go hourly).
MONITORING_CRON ?= 0 30 1 * * *
schedule-monitoring: venv ## schedule the version `make upload-monitoring` made (MONITORING_CRON, MONITORING_PARAMS=...)
	$(BIN)/gated-training schedule create --pipeline $(MONITORING_YAML) --cron "$(MONITORING_CRON)" \
		$(if $(MONITORING_PARAMS),--params $(MONITORING_PARAMS)) $(if $(SERVICE_ACCOUNT),--service-account $(SERVICE_ACCOUNT)) \
		--experiment "$(EXPERIMENT)-monitoring" $(KFP_ARGS)

# A local monitoring window on the prediction log `gated-training sink` writes under WORKDIR (LABELS=folder of
# label tables; MONITOR_ARGS="--window-end ... --set monitoring.window_hours=1").
LABELS ?=
MONITOR_ARGS ?=
monitor: compile ## one monitoring window through the compiled monitoring pipeline, locally (kfp.local)
	$(BIN)/gated-training monitor --workdir $(WORKDIR) $(if $(LABELS),--labels $(LABELS)) $(MONITOR_ARGS)

loop: compile serving-venv ## the loop on loopback: serve (MLServer), log (logger + sink), drift, late labels, monitor, gated retrain
	$(BIN)/gated-training loop --workdir $(WORKDIR)/loop

clean: ## remove local run state (registry, MLflow database, outputs)
	rm -rf $(WORKDIR) local_outputs
