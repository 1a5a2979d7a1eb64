"""KServe's objects for a model: the ServingRuntime of the serving image, the InferenceService, the
merge patches that move its traffic, and what an InferenceService says it serves (:class:`ServiceState`).

Plain dictionaries, validated against KServe's CRD schemas in tests/conformance/; ``client.py`` sends
them (merge patches with ``fieldValidation=Strict``, so an API server that does not know a field,
``spec.canary`` before KServe 0.20, refuses the request instead of silently dropping the canary).

Deployment modes (``serving.kserve.io/deploymentMode``; the legacy values ``Serverless`` and
``RawDeployment`` are the ones every KServe from 0.15 reads):

* **Knative** (Serverless): the new version replaces ``spec.predictor`` with
  ``canaryTrafficPercent``; Knative keeps the previous revision serving the rest.
  Promote removes the percentage (100 %); abort sets it to 0.
* **Standard** (RawDeployment, KServe >= 0.20): the new version is a ``spec.canary[]`` entry
  with ``trafficPercent`` beside the stable predictor. Promote makes the canary the predictor
  (keeping its name, so no restart); abort sets its traffic to 0.

The InferenceService records what it serves in annotations (``gated-training/…``): the registry
model, the version in its newest spec, the stable version and the canary's percentage, so
``gated-training serving status`` can compare it with the champion pointer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gated_training.errors import ServingError
from gated_training.serving import layout as serving

GROUP = "serving.kserve.io"
ISVC_VERSION = "v1beta1"
RUNTIME_API_VERSION = "v1alpha1"
ISVC_PLURAL = "inferenceservices"
RUNTIME_PLURAL = "servingruntimes"
RUNTIME_NAME = "gated-training"
MODEL_FORMAT = "gated-training-sklearn"
MODE_ANNOTATION = f"{GROUP}/deploymentMode"
# Knative mode is KServe's "Serverless", Standard its "RawDeployment": the legacy names are the
# ones KServe 0.15 knows, and 0.16+ still reads them.
MODES = {
    "Knative": "Serverless",
    "Serverless": "Serverless",
    "Standard": "RawDeployment",
    "RawDeployment": "RawDeployment",
}
MODE_NAMES = {"Serverless": "Knative", "RawDeployment": "Standard"}
ANNOTATION_PREFIX = "gated-training"
REGISTRY_MODEL = f"{ANNOTATION_PREFIX}/registry-model"
SPEC_VERSION = f"{ANNOTATION_PREFIX}/version"
STABLE_VERSION = f"{ANNOTATION_PREFIX}/stable-version"
CANARY_PERCENT = f"{ANNOTATION_PREFIX}/canary-percent"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8080, 9000, 8082
# KServe reads this on the InferenceService and puts Prometheus' scrape annotations on the predictor pods, for the
# port and path the ServingRuntime names (prometheus.kserve.io/port, /path).
SCRAPE_ANNOTATION = "serving.kserve.io/enable-prometheus-scraping"
# Serverless pods may expose one container port: KServe's queue-proxy extension (qpext) serves the model server's
# metrics merged with its own on this port when metric aggregation is on.
AGGREGATION_ANNOTATION = "serving.kserve.io/enable-metric-aggregation"
AGGREGATED_METRICS_PORT = 9088
SERVER_ROOT = "/opt/gated-training/mlserver-root"  # empty, baked into the serving image
DEFAULT_CANARY_PERCENT = 10
DEFAULT_READY_TIMEOUT_SECONDS = 600


def mode_of(mode: str) -> str:
    """The annotation value for a mode name (Knative/Serverless, Standard/RawDeployment)."""
    if mode not in MODES:
        raise ServingError(f"serving mode {mode!r}: use Knative (Serverless) or Standard (RawDeployment)")
    return MODES[mode]


def check_percent(percent: int) -> int:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ServingError(f"canary_traffic_percent {percent!r}: an integer from 1 to 100 (100: no canary)")
    return percent


# The image copies the package's mlserver-logging.json here (component_images/Dockerfile.serving).
MLSERVER_LOGGING_CONFIG = "/opt/gated-training/mlserver-logging.json"


# Every container we run: no privilege, no escalation, no root, no capability (the restricted Pod Security Standard).
CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}


def runtime_environment() -> list[dict[str, Any]]:
    """MLServer's settings, from the environment only: it starts on an empty folder baked into the
    image and never reads the model folder before our runtime has verified it (serving.py)."""
    return [
        {"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": serving.RUNTIME_CLASS},
        {"name": "MLSERVER_MODEL_NAME", "value": "{{.Name}}"},
        {"name": "MLSERVER_MODEL_URI", "value": "/mnt/models"},
        {"name": "MLSERVER_HTTP_PORT", "value": str(HTTP_PORT)},
        {"name": "MLSERVER_GRPC_PORT", "value": str(GRPC_PORT)},
        {"name": "MLSERVER_METRICS_PORT", "value": str(METRICS_PORT)},
        {"name": "MLSERVER_METRICS_DIR", "value": "/tmp/mlserver-metrics"},
        # One process: no inference pool (V1 requests need the server's own process, and one
        # process holds the model once); scale with replicas instead.
        {"name": "MLSERVER_PARALLEL_WORKERS", "value": "0"},
        {"name": "MLSERVER_LOAD_MODELS_AT_STARTUP", "value": "true"},
        # One JSON object per log line (gated_training.logs), MLServer's and uvicorn's records included: its
        # own structured format does not escape the message, so its config routes them through ours.
        {"name": "GATED_TRAINING_LOG_FORMAT", "value": "json"},
        {"name": "MLSERVER_LOGGING_SETTINGS", "value": MLSERVER_LOGGING_CONFIG},
    ]


def model_environment(
    *, registry_uri: str, model_name: str, version: str, manifest_sha256: str
) -> list[dict[str, str]]:
    """What the pod checks the model against (serving.load_served_model)."""
    return [
        {"name": serving.ENV_REGISTRY_URI, "value": registry_uri},
        {"name": serving.ENV_MODEL_NAME, "value": model_name},
        {"name": serving.ENV_VERSION, "value": version},
        {"name": serving.ENV_MANIFEST_SHA256, "value": manifest_sha256},
    ]


def serving_runtime(
    *,
    namespace: str,
    image: str,
    registry_key_secret: tuple[str, str] | None = None,
    gcs_key_secret: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The namespaced ServingRuntime for the serving image (V2 over HTTP and gRPC, Prometheus metrics).

    ``registry_key_secret`` (name, key) holds the registry's signing key, which the pod needs to
    verify the manifest's signature; ``gcs_key_secret`` a service-account key for reading the
    champion pointer and manifest (leave it out with Workload Identity)."""
    if not image:
        raise ServingError("the ServingRuntime needs the serving image (make serving-image PUSH=1)")
    env = runtime_environment()
    volumes, mounts = [], []
    if registry_key_secret:
        env.append(
            {
                "name": "GATED_TRAINING_REGISTRY_KEY",
                "valueFrom": {"secretKeyRef": {"name": registry_key_secret[0], "key": registry_key_secret[1]}},
            }
        )
    if gcs_key_secret:
        volumes.append(
            {
                "name": "gcs-key",
                "secret": {"secretName": gcs_key_secret[0], "items": [{"key": gcs_key_secret[1], "path": "key.json"}]},
            }
        )
        mounts.append({"name": "gcs-key", "mountPath": "/var/secrets/gcs", "readOnly": True})
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/gcs/key.json"})
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": image,
        "args": ["mlserver", "start", SERVER_ROOT],
        "env": env,
        "ports": [{"containerPort": HTTP_PORT, "name": "http1", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT}, "periodSeconds": 5},
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": HTTP_PORT},
            "periodSeconds": 10,
            "initialDelaySeconds": 30,
        },
        "securityContext": dict(CONTAINER_SECURITY),
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    }
    if mounts:
        container["volumeMounts"] = mounts
    spec: dict[str, Any] = {
        "annotations": {"prometheus.kserve.io/port": str(METRICS_PORT), "prometheus.kserve.io/path": "/metrics"},
        "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": True}],
        "protocolVersions": ["v2"],
        "containers": [container],
    }
    if volumes:
        spec["volumes"] = volumes
    return {
        "apiVersion": f"{GROUP}/{RUNTIME_API_VERSION}",
        "kind": "ServingRuntime",
        "metadata": {
            "name": RUNTIME_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "kfp-gated-training"},
        },
        "spec": spec,
    }


def storage_uri(registry_uri: str, version_serve_uri: str) -> str:
    """The version's ``serve/`` folder, as KServe's storage initializer reads it: only a GCS registry."""
    if not version_serve_uri.startswith("gs://"):
        raise ServingError(
            f"registry {registry_uri}: KServe's storage initializer cannot read a local folder; "
            "serving needs a gs:// registry (docs/kubeflow.md)"
        )
    return version_serve_uri


@dataclass(frozen=True, kw_only=True)
class Release:
    """One registry version as an InferenceService predictor serves it (and, when the prediction log is on,
    KServe's payload logger on its predictor: ``logger_spec``)."""

    model_name: str
    version: str
    manifest_sha256: str
    registry_uri: str
    storage_uri: str
    logger: dict[str, Any] | None = None

    def predictor(self, *, service_account: str = "", name: str = "") -> dict[str, Any]:
        predictor: dict[str, Any] = {
            "model": {
                "name": "kserve-container",  # required in a 0.20 canary's model; KServe's default elsewhere
                "modelFormat": {"name": MODEL_FORMAT, "version": "1"},
                "runtime": RUNTIME_NAME,
                "protocolVersion": "v2",
                "storageUri": self.storage_uri,
                "env": model_environment(
                    registry_uri=self.registry_uri,
                    model_name=self.model_name,
                    version=self.version,
                    manifest_sha256=self.manifest_sha256,
                ),
            },
        }
        if name:
            predictor["name"] = name
        if service_account:
            predictor["serviceAccountName"] = service_account
        if self.logger:
            predictor["logger"] = dict(self.logger)
        return predictor


def canary_name(version: str) -> str:
    """A Standard-mode canary's predictor name: short, DNS-safe, unique per version."""
    return f"v{version.rsplit('-', 1)[-1]}"


def inference_service(*, namespace: str, release: Release, mode: str, service_account: str = "") -> dict[str, Any]:
    """A new InferenceService serving ``release`` with all traffic (the first version needs no canary)."""
    return {
        "apiVersion": f"{GROUP}/{ISVC_VERSION}",
        "kind": "InferenceService",
        "metadata": {
            "name": serving.service_name(release.model_name),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "kfp-gated-training"},
            "annotations": {
                MODE_ANNOTATION: mode_of(mode),
                SCRAPE_ANNOTATION: "true",
                AGGREGATION_ANNOTATION: "true",
                REGISTRY_MODEL: release.model_name,
                SPEC_VERSION: release.version,
                STABLE_VERSION: release.version,
                CANARY_PERCENT: "0",
            },
        },
        # No predictor name: the field is new in KServe 0.20; a Standard-mode canary brings its own.
        "spec": {"predictor": release.predictor(service_account=service_account)},
    }


def canary_patch(current: dict[str, Any], release: Release, percent: int, service_account: str = "") -> dict[str, Any]:
    """The merge patch that sends ``percent`` of the traffic to ``release`` (100: all of it at once)."""
    check_percent(percent)
    annotations = current["metadata"].get("annotations") or {}
    stable = annotations.get(SPEC_VERSION, "")
    mode = annotations.get(MODE_ANNOTATION, "Serverless")
    meta = {
        "annotations": {
            SPEC_VERSION: release.version,
            STABLE_VERSION: stable if percent < 100 else release.version,
            CANARY_PERCENT: str(percent if percent < 100 else 0),
            SCRAPE_ANNOTATION: "true",  # services created before the metrics get them at their next rollout
            AGGREGATION_ANNOTATION: "true",
        }
    }
    if mode == "RawDeployment":
        name = canary_name(release.version)
        if percent == 100:  # a direct rollout: no canary, no predictor name (every KServe version)
            predictor = release.predictor(service_account=service_account)
            predictor["name"] = None
            return {"metadata": meta, "spec": {"predictor": predictor, "canary": None}}
        return {
            "metadata": meta,
            "spec": {
                "canary": [
                    {
                        "predictor": release.predictor(service_account=service_account, name=name),
                        "trafficPercent": percent,
                    }
                ]
            },
        }
    predictor = release.predictor(service_account=service_account)
    predictor["canaryTrafficPercent"] = percent if percent < 100 else None
    return {"metadata": meta, "spec": {"predictor": predictor}}


def promote_patch(current: dict[str, Any]) -> dict[str, Any]:
    """All traffic to the canary: it becomes the stable predictor."""
    annotations = current["metadata"].get("annotations") or {}
    meta = {"annotations": {STABLE_VERSION: annotations.get(SPEC_VERSION, ""), CANARY_PERCENT: "0"}}
    if annotations.get(MODE_ANNOTATION) == "RawDeployment":
        canaries = current["spec"].get("canary") or []
        if not canaries:
            raise ServingError(f"{current['metadata']['name']}: no canary to promote")
        return {"metadata": meta, "spec": {"predictor": canaries[0]["predictor"], "canary": None}}
    return {"metadata": meta, "spec": {"predictor": {"canaryTrafficPercent": None}}}


def abort_patch(current: dict[str, Any]) -> dict[str, Any]:
    """No traffic to the canary; the stable version keeps all of it."""
    annotations = current["metadata"].get("annotations") or {}
    meta = {"annotations": {CANARY_PERCENT: "0"}}
    if annotations.get(MODE_ANNOTATION) == "RawDeployment":
        canaries = current["spec"].get("canary") or []
        if not canaries:
            return {"metadata": meta}
        return {"metadata": meta, "spec": {"canary": [{**canaries[0], "trafficPercent": 0}]}}
    return {"metadata": meta, "spec": {"predictor": {"canaryTrafficPercent": 0}}}


# -- reading the status ---------------------------------------------------------------------------
def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


def ready_state(obj: dict[str, Any]) -> tuple[bool, str]:
    """(ready, why) for the InferenceService's newest generation, canary included."""
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    if status.get("observedGeneration") != generation:
        return (
            False,
            f"the controller has not observed generation {generation} yet (observed "
            f"{status.get('observedGeneration')})",
        )
    ready = condition(obj, "Ready")
    if ready.get("status") != "True":
        return (
            False,
            f"Ready is {ready.get('status', 'Unknown')}: {ready.get('reason', '')} {ready.get('message', '')}".strip(),
        )
    annotations = obj["metadata"].get("annotations") or {}
    if annotations.get(MODE_ANNOTATION) == "RawDeployment":
        for canary in obj["spec"].get("canary") or []:
            if not canary.get("trafficPercent"):
                continue  # no traffic (aborted, or a dark launch): nothing waits for it
            name = canary["predictor"].get("name")
            found = next((c for c in status.get("canaryStatuses") or [] if c.get("name") == name), None)
            if not (found and found.get("ready")):
                return False, f"canary {name} is not ready"
    else:
        predictor = (status.get("components") or {}).get("predictor") or {}
        if predictor.get("latestCreatedRevision") and predictor.get("latestReadyRevision") != predictor.get(
            "latestCreatedRevision"
        ):
            return False, (
                f"revision {predictor.get('latestCreatedRevision')} is not ready "
                f"(latest ready: {predictor.get('latestReadyRevision')})"
            )
    return True, "ready"


def _percent(text: Any) -> int:
    """The canary-percent annotation; anything but 0-100 (an annotation edited by hand) reads as 0."""
    return int(text) if isinstance(text, str) and text.isdigit() and int(text) <= 100 else 0


@dataclass(frozen=True, kw_only=True)
class ServiceState:
    """What an InferenceService serves, from its annotations and status (``exists`` False: there is none)."""

    exists: bool
    name: str = ""
    namespace: str | None = None
    mode: str = ""
    registry_model: str | None = None
    version: str | None = None  # the newest spec's version: the canary during a canary
    stable_version: str | None = None
    canary_percent: int = 0
    ready: bool = False
    why: str = ""
    url: str | None = None

    @property
    def serving_version(self) -> str | None:
        """The version that gets most of the traffic: the stable one during a canary or after an abort."""
        if not self.exists:
            return None
        return self.stable_version if self.canary_percent or self.version != self.stable_version else self.version

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def describe(obj: dict[str, Any] | None) -> ServiceState:
    """What an InferenceService serves, from its annotations and status."""
    if obj is None:
        return ServiceState(exists=False)
    annotations = obj["metadata"].get("annotations") or {}
    ready, why = ready_state(obj)
    return ServiceState(
        exists=True,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        mode=MODE_NAMES.get(annotations.get(MODE_ANNOTATION, ""), annotations.get(MODE_ANNOTATION, "")),
        registry_model=annotations.get(REGISTRY_MODEL),
        version=annotations.get(SPEC_VERSION),
        stable_version=annotations.get(STABLE_VERSION),
        canary_percent=_percent(annotations.get(CANARY_PERCENT)),
        ready=ready,
        why=why,
        url=(obj.get("status") or {}).get("url"),
    )


# -- the prediction log: KServe's payload logger and the sink it sends to ------------------------------

SINK_PORT = 8080
SINK_SHUTDOWN_SECONDS = 25  # the sink's SIGTERM flush; the pod's grace period is longer
SINK_BUFFERED_EVENTS = 50_000


def sink_name(model_name: str) -> str:
    """The sink's Deployment and Service: ``<InferenceService>-prediction-log`` (at most 60 characters)."""
    return f"{serving.service_name(model_name)}-prediction-log"


def sink_url(model_name: str, namespace: str) -> str:
    return f"http://{sink_name(model_name)}.{namespace}.svc.cluster.local/"


def logger_spec(*, model_name: str, namespace: str, headers: tuple[str, ...]) -> dict[str, Any]:
    """``spec.predictor.logger``: every request and response to the sink, with the named headers as metadata."""
    spec: dict[str, Any] = {"url": sink_url(model_name, namespace), "mode": "all"}
    if headers:
        spec["metadataHeaders"] = list(headers)
    return spec


def prediction_log_sink(
    *,
    namespace: str,
    model_name: str,
    log_uri: str,
    image: str,
    service_account: str = "",
    gcs_key_secret: tuple[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The sink's Deployment and Service (plain Kubernetes objects: the same in Knative and Standard mode).

    One replica: a request and its response then meet in one sink and are paired there; during a rolling
    update (or with more replicas) a pair split across two sinks is kept aside by both and paired by the
    monitoring run. The serving image runs it as a non-root user with a read-only root file system; the
    predictor's service account (``serving_service_account``) writes the prefix."""
    if not image:
        raise ServingError("the prediction-log sink needs the serving image (make serving-image PUSH=1)")
    name = sink_name(model_name)
    labels = {
        "app.kubernetes.io/name": "prediction-log-sink",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "kfp-gated-training",
    }
    selector = {"app.kubernetes.io/instance": name}
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if gcs_key_secret:
        volumes.append(
            {
                "name": "gcs-key",
                "secret": {"secretName": gcs_key_secret[0], "items": [{"key": gcs_key_secret[1], "path": "key.json"}]},
            }
        )
        mounts.append({"name": "gcs-key", "mountPath": "/var/secrets/gcs", "readOnly": True})
        env.append({"name": "GOOGLE_APPLICATION_CREDENTIALS", "value": "/var/secrets/gcs/key.json"})
    container: dict[str, Any] = {
        "name": "sink",
        "image": image,
        "args": [
            "python",
            "-m",
            "gated_training.cli",
            "sink",
            "--log-uri",
            log_uri,
            "--host",
            "0.0.0.0",
            "--port",
            str(SINK_PORT),
            "--max-buffered-events",
            str(SINK_BUFFERED_EVENTS),
            "--shutdown-seconds",
            str(SINK_SHUTDOWN_SECONDS),
        ],
        "env": env,
        "ports": [{"containerPort": SINK_PORT, "name": "http", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": SINK_PORT}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": SINK_PORT}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        # The sink writes only to the bucket: its root filesystem can be read-only too.
        "securityContext": {**CONTAINER_SECURITY, "readOnlyRootFilesystem": True},
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": SINK_SHUTDOWN_SECONDS + 10,
    }
    if service_account:
        pod["serviceAccountName"] = service_account
    if volumes:
        pod["volumes"] = volumes
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": SINK_PORT, "protocol": "TCP"}],
        },
    }
    return [deployment, service]


POD_MONITOR_API = "monitoring.coreos.com/v1"


def pod_monitor(*, namespace: str, model_name: str, mode: str, interval: str = "30s") -> dict[str, Any]:
    """A Prometheus Operator PodMonitor for the predictor pods of the model's InferenceService (champion and canary
    alike): the runtime's metrics port in RawDeployment mode, the queue-proxy's merged metrics in Serverless mode.
    ``gated-training serving pod-monitor`` prints it; apply it where the Prometheus Operator watches."""
    port = METRICS_PORT if mode_of(mode) == "RawDeployment" else AGGREGATED_METRICS_PORT
    name = serving.service_name(model_name)
    return {
        "apiVersion": POD_MONITOR_API,
        "kind": "PodMonitor",
        "metadata": {
            "name": f"{name}-predictor",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "kfp-gated-training"},
        },
        "spec": {
            "selector": {"matchLabels": {"serving.kserve.io/inferenceservice": name, "component": "predictor"}},
            "podMetricsEndpoints": [{"targetPort": port, "path": "/metrics", "interval": interval}],
            "namespaceSelector": {"matchNames": [namespace]},
        },
    }
