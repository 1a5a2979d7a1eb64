"""serve-model: the new champion serves through KServe, first as a canary; a canary that never
becomes Ready gets no traffic and the registry champion goes back to the version it replaced.

Runs after deploy-model only when a serving namespace is set and the deploy promoted. It trusts
the deployment record only for the version id: the pointer must still name that version, and the
version's signed manifest must list the serving layout (gated_training.serving.layout), before
anything is sent to Kubernetes. The rollout itself is ``serving.rollout.roll_out``, which the CLI
shares.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gated_training.config import ServingSettings
from gated_training.data import json_safe
from gated_training.errors import ConfigError, GatedTrainingError, RegistryError, ServingError
from gated_training.registry import ModelRegistry
from gated_training.serving import MODE_NAMES, KServeClient, layout, mode_of, rollout


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
    prediction_log: dict[str, str] = field(default_factory=dict)  # uri, sink, deployment/service: what was done

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


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
    settings: ServingSettings,
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
        settings: the serving settings (namespace, mode, canary share, timeout, predictor account).
        registry_key_secret, gcs_key_secret: (secret name, key) for the serving pods.
        kube_api_url: an explicit API server (``kubectl proxy``, tests); else in-cluster, else kubeconfig.
        serving_out: the serving record JSON.
        poll_seconds: how often the InferenceService's status is read while waiting.

    Returns:
        The outcome; ``served`` is False when the new generation never became Ready (its canary then
        has no traffic and the champion is back on the version it replaced). Kubernetes errors raise
        :class:`ServingError` after the champion went back the same way.
    """
    if not settings.serving_namespace:
        raise ConfigError("parameter serving_namespace: serve-model needs the namespace to serve in")
    mode_annotation = mode_of(settings.serving_mode)
    deployment = json.loads(Path(deployment_path).read_text())
    if not deployment.get("promoted"):
        raise GatedTrainingError("serve-model runs only after a promoting deploy; this one did not promote")
    registry = ModelRegistry(registry_uri, model_name)
    version = deployment["version"]
    champion = registry.champion()
    if champion is None or champion.version != version:
        raise RegistryError(
            f"the champion is now {champion.version if champion else None}, not {version} which this run "
            "deployed: another run moved it; not serving a version the registry no longer names"
        )
    manifest, manifest_sha = registry.read_manifest(version)
    if manifest_sha != champion.manifest_sha256:
        raise RegistryError(
            f"model version {version}: manifest SHA-256 {manifest_sha} is not the pointer's "
            f"{champion.manifest_sha256}; refusing to serve"
        )
    layout.check_servable(manifest, version)
    image = (manifest.get("serving") or {}).get("image") or ""
    if not image:
        raise RegistryError(
            f"model version {version} records no serving image: build both images (`make image "
            "serving-image`; the component image names the serving image) and deploy again"
        )
    release = rollout.release_for(registry=registry, version=version)
    try:
        client = KServeClient(kube_api_url)
        done = rollout.roll_out(
            client=client,
            registry=registry,
            release=release,
            settings=settings,
            image=image,
            registry_key_secret=registry_key_secret,
            gcs_key_secret=gcs_key_secret,
            poll_seconds=poll_seconds,
        )
    except ServingError as exc:
        restored = rollout.restore_champion(registry=registry, version=version, why=str(exc))
        raise ServingError(
            f"{exc}. The registry champion was {'restored to ' + restored if restored else 'left at ' + version} "
            "so that it names what serves; see `gated-training serving status`"
        ) from exc
    restored = None if done.ready else rollout.restore_champion(registry=registry, version=version, why=done.why)
    outcome = ServingOutcome(
        served=done.ready,
        namespace=settings.serving_namespace,
        service=layout.service_name(model_name),
        mode=MODE_NAMES[mode_annotation],
        version=version,
        stable_version=done.stable_version,
        canary_percent=done.canary_percent,
        action=done.action,
        runtime=done.runtime,
        why=done.why,
        champion_restored_to=restored,
        url=done.url,
        prediction_log=done.prediction_log,
    )
    Path(serving_out).write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome
