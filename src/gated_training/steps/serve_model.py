"""serve-model: the new champion serves through KServe, first as a canary; a canary that never
becomes Ready gets no traffic and the registry champion goes back to the version it replaced.

Runs after deploy-model only when a serving namespace is set and the deploy promoted. It trusts
the deployment record only for the version id: the pointer must still name that version, and the
version's signed manifest must list the serving layout (gated_training.serving), before anything
is sent to Kubernetes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gated_training import kserve, serving
from gated_training.data import json_safe
from gated_training.config import ServingSettings
from gated_training.errors import ConfigError, GatedTrainingError, RegistryError
from gated_training.registry import ModelRegistry


@dataclass(frozen=True, kw_only=True)
class ServingOutcome:
    served: bool  # the InferenceService serves the version (as a canary, or all traffic) and is Ready
    namespace: str
    service: str
    mode: str  # Knative or Standard
    version: str
    stable_version: str | None  # the version serving the rest of the traffic during a canary
    canary_percent: int  # 0: all traffic to one version
    action: str  # created, canary, rolled_out, unchanged, canary_aborted, not_ready
    runtime: str  # the ServingRuntime: created, updated, unchanged
    why: str  # "ready", or what the status said when the wait ended
    champion_restored_to: str | None  # set when a failed canary put the previous champion back
    url: str | None

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))  # type: ignore[return-value]


def secret_reference(text: str) -> tuple[str, str] | None:
    """``name:key`` (set at compile time by pipelines/cluster.py) as a (secret, key) pair; empty: none."""
    if not text:
        return None
    name, _, key = text.partition(":")
    return name, key or "key"


def serve_model(
    *,
    deployment_path: str,
    registry_uri: str,
    model_name: str,
    namespace: str,
    mode: str = "Knative",
    canary_traffic_percent: int = kserve.DEFAULT_CANARY_PERCENT,
    ready_timeout_seconds: int = kserve.DEFAULT_READY_TIMEOUT_SECONDS,
    service_account: str = "",
    registry_key_secret: tuple[str, str] | None = None,
    gcs_key_secret: tuple[str, str] | None = None,
    kube_api_url: str = "",
    serving_out: str,
    poll_seconds: float = 5.0,
) -> ServingOutcome:
    """Serve the champion deploy-model just promoted.

    Args:
        deployment_path: deploy-model's record (the version it promoted).
        registry_uri, model_name: the registry (gs://: KServe's storage initializer reads it).
        namespace: where the ServingRuntime and the InferenceService live.
        mode: Knative (Serverless) or Standard (RawDeployment, canaries need KServe >= 0.20).
        canary_traffic_percent: the new version's share while it proves itself (100: no canary).
        ready_timeout_seconds: how long the new generation has to become Ready.
        service_account: the predictor's service account (reads the registry), or the namespace default.
        registry_key_secret, gcs_key_secret: (secret name, key) for the serving pods.
        kube_api_url: an explicit API server (``kubectl proxy``, tests); else in-cluster, else kubeconfig.
        serving_out: the serving record JSON.
        poll_seconds: how often the InferenceService's status is read while waiting.

    Returns:
        The outcome; ``served`` is False when the new generation never became Ready (its canary then
        has no traffic and the champion is back on the version it replaced). Kubernetes errors raise
        :class:`kserve.ServingError` after the champion went back the same way.
    """
    settings = ServingSettings(serving_namespace=namespace, serving_mode=mode, canary_traffic_percent=canary_traffic_percent,
                               serving_ready_timeout_seconds=ready_timeout_seconds, serving_service_account=service_account)
    if not settings.serving_namespace:
        raise ConfigError("parameter serving_namespace: serve-model needs the namespace to serve in")
    mode_annotation = kserve.mode_of(mode)
    deployment = json.loads(Path(deployment_path).read_text())
    if not deployment.get("promoted"):
        raise GatedTrainingError("serve-model runs only after a promoting deploy; this one did not promote")
    registry = ModelRegistry(registry_uri, model_name)
    version = deployment["version"]
    champion = registry.champion()
    if champion is None or champion.version != version:
        raise RegistryError(f"the champion is now {champion.version if champion else None}, not {version} which this run "
                            "deployed: another run moved it; not serving a version the registry no longer names")
    manifest, manifest_sha = registry.read_manifest(version)
    if manifest_sha != champion.manifest_sha256:
        raise RegistryError(f"model version {version}: manifest SHA-256 {manifest_sha} is not the pointer's "
                            f"{champion.manifest_sha256}; refusing to serve")
    serving.check_servable(manifest, version)
    image = (manifest.get("serving") or {}).get("image") or ""
    if not image:
        raise RegistryError(f"model version {version} records no serving image: build both images (`make image "
                            "serving-image`; the component image names the serving image) and deploy again")
    release = kserve.Release(model_name=model_name, version=version, manifest_sha256=manifest_sha,
                             registry_uri=registry_uri,
                             storage_uri=kserve.storage_uri(registry_uri, serving.storage_uri(registry, version)))
    try:
        client = kserve.KServeClient(kube_api_url)
        runtime, action, stable, percent, ready, why = _roll_out(client, release, namespace, mode, canary_traffic_percent,
                                                                 ready_timeout_seconds, service_account, image,
                                                                 registry_key_secret, gcs_key_secret, poll_seconds)
        url = ((client.get(kserve.ISVC_PLURAL, namespace, serving.service_name(model_name)) or {}).get("status") or {}).get("url")
    except kserve.ServingError as exc:
        restored = _restore_champion(registry, version, str(exc))
        raise kserve.ServingError(f"{exc}. The registry champion was {'restored to ' + restored if restored else 'left at ' + version} "
                                  "so that it names what serves; see `gated-training serving status`") from exc
    restored = None if ready else _restore_champion(registry, version, why)
    outcome = ServingOutcome(served=ready, namespace=namespace, service=serving.service_name(model_name),
                             mode=kserve.MODE_NAMES[mode_annotation], version=version, stable_version=stable,
                             canary_percent=percent, action=action, runtime=runtime, why=why,
                             champion_restored_to=restored, url=url)
    Path(serving_out).write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome


def _roll_out(client: kserve.KServeClient, release: kserve.Release, namespace: str, mode: str, percent: int,
              timeout: int, service_account: str, image: str, registry_key_secret: tuple[str, str] | None,
              gcs_key_secret: tuple[str, str] | None, poll_seconds: float) -> tuple[str, str, str | None, int, bool, str]:
    """Apply the runtime, create or canary the service, wait; abort a canary that is not Ready.
    Returns (runtime action, action, stable version, canary percent, ready, why)."""
    runtime = client.apply_runtime(kserve.serving_runtime(namespace=namespace, image=image,
                                                          registry_key_secret=registry_key_secret,
                                                          gcs_key_secret=gcs_key_secret))
    name = serving.service_name(release.model_name)
    current = client.get(kserve.ISVC_PLURAL, namespace, name)
    stable: str | None = None
    if current is None:
        client.create(kserve.inference_service(namespace=namespace, release=release, mode=mode,
                                               service_account=service_account))
        action, shown_percent = "created", 0
    else:
        annotations = current["metadata"].get("annotations") or {}
        if annotations.get(kserve.REGISTRY_MODEL) != release.model_name:
            raise kserve.ServingError(f"InferenceService {namespace}/{name} serves {annotations.get(kserve.REGISTRY_MODEL)!r}, "
                                      f"not {release.model_name!r}; refusing to take it over (rename the model)")
        if annotations.get(kserve.MODE_ANNOTATION) != kserve.mode_of(mode):
            raise kserve.ServingError(
                f"InferenceService {namespace}/{name} runs in "
                f"{kserve.MODE_NAMES.get(annotations.get(kserve.MODE_ANNOTATION, ''), '?')} mode, this run asks for "
                f"{kserve.MODE_NAMES[kserve.mode_of(mode)]}: an existing service keeps its mode")
        client.patch(kserve.ISVC_PLURAL, namespace, name, kserve.canary_patch(current, release, percent, service_account))
        if percent < 100:
            action, shown_percent, stable = "canary", percent, annotations.get(kserve.SPEC_VERSION)
        else:
            action, shown_percent = "rolled_out", 0
    ready, why = client.wait_ready(namespace, name, timeout, poll=poll_seconds)
    if not ready:
        if action == "canary":
            client.patch(kserve.ISVC_PLURAL, namespace, name,
                         kserve.abort_patch(client.get(kserve.ISVC_PLURAL, namespace, name) or current))
            action = "canary_aborted"
        else:
            action = "not_ready"
        shown_percent = 0
    return runtime, action, stable, shown_percent, ready, why


def _restore_champion(registry: ModelRegistry, version: str, why: str) -> str | None:
    """Put the version ``version`` replaced back as champion, if the pointer still names ``version``."""
    from gated_training.registry_ops import rollback

    champion = registry.champion()
    if champion is None or champion.version != version or not champion.pointer.get("previous_version"):
        return None
    pointer = rollback(registry, None, f"the canary of {version} never became Ready: {why}")
    return pointer["version"]
