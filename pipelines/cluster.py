"""Cluster configuration compiled into the YAML: resources, retries, caching and secrets per step.

Everything here is chosen at compile time from environment variables (``make compile`` passes
them through), validated once in :meth:`ClusterSettings.from_env`:

- ``GCS_KEY_SECRET``: a Kubernetes secret holding a GCS service-account key (key
  ``GCS_KEY_SECRET_KEY``, default ``key.json``), mounted read-only for the steps that touch
  ``gs://``. Unset: Workload Identity (or the node's default credentials) through the run's
  Kubernetes service account, which is the recommended setup.
- ``MLFLOW_TOKEN_SECRET``: a secret whose key ``MLFLOW_TOKEN_SECRET_KEY`` (default ``token``)
  becomes ``MLFLOW_TRACKING_TOKEN`` in the steps that talk to MLflow.
- ``MLFLOW_BASIC_AUTH_SECRET``: a secret with keys ``username`` and ``password`` for MLflow's
  basic auth (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``).
- ``WEBHOOK_SECRET``: a secret whose key ``WEBHOOK_SECRET_KEY`` (default ``url``) becomes
  ``GATED_TRAINING_WEBHOOK_URL`` in the steps that notify, so the webhook URL (a credential)
  stays out of the run form.
- ``REGISTRY_KEY_SECRET``: a secret whose key ``REGISTRY_KEY_SECRET_KEY`` (default ``key``)
  becomes ``GATED_TRAINING_REGISTRY_KEY`` in the steps that read or write the registry: versions
  are signed with it and refused unless signed with it (``gated_training.registry.signing``). Without it
  those steps refuse to run unless the run sets ``GATED_TRAINING_REGISTRY_UNSIGNED=1``.
- ``ALLOW_POD_LOCAL_STATE=1``: let steps use a registry or MLflow store on the pod's own file
  system (``run_context``); they refuse it otherwise, since it vanishes with the pod.
- ``WEBHOOK_ALLOWED_HOSTS``: comma-separated hosts (names or addresses) the steps may post to;
  becomes ``GATED_TRAINING_WEBHOOK_ALLOWED_HOSTS`` in every step (``gated_training.reports.notify``). Unset:
  any host but loopback, link-local and metadata addresses.
- ``PUSHGATEWAY_URL``: a Prometheus Pushgateway (``http://pushgateway.monitoring:9091``); becomes
  ``GATED_TRAINING_PUSHGATEWAY_URL`` in every step, which pushes each run's result there (``reports.push``).
- ``RESOURCES_FILE``: a YAML file overriding the per-step requests and limits below.
- ``SPARK_IMAGE``: the Spark image (``make spark-image``). Set, a step the step table marks ``runs_on_spark``
  submits a SparkApplication to the Spark Operator when a run chooses ``engine=spark`` (``spark.remote``);
  unset, ``engine=spark`` needs pyspark and a JVM in the step's own image. With it: ``SPARK_STAGING_URI``
  (required: a ``gs://`` prefix where requests, results and outputs pass), ``SPARK_SERVICE_ACCOUNT``
  (the driver's service account, default ``default-editor``, a Kubeflow profile's), ``SPARK_DEADLINE_MINUTES``
  (default 60), ``SPARK_EXECUTORS`` / ``SPARK_EXECUTOR_CORES`` / ``SPARK_EXECUTOR_MEMORY`` /
  ``SPARK_DRIVER_CORES`` / ``SPARK_DRIVER_MEMORY`` (default 2 × 2 cores × 4g, driver 1 core, 2g).

Only secret *names* are compiled in; their values never leave the cluster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from kfp import kubernetes
from kfp.dsl import PipelineTask

from gated_training.config import read_yaml_mapping
from gated_training.errors import ConfigError
from gated_training.kubernetes_names import is_dns1123_subdomain
from gated_training.registry import KEY_ENV as REGISTRY_KEY_ENV
from gated_training.reports import ALLOWED_HOSTS_ENV, PUSHGATEWAY_ENV, WEBHOOK_ENV
from gated_training.run_context import ALLOW_POD_LOCAL_ENV
from gated_training.spark import SparkResources
from gated_training.spark import remote as spark_remote
from gated_training.step_table import STEP, Step, StepResources

GCS_KEY_MOUNT_PATH = "/var/secrets/gcs"
# serve-model hands these secret references (name:key) to the ServingRuntime it applies.
SERVING_SECRET_ENVS = ("GATED_TRAINING_SERVING_REGISTRY_KEY_SECRET", "GATED_TRAINING_SERVING_GCS_KEY_SECRET")
# Kubernetes object names (secrets): a DNS-1123 subdomain, dot-separated labels, at most 253 characters.
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$")  # a DNS name, IPv4 or IPv6 address
CPU_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
MEMORY_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
MEMORY_UNITS = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class ClusterConfigError(ValueError):
    """A compile-time option is invalid; the message names the variable or file and the rule."""


def validated(resources: StepResources, where: str) -> StepResources:
    """``resources`` if every quantity is a Kubernetes quantity and no request exceeds its limit."""
    for name in ("cpu_request", "cpu_limit"):
        if not CPU_QUANTITY.match(str(getattr(resources, name))):
            raise ClusterConfigError(
                f"{where}: {name}={getattr(resources, name)!r} is not a CPU quantity like 500m or 2"
            )
    for name in ("memory_request", "memory_limit"):
        if not MEMORY_QUANTITY.match(str(getattr(resources, name))):
            raise ClusterConfigError(
                f"{where}: {name}={getattr(resources, name)!r} is not a memory quantity like 512Mi or 4Gi"
            )
    if _cpu(resources.cpu_request) > _cpu(resources.cpu_limit):
        raise ClusterConfigError(
            f"{where}: cpu_request {resources.cpu_request} exceeds cpu_limit {resources.cpu_limit}"
        )
    if _bytes(resources.memory_request) > _bytes(resources.memory_limit):
        raise ClusterConfigError(
            f"{where}: memory_request {resources.memory_request} exceeds memory_limit {resources.memory_limit}"
        )
    return resources


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _bytes(quantity: str) -> float:
    number, unit = re.match(r"^([\d.]+)(\D*)$", quantity).groups()  # type: ignore[union-attr]
    return float(number) * MEMORY_UNITS[unit]


# Requests and limits per step come from the step table (gated_training.step_table); RESOURCES_FILE overrides them.
DEFAULT_RESOURCES: dict[str, StepResources] = {step_id: step.resources for step_id, step in STEP.items()}


@dataclass(frozen=True)
class ClusterSettings:
    gcs_key_secret: str | None = None
    gcs_key_secret_key: str = "key.json"
    mlflow_token_secret: str | None = None
    mlflow_token_secret_key: str = "token"
    mlflow_basic_auth_secret: str | None = None
    webhook_secret: str | None = None
    webhook_secret_key: str = "url"
    registry_key_secret: str | None = None
    registry_key_secret_key: str = "key"
    allow_pod_local_state: bool = False
    webhook_allowed_hosts: str = ""
    pushgateway_url: str = ""
    resources: Mapping[str, StepResources] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    spark_image: str = ""
    spark_staging_uri: str = ""
    spark_service_account: str = "default-editor"
    spark_deadline_minutes: int = 60
    spark_resources: SparkResources = field(default_factory=SparkResources)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ClusterSettings":
        def secret_name(variable: str) -> str | None:
            value = env.get(variable, "").strip()
            if value and not is_dns1123_subdomain(value):
                raise ClusterConfigError(
                    f"{variable}={value!r} is not a Kubernetes secret name (a DNS-1123 subdomain: lowercase letters, "
                    f"digits, '-', dot-separated labels that start and end with a letter or digit, at most 253 "
                    f"characters)"
                )
            return value or None

        def secret_key(variable: str, default: str) -> str:
            value = env.get(variable, "").strip() or default
            if not SECRET_KEY.match(value):
                raise ClusterConfigError(
                    f"{variable}={value!r} is not a valid secret key (letters, digits, '-', '_', '.')"
                )
            return value

        def flag(variable: str) -> bool:
            value = env.get(variable, "").strip().lower()
            if value not in ("", "0", "1", "false", "true"):
                raise ClusterConfigError(f"{variable}={env[variable]!r}: expected 1 or 0")
            return value in ("1", "true")

        def hosts(variable: str) -> str:
            names = [name.strip().lower() for name in env.get(variable, "").split(",") if name.strip()]
            bad = [name for name in names if not HOST_NAME.match(name)]
            if bad:
                raise ClusterConfigError(f"{variable}: {', '.join(map(repr, bad))} is not a host name or address")
            return ",".join(names)

        def http_url(variable: str) -> str:
            from urllib.parse import urlsplit

            value = env.get(variable, "").strip().rstrip("/")
            parts = urlsplit(value)
            if value and (
                parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value)
            ):
                raise ClusterConfigError(f"{variable}={value!r} is not an http(s) URL")
            return value

        def whole(variable: str, default: int, low: int, high: int) -> int:
            value = env.get(variable, "").strip()
            if not value:
                return default
            if not value.isdigit() or not low <= int(value) <= high:
                raise ClusterConfigError(f"{variable}={value!r}: expected a whole number from {low} to {high}")
            return int(value)

        spark_image = env.get("SPARK_IMAGE", "").strip()
        spark_staging = env.get("SPARK_STAGING_URI", "").strip().rstrip("/")
        spark_account = env.get("SPARK_SERVICE_ACCOUNT", "").strip() or "default-editor"
        if spark_image:
            if any(c.isspace() for c in spark_image):
                raise ClusterConfigError(f"SPARK_IMAGE={spark_image!r} is not an image reference")
            if not spark_staging.startswith("gs://") or len(spark_staging) <= len("gs://"):
                raise ClusterConfigError(
                    f"SPARK_STAGING_URI={spark_staging!r}: SPARK_IMAGE needs a gs:// prefix where the Spark steps "
                    "pass their requests, results and outputs"
                )
            if not is_dns1123_subdomain(spark_account) or "." in spark_account:
                raise ClusterConfigError(f"SPARK_SERVICE_ACCOUNT={spark_account!r} is not a service account name")
        try:
            spark_resources = SparkResources(
                driver_cores=whole("SPARK_DRIVER_CORES", 1, 1, 1024),
                driver_memory=env.get("SPARK_DRIVER_MEMORY", "").strip() or "2g",
                executor_instances=whole("SPARK_EXECUTORS", 2, 1, 1024),
                executor_cores=whole("SPARK_EXECUTOR_CORES", 2, 1, 1024),
                executor_memory=env.get("SPARK_EXECUTOR_MEMORY", "").strip() or "4g",
            )
        except ConfigError as exc:
            raise ClusterConfigError(f"SPARK_*: {exc}") from exc
        resources = dict(DEFAULT_RESOURCES)
        if env.get("RESOURCES_FILE"):
            resources.update(load_resources_file(Path(env["RESOURCES_FILE"])))
        return cls(
            gcs_key_secret=secret_name("GCS_KEY_SECRET"),
            gcs_key_secret_key=secret_key("GCS_KEY_SECRET_KEY", "key.json"),
            mlflow_token_secret=secret_name("MLFLOW_TOKEN_SECRET"),
            mlflow_token_secret_key=secret_key("MLFLOW_TOKEN_SECRET_KEY", "token"),
            mlflow_basic_auth_secret=secret_name("MLFLOW_BASIC_AUTH_SECRET"),
            webhook_secret=secret_name("WEBHOOK_SECRET"),
            webhook_secret_key=secret_key("WEBHOOK_SECRET_KEY", "url"),
            registry_key_secret=secret_name("REGISTRY_KEY_SECRET"),
            registry_key_secret_key=secret_key("REGISTRY_KEY_SECRET_KEY", "key"),
            allow_pod_local_state=flag("ALLOW_POD_LOCAL_STATE"),
            webhook_allowed_hosts=hosts("WEBHOOK_ALLOWED_HOSTS"),
            pushgateway_url=http_url("PUSHGATEWAY_URL"),
            resources=resources,
            spark_image=spark_image,
            spark_staging_uri=spark_staging,
            spark_service_account=spark_account,
            spark_deadline_minutes=whole("SPARK_DEADLINE_MINUTES", 60, 1, 7 * 24 * 60),
            spark_resources=spark_resources,
        )


def load_resources_file(path: Path) -> dict[str, StepResources]:
    """``step: {cpu_request: .., cpu_limit: .., memory_request: .., memory_limit: ..}``; fields may be partial."""
    try:
        document = read_yaml_mapping(path, "RESOURCES_FILE")
    except ConfigError as exc:
        raise ClusterConfigError(str(exc)) from exc
    allowed = {f.name for f in fields(StepResources)}
    overrides = {}
    for step, values in document.items():
        if step not in DEFAULT_RESOURCES:
            raise ClusterConfigError(
                f"RESOURCES_FILE {path}: unknown step {step!r}; steps are {', '.join(DEFAULT_RESOURCES)}"
            )
        if not isinstance(values, dict) or set(values) - allowed:
            raise ClusterConfigError(f"RESOURCES_FILE {path}: {step}: expected only {', '.join(sorted(allowed))}")
        merged = replace(DEFAULT_RESOURCES[step], **{k: str(v) for k, v in values.items()})
        overrides[step] = validated(merged, f"RESOURCES_FILE {path}: {step}")
    return overrides


def configure_step(task: PipelineTask, settings: ClusterSettings) -> PipelineTask:
    """Configure a task from its step's row in the step table (found by the task's component name): display
    name, resources, no caching, and what the step table says it touches: credentials
    for network steps, the signing key for registry steps, the webhook secret for every step
    (each posts its own failure), the GCS key for every step (the KFP launcher in every pod moves
    its artifacts under a gs:// pipeline root).

    No KFP retry policy: backends before 2.5 ignore it, 2.5-2.13 ignore it inside condition
    branches, and a retried step would post its failure once per attempt. Network retries happen
    inside the step instead, alike on every backend (google-cloud-storage's retry with a budget,
    MLflow's HTTP retries; ``storage.gcs_retry``, ``tracking.HTTP_BUDGET_DEFAULTS``).
    """
    step_id = task.component_spec.name  # components are named after their steps: validate_data → validate-data
    if step_id not in STEP:
        raise ClusterConfigError(
            f"component {step_id!r} is not a step of the step table (gated_training/step_table.py)"
        )
    step = STEP[step_id]
    resources = settings.resources[step_id]
    task.set_display_name(step.display_name)
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit)
    # Never from cache: a nightly run with unchanged parameters must validate, train, gate and
    # deploy against today's data and today's champion, not replay yesterday's outputs.
    task.set_caching_options(False)
    if settings.gcs_key_secret:
        kubernetes.use_secret_as_volume(task, secret_name=settings.gcs_key_secret, mount_path=GCS_KEY_MOUNT_PATH)
        task.set_env_variable("GOOGLE_APPLICATION_CREDENTIALS", f"{GCS_KEY_MOUNT_PATH}/{settings.gcs_key_secret_key}")
    if step.uses_mlflow and settings.mlflow_token_secret:
        kubernetes.use_secret_as_env(
            task,
            secret_name=settings.mlflow_token_secret,
            secret_key_to_env={settings.mlflow_token_secret_key: "MLFLOW_TRACKING_TOKEN"},
        )
    if step.uses_mlflow and settings.mlflow_basic_auth_secret:
        kubernetes.use_secret_as_env(
            task,
            secret_name=settings.mlflow_basic_auth_secret,
            secret_key_to_env={"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
        )
    if step.uses_registry and settings.registry_key_secret:
        kubernetes.use_secret_as_env(
            task,
            secret_name=settings.registry_key_secret,
            secret_key_to_env={settings.registry_key_secret_key: REGISTRY_KEY_ENV},
        )
    if settings.webhook_secret:
        kubernetes.use_secret_as_env(
            task, secret_name=settings.webhook_secret, secret_key_to_env={settings.webhook_secret_key: WEBHOOK_ENV}
        )
    if settings.allow_pod_local_state:
        task.set_env_variable(ALLOW_POD_LOCAL_ENV, "1")
    if settings.webhook_allowed_hosts:
        task.set_env_variable(ALLOWED_HOSTS_ENV, settings.webhook_allowed_hosts)
    if settings.pushgateway_url:
        task.set_env_variable(PUSHGATEWAY_ENV, settings.pushgateway_url)
    if step.runs_on_spark and settings.spark_image:
        configure_spark(task, step, settings)
    if step_id == "serve-model":  # the serving pods read the registry with the same secrets (names only)
        if settings.registry_key_secret:
            task.set_env_variable(
                SERVING_SECRET_ENVS[0], f"{settings.registry_key_secret}:{settings.registry_key_secret_key}"
            )
        if settings.gcs_key_secret:
            task.set_env_variable(SERVING_SECRET_ENVS[1], f"{settings.gcs_key_secret}:{settings.gcs_key_secret_key}")
    return task


def configure_spark(task: PipelineTask, step: Step, settings: ClusterSettings) -> None:
    """What a Spark step's component needs to submit its SparkApplication (``spark.remote``): the image, the
    staging prefix, the driver's service account, the deadline, the resources, and the secrets its driver
    needs, by name only (the GCS key; the registry key for a step that reads the registry; MLflow's token or
    basic auth for a step that tracks)."""
    secrets: dict[str, object] = {"gcp_key_secret": settings.gcs_key_secret or ""}
    env: dict[str, list[str]] = {}
    if step.uses_registry and settings.registry_key_secret:
        env[REGISTRY_KEY_ENV] = [settings.registry_key_secret, settings.registry_key_secret_key]
    if step.uses_mlflow and settings.mlflow_token_secret:
        env["MLFLOW_TRACKING_TOKEN"] = [settings.mlflow_token_secret, settings.mlflow_token_secret_key]
    if step.uses_mlflow and settings.mlflow_basic_auth_secret:
        env["MLFLOW_TRACKING_USERNAME"] = [settings.mlflow_basic_auth_secret, "username"]
        env["MLFLOW_TRACKING_PASSWORD"] = [settings.mlflow_basic_auth_secret, "password"]
    if env:
        secrets["env"] = env
    values = {
        spark_remote.IMAGE_ENV: settings.spark_image,
        spark_remote.STAGING_ENV: settings.spark_staging_uri,
        spark_remote.SERVICE_ACCOUNT_ENV: settings.spark_service_account,
        spark_remote.DEADLINE_ENV: str(settings.spark_deadline_minutes * 60),
        spark_remote.RESOURCES_ENV: spark_remote.resources_json(settings.spark_resources),
        spark_remote.SECRETS_ENV: json.dumps(secrets, sort_keys=True),
    }
    for name, value in values.items():
        task.set_env_variable(name, value)


def for_every_backend(platform_spec: dict) -> dict:
    """The Kubernetes platform spec in the form every supported backend's driver parses.

    Drivers up to 2.4.0 parse each executor's config strictly (``jsonpb.UnmarshalString``), and
    their protos lack two fields kfp-kubernetes 2.17 always writes: ``secretNameParameter`` (a
    constant copy of ``secretName``) and ``optional`` (false). Newer drivers read ``secretName``
    when ``secretNameParameter`` is absent and treat a missing ``optional`` as false
    (``backend/src/v2/driver/k8s.go``), so dropping the redundant copies changes nothing there.
    Anything else a 2.2 driver would not know is refused here rather than at run time.
    """
    executors = platform_spec.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    for name, config in executors.items():
        unknown = set(config) - {"secretAsEnv", "secretAsVolume"}
        if unknown:
            raise ClusterConfigError(
                f"{name}: {', '.join(sorted(unknown))} in the Kubernetes platform spec is not "
                "parsed by KFP backends before 2.4.1; the support floor is 2.2"
            )
        for entry in [*config.get("secretAsEnv", []), *config.get("secretAsVolume", [])]:
            parameter = entry.pop("secretNameParameter", None)
            if parameter not in (None, {"runtimeValue": {"constant": entry.get("secretName")}}):
                raise ClusterConfigError(f"{name}: a secret name from a pipeline parameter needs KFP backend 2.5+")
            if entry.pop("optional", False):
                raise ClusterConfigError(f"{name}: optional secrets need KFP backend 2.4.1+")
    return platform_spec
