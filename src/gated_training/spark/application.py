"""A Spark step on the cluster: a ``SparkApplication`` for Kubeflow's Spark Operator (v1beta2), created through
the Kubernetes API from inside the step's component (KFP cannot create a custom resource itself), watched
with a deadline, and deleted.

The manifest (:func:`manifest`) names the run's service account, the Spark image, the driver's and executors'
resources, the secrets the step needs (a GCP key file mounted as the operator's ``GCPServiceAccount``
secret type, environment variables from secrets), and the request the driver reads: the step and its
arguments, written to the bucket beside the step's outputs. :func:`run_application` creates it, logs each
change of the application's state, and ends when the operator reports a terminal state: ``COMPLETED``
returns; ``FAILED`` or ``SUBMISSION_FAILED`` raise with the operator's message (the driver's own error,
which it writes to the bucket, is read by the caller); the deadline deletes the application and raises. The
application is deleted in every case (``timeToLiveSeconds`` covers a step killed before it could).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gated_training.errors import ConfigError, GatedTrainingError
from gated_training.kubernetes_api import api_client, status_message
from gated_training.kubernetes_names import MAX_LABEL, is_dns1123_label

GROUP = "sparkoperator.k8s.io"
VERSION = "v1beta2"
PLURAL = "sparkapplications"
KIND = "SparkApplication"
SPARK_VERSION = "4.0.0"
DRIVER_FILE = "local:///opt/gated-training/spark_driver.py"
TERMINAL_SUCCESS = ("COMPLETED",)
TERMINAL_FAILURE = ("FAILED", "SUBMISSION_FAILED")
TIME_TO_LIVE_SECONDS = 3600
MEMORY = re.compile(r"^[0-9]+[kmgt]$")
DRIVER_ENV = "GATED_TRAINING_SPARK_DRIVER"  # set in the application's pods: the step runs there, never submits again
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


class SparkApplicationError(GatedTrainingError):
    """The SparkApplication failed, was evicted, or did not finish in time."""


@dataclass(frozen=True, kw_only=True)
class SparkResources:
    driver_cores: int = 1
    driver_memory: str = "2g"
    executor_instances: int = 2
    executor_cores: int = 2
    executor_memory: str = "4g"

    def __post_init__(self) -> None:
        for name in ("driver_cores", "executor_instances", "executor_cores"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1024:
                raise ConfigError(f"Spark resources: {name}={value!r} must be a whole number from 1 to 1024")
        for name in ("driver_memory", "executor_memory"):
            value = getattr(self, name)
            if not isinstance(value, str) or not MEMORY.match(value):
                raise ConfigError(f"Spark resources: {name}={value!r} must be a JVM size such as 2g or 512m")


@dataclass(frozen=True, kw_only=True)
class SparkJob:
    step: str  # the step id the driver runs (validate-data, check-drift)
    request_uri: str  # where the driver reads its arguments (gs://...)
    namespace: str
    image: str
    service_account: str
    run_id: str
    resources: SparkResources = field(default_factory=SparkResources)
    gcp_key_secret: str = ""  # a Secret holding key.json, mounted as GOOGLE_APPLICATION_CREDENTIALS
    env_secrets: dict[str, tuple[str, str]] = field(default_factory=dict)  # variable -> (secret, key)
    env: dict[str, str] = field(default_factory=dict)  # plain settings the step's pod forwards (never a secret)
    spark_conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("namespace", "service_account"):
            if not is_dns1123_label(getattr(self, name)):
                raise ConfigError(f"SparkApplication: {name}={getattr(self, name)!r} is not a Kubernetes name")
        if not self.image or any(c.isspace() for c in self.image):
            raise ConfigError(f"SparkApplication: image={self.image!r} is not an image reference")
        bad = [name for name in [*self.env, *self.env_secrets] if not ENV_NAME.match(name) or name == DRIVER_ENV]
        if bad:
            raise ConfigError(
                f"SparkApplication: {', '.join(map(repr, bad))} is not an environment variable it may set"
            )


def application_name(step: str, run_id: str, suffix: str = "") -> str:
    """``gt-<step>-<run>-<random>``: a DNS-1123 label short enough for the driver pod's ``-driver`` suffix and
    the operator's service names."""
    suffix = suffix or uuid.uuid4().hex[:6]
    run = re.sub(r"[^a-z0-9]+", "-", run_id.lower()).strip("-")[:16].strip("-") or "run"
    name = f"gt-{step}-{run}-{suffix}"[: MAX_LABEL - len("-driver")].strip("-")
    if not is_dns1123_label(name):
        raise ConfigError(f"SparkApplication: cannot name the application for step {step!r}: {name!r}")
    return name


def manifest(job: SparkJob, name: str) -> dict[str, Any]:
    """The SparkApplication (v1beta2) for ``job``: a Python application that runs the step's driver once."""
    labels = {"app.kubernetes.io/managed-by": "gated-training", "gated-training/step": job.step}
    env = [
        {"name": "GATED_TRAINING_LOG_FORMAT", "value": "json"},
        {"name": DRIVER_ENV, "value": "1"},
        *({"name": name, "value": value} for name, value in sorted(job.env.items())),
    ]
    env_from_secrets = [
        {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for variable, (secret, key) in sorted(job.env_secrets.items())
    ]
    secrets = (
        [{"name": job.gcp_key_secret, "path": "/var/secrets/google", "secretType": "GCPServiceAccount"}]
        if job.gcp_key_secret
        else []
    )

    def pod(cores: int, memory: str, role: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "cores": cores,
            "memory": memory,
            "labels": {**labels, "gated-training/role": role},
            "env": env + env_from_secrets,
            "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
        }
        if secrets:
            spec["secrets"] = secrets
        return spec

    driver = pod(job.resources.driver_cores, job.resources.driver_memory, "driver")
    driver["serviceAccount"] = job.service_account
    executor = pod(job.resources.executor_cores, job.resources.executor_memory, "executor")
    executor["instances"] = job.resources.executor_instances
    from gated_training.spark.session import SESSION_CONFIG

    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": job.namespace, "labels": labels},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": job.image,
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": DRIVER_FILE,
            "arguments": [job.step, job.request_uri],
            "sparkVersion": SPARK_VERSION,
            "sparkConf": {**SESSION_CONFIG, **job.spark_conf},
            "restartPolicy": {"type": "Never"},
            "timeToLiveSeconds": TIME_TO_LIVE_SECONDS,
            "driver": driver,
            "executor": executor,
        },
    }


class SparkOperatorClient:
    """Create, read and delete SparkApplications through the ``kubernetes`` client kfp installs."""

    def __init__(self, api_url: str = "") -> None:
        from kubernetes import client

        self.api = client.CustomObjectsApi(api_client(api_url, SparkApplicationError))

    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as TransportError

        try:
            return function(*args, **kwargs)
        except ApiException as exc:
            message = status_message(exc)
            if exc.status == 403:
                message += (
                    " (the run's service account needs create, get, delete on sparkapplications in "
                    "sparkoperator.k8s.io; docs/scaling.md lists the Role)"
                )
            if exc.status == 404 and what.startswith("create"):
                message += " (is the Spark Operator installed? its CRD serves sparkoperator.k8s.io/v1beta2)"
            raise SparkApplicationError(f"{what}: HTTP {exc.status} {exc.reason}: {message}") from exc
        except (OSError, TransportError) as exc:
            raise SparkApplicationError(f"{what}: the Kubernetes API is unreachable: {exc}") from exc

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        return self._call(
            f"create sparkapplication/{name} in {namespace}",
            self.api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            body,
            field_validation="Strict",
        )

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call(
            f"get sparkapplication/{name} in {namespace}",
            self.api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
        )

    def delete(self, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status != 404:  # already gone (its time to live, or an operator) is fine
                raise SparkApplicationError(
                    f"delete sparkapplication/{name} in {namespace}: HTTP {exc.status}"
                ) from exc


def application_state(body: dict[str, Any]) -> tuple[str, str]:
    """(state, the operator's error message) of a SparkApplication; a new one has no status yet."""
    state = (body.get("status") or {}).get("applicationState") or {}
    return str(state.get("state") or "NEW"), str(state.get("errorMessage") or "")


def run_application(
    client: SparkOperatorClient,
    job: SparkJob,
    *,
    deadline_seconds: float,
    poll_seconds: float = 5.0,
    log: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    name: str = "",
) -> dict[str, Any]:
    """Create the job's SparkApplication, wait for a terminal state, delete it; return its last status."""
    name = name or application_name(job.step, job.run_id)
    body = manifest(job, name)
    client.create(body)
    log(
        f"SparkApplication {job.namespace}/{name} created: image {job.image}, "
        f"{job.resources.executor_instances} executor(s) × {job.resources.executor_cores} core(s)"
    )
    started = clock()
    last = ""
    try:
        while True:
            current = client.get(job.namespace, name)
            state, message = application_state(current)
            driver = ((current.get("status") or {}).get("driverInfo") or {}).get("podName", "")
            if state != last:
                log(
                    f"SparkApplication {name}: {state}"
                    + (f" (driver pod {driver})" if driver else "")
                    + (f": {message}" if message else "")
                )
                last = state
            if state in TERMINAL_SUCCESS:
                return current.get("status") or {}
            if state in TERMINAL_FAILURE:
                raise SparkApplicationError(
                    f"SparkApplication {job.namespace}/{name} for {job.step} ended {state}: "
                    f"{message or 'no reason given'}"
                )
            if clock() - started > deadline_seconds:
                raise SparkApplicationError(
                    f"SparkApplication {job.namespace}/{name} for {job.step} did not finish within "
                    f"{deadline_seconds:.0f} s (last state {state}); deleted"
                )
            sleep(poll_seconds)
    finally:
        client.delete(job.namespace, name)
        log(f"SparkApplication {name} deleted")
