"""Traffic follows the registry: the one rollout the serve-model step and the CLI share.

- :func:`roll_out`: apply the ServingRuntime, create the InferenceService or send the new version a
  canary, wait for Ready, and abort a canary that never becomes Ready (serve-model);
- :func:`status`, :func:`promote`, :func:`abort`, :func:`follow`: ``gated-training serving status |
  promote | rollback | sync``, and the InferenceService half of ``gated-training rollback``/``promote``.

The champion pointer is the source of truth; the InferenceService is brought to it. When a step cannot
be done (the API refuses, the new generation never becomes Ready), the message says which of the two is
behind and the command that repairs it. Every function is keyword-only and returns a typed result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gated_training.config import ServingSettings
from gated_training.errors import RegistryError, ServingError
from gated_training.registry import ModelRegistry, rollback
from gated_training.serving import layout
from gated_training.serving.client import KServeClient
from gated_training.serving.manifests import (
    ISVC_PLURAL,
    MODE_ANNOTATION,
    MODE_NAMES,
    REGISTRY_MODEL,
    SPEC_VERSION,
    Release,
    ServiceState,
    abort_patch,
    canary_patch,
    describe,
    inference_service,
    logger_spec,
    mode_of,
    prediction_log_sink,
    promote_patch,
    serving_runtime,
    sink_name,
    storage_uri,
)


@dataclass(frozen=True, kw_only=True)
class Rollout:
    """What :func:`roll_out` did."""

    runtime: str  # the ServingRuntime: created, updated, unchanged
    action: str  # created, canary, rolled_out, canary_aborted, not_ready
    stable_version: str | None  # the version serving the rest of the traffic during a canary
    canary_percent: int  # 0: all traffic to one version
    ready: bool
    why: str  # "ready", or what the status said when the wait ended
    url: str | None
    # The prediction log, when on: its prefix, the sink's name, and what was done to its Deployment and Service.
    prediction_log: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ServingStatus:
    """The champion against what the InferenceService serves."""

    champion: str | None
    service: ServiceState
    in_step: bool
    behind: str | None = None
    repair: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "service": self.service.to_json()}


def release_for(*, registry: ModelRegistry, version: str) -> Release:
    """A version as a predictor serves it, its signed manifest verified and its serving layout checked."""
    manifest, sha = registry.read_manifest(version)
    layout.check_servable(manifest, version)
    return Release(
        model_name=registry.model_name,
        version=version,
        manifest_sha256=sha,
        registry_uri=registry.uri,
        storage_uri=storage_uri(registry.uri, layout.storage_uri(registry, version)),
    )


def owned_service(*, client: KServeClient, registry: ModelRegistry, namespace: str) -> dict[str, Any] | None:
    """The model's InferenceService, or None; another model's service of the same name is an error."""
    name = layout.service_name(registry.model_name)
    obj = client.get(ISVC_PLURAL, namespace, name)
    if obj is None:
        return None
    owner = (obj["metadata"].get("annotations") or {}).get(REGISTRY_MODEL)
    if owner != registry.model_name:
        raise ServingError(
            f"InferenceService {namespace}/{name} serves {owner!r}, not {registry.model_name!r}; "
            "refusing to take it over (rename the model)"
        )
    return obj


def _existing_service(*, client: KServeClient, registry: ModelRegistry, namespace: str) -> dict[str, Any]:
    obj = owned_service(client=client, registry=registry, namespace=namespace)
    if obj is None:
        raise ServingError(
            f"no InferenceService {namespace}/{layout.service_name(registry.model_name)}: serve-model "
            "creates it on the next deploying run with serving_namespace set"
        )
    return obj


def roll_out(
    *,
    client: KServeClient,
    release: Release,
    settings: ServingSettings,
    image: str,
    registry_key_secret: tuple[str, str] | None = None,
    gcs_key_secret: tuple[str, str] | None = None,
    poll_seconds: float = 5.0,
    registry: ModelRegistry,
) -> Rollout:
    """Apply the runtime (and the prediction log's sink, before any traffic is logged to it), create or canary
    the service, wait; abort a canary that is not Ready."""
    namespace, mode, percent = settings.serving_namespace, settings.serving_mode, settings.canary_traffic_percent
    runtime = client.apply_runtime(
        serving_runtime(
            namespace=namespace, image=image, registry_key_secret=registry_key_secret, gcs_key_secret=gcs_key_secret
        )
    )
    prediction_log: dict[str, str] = {}
    if settings.prediction_log_uri:
        for obj in prediction_log_sink(
            namespace=namespace,
            model_name=release.model_name,
            log_uri=settings.prediction_log_uri,
            image=image,
            service_account=settings.serving_service_account,
            gcs_key_secret=gcs_key_secret,
        ):
            prediction_log[obj["kind"].lower()] = client.apply_object(obj)
        prediction_log.update(uri=settings.prediction_log_uri, sink=sink_name(release.model_name))
        release = replace(
            release,
            logger=logger_spec(model_name=release.model_name, namespace=namespace, headers=settings.metadata_headers),
        )
    name = layout.service_name(release.model_name)
    current = owned_service(client=client, registry=registry, namespace=namespace)
    stable: str | None = None
    if current is None:
        client.create(
            inference_service(
                namespace=namespace, release=release, mode=mode, service_account=settings.serving_service_account
            )
        )
        action, shown_percent = "created", 0
    else:
        annotations = current["metadata"].get("annotations") or {}
        if annotations.get(MODE_ANNOTATION) != mode_of(mode):
            raise ServingError(
                f"InferenceService {namespace}/{name} runs in "
                f"{MODE_NAMES.get(annotations.get(MODE_ANNOTATION, ''), '?')} mode, this run asks for "
                f"{MODE_NAMES[mode_of(mode)]}: an existing service keeps its mode"
            )
        client.patch(
            ISVC_PLURAL, namespace, name, canary_patch(current, release, percent, settings.serving_service_account)
        )
        if percent < 100:
            action, shown_percent, stable = "canary", percent, annotations.get(SPEC_VERSION)
        else:
            action, shown_percent = "rolled_out", 0
    ready, why = client.wait_ready(namespace, name, settings.serving_ready_timeout_seconds, poll=poll_seconds)
    if not ready:
        if action == "canary" and current is not None:  # a canary always patches a service that exists
            client.patch(ISVC_PLURAL, namespace, name, abort_patch(client.get(ISVC_PLURAL, namespace, name) or current))
            action = "canary_aborted"
        else:
            action = "not_ready"
        shown_percent = 0
    url = ((client.get(ISVC_PLURAL, namespace, name) or {}).get("status") or {}).get("url")
    return Rollout(
        runtime=runtime,
        action=action,
        stable_version=stable,
        canary_percent=shown_percent,
        ready=ready,
        why=why,
        url=url,
        prediction_log=prediction_log,
    )


def restore_champion(*, registry: ModelRegistry, version: str, why: str) -> str | None:
    """Put the version ``version`` replaced back as champion, if the pointer still names ``version``."""
    champion = registry.champion()
    if champion is None or champion.version != version or not champion.pointer.get("previous_version"):
        return None
    pointer = rollback(registry, None, f"the canary of {version} never became Ready: {why}")
    return str(pointer["version"])


def status(*, registry: ModelRegistry, client: KServeClient, namespace: str) -> ServingStatus:
    """The champion, what the InferenceService serves, and whether they agree (with the repair if not)."""
    champion = registry.champion()
    version = champion.version if champion else None
    service = describe(client.get(ISVC_PLURAL, namespace, layout.service_name(registry.model_name)))
    if not service.exists:
        return ServingStatus(
            champion=version,
            service=service,
            in_step=False,
            behind="the InferenceService",
            repair="run the pipeline with serving_namespace set, or `gated-training serving sync`",
        )
    canary_of_champion = service.canary_percent > 0 and service.version == version
    in_step = canary_of_champion or service.serving_version == version
    note = (
        (
            f"canary: {service.canary_percent} % to the champion {service.version}, the rest to "
            f"{service.stable_version}; `gated-training serving promote` or `serving rollback`"
        )
        if canary_of_champion
        else None
    )
    if in_step:
        return ServingStatus(champion=version, service=service, in_step=True, note=note)
    return ServingStatus(
        champion=version,
        service=service,
        in_step=False,
        behind="the InferenceService",
        note=note,
        repair=f"`gated-training serving sync --namespace {namespace}` serves the champion {version}",
    )


def _apply(
    client: KServeClient, namespace: str, name: str, patch: dict[str, Any], timeout: float, poll: float
) -> tuple[bool, str]:
    client.patch(ISVC_PLURAL, namespace, name, patch)
    return client.wait_ready(namespace, name, timeout, poll=poll)


def promote(
    *, registry: ModelRegistry, client: KServeClient, namespace: str, timeout: float = 600, poll: float = 5.0
) -> str:
    """All traffic to the canary, which must be the champion."""
    obj = _existing_service(client=client, registry=registry, namespace=namespace)
    service = describe(obj)
    champion = registry.champion()
    if service.canary_percent == 0:
        raise ServingError(f"{service.name}: no canary in progress (it serves {service.serving_version})")
    if champion is None or service.version != champion.version:
        raise ServingError(
            f"{service.name}: the canary is {service.version}, the registry champion is "
            f"{champion.version if champion else None}; promote the version in the registry first "
            "(`gated-training promote`), or `serving rollback`"
        )
    ready, why = _apply(client, namespace, service.name, promote_patch(obj), timeout, poll)
    if not ready:
        raise ServingError(
            f"{service.name}: all traffic moved to {service.version}, but it is not Ready: "
            f"{why}. The registry and the service agree; `gated-training serving rollback` goes back"
        )
    return f"{service.name}: all traffic to {service.version} (the champion)"


def abort(
    *,
    registry: ModelRegistry,
    client: KServeClient,
    namespace: str,
    reason: str,
    timeout: float = 600,
    poll: float = 5.0,
) -> str:
    """Back to the version before: a canary loses its traffic, else the previous champion serves all of it;
    the registry champion moves back with it."""
    obj = _existing_service(client=client, registry=registry, namespace=namespace)
    service = describe(obj)
    champion = registry.champion()
    if service.canary_percent > 0:
        client.patch(ISVC_PLURAL, namespace, service.name, abort_patch(obj))
        moved = ""
        if champion is not None and champion.version == service.version and service.stable_version:
            rollback(registry, service.stable_version, reason)
            moved = f"; registry champion back to {service.stable_version}"
        return f"{service.name}: canary {service.version} has no traffic, {service.stable_version} serves{moved}"
    pointer = rollback(registry, None, reason)
    followed = follow(registry=registry, client=client, namespace=namespace, timeout=timeout, poll=poll, moved=True)
    return f"registry champion back to {pointer['version']} (was {pointer['previous_version']}); {followed}"


def follow(
    *,
    registry: ModelRegistry,
    client: KServeClient,
    namespace: str,
    timeout: float = 600,
    poll: float = 5.0,
    moved: bool = False,
) -> str:
    """Make the InferenceService serve the registry champion with all traffic (after a registry
    rollback or promote, or to repair). Raises ServingError naming what is behind."""
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"{registry.pointer_uri}: no champion to serve")
    behind = (
        f"the registry champion is {champion.version}"
        + (" (just moved)" if moved else "")
        + "; the InferenceService is behind"
    )
    repair = f"repair: `gated-training serving sync --namespace {namespace}` once the cause is fixed"
    try:
        obj = _existing_service(client=client, registry=registry, namespace=namespace)
        service = describe(obj)
        if (
            service.serving_version == champion.version
            and service.canary_percent == 0
            and service.version == champion.version
        ):
            return f"{service.name}: already serves the champion {champion.version}"
        if service.stable_version == champion.version and service.canary_percent > 0:
            ready, why = _apply(client, namespace, service.name, abort_patch(obj), timeout, poll)
        else:
            release = release_for(registry=registry, version=champion.version)
            ready, why = _apply(client, namespace, service.name, canary_patch(obj, release, 100), timeout, poll)
    except ServingError as exc:
        raise ServingError(f"{exc}. {behind}: {repair}") from exc
    if not ready:
        raise ServingError(f"{service.name} does not become Ready on {champion.version}: {why}. {behind}: {repair}")
    return f"{service.name}: all traffic to {champion.version} (the champion)"
