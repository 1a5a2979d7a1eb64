"""Traffic follows the registry: ``gated-training serving status | promote | rollback | sync``, and
the InferenceService half of ``gated-training rollback`` and ``promote``.

The champion pointer is the source of truth; the InferenceService is brought to it. When a step
cannot be done (the API refuses, the new generation never becomes Ready), the message says which
of the two is behind and the command that repairs it.
"""

from __future__ import annotations

from typing import Any

from gated_training import kserve, serving
from gated_training.errors import RegistryError
from gated_training.registry import ModelRegistry
from gated_training.registry_ops import rollback


def release_for(registry: ModelRegistry, version: str) -> kserve.Release:
    """A version as a predictor serves it, its signed manifest verified and its serving layout checked."""
    manifest, sha = registry.read_manifest(version)
    serving.check_servable(manifest, version)
    return kserve.Release(model_name=registry.model_name, version=version, manifest_sha256=sha, registry_uri=registry.uri,
                          storage_uri=kserve.storage_uri(registry.uri, serving.storage_uri(registry, version)))


def _service(client: kserve.KServeClient, registry: ModelRegistry, namespace: str) -> dict[str, Any]:
    name = serving.service_name(registry.model_name)
    obj = client.get(kserve.ISVC_PLURAL, namespace, name)
    if obj is None:
        raise kserve.ServingError(f"no InferenceService {namespace}/{name}: serve-model creates it on the next deploying run "
                                  "with serving_namespace set")
    owner = (obj["metadata"].get("annotations") or {}).get(kserve.REGISTRY_MODEL)
    if owner != registry.model_name:
        raise kserve.ServingError(f"InferenceService {namespace}/{name} serves {owner!r}, not {registry.model_name!r}")
    return obj


def serving_version(described: dict[str, Any]) -> str | None:
    """The version that gets most of the traffic: the stable one during a canary or after an abort."""
    if not described.get("exists"):
        return None
    return described["stable_version"] if described["canary_percent"] or described["version"] != described["stable_version"] \
        else described["version"]


def status(registry: ModelRegistry, client: kserve.KServeClient, namespace: str) -> dict[str, Any]:
    """The champion, what the InferenceService serves, and whether they agree (with the repair if not)."""
    champion = registry.champion()
    obj = client.get(kserve.ISVC_PLURAL, namespace, serving.service_name(registry.model_name))
    described = kserve.describe(obj)
    result: dict[str, Any] = {"champion": champion.version if champion else None, "service": described}
    if not described["exists"]:
        result.update(in_step=False, behind="the InferenceService",
                      repair="run the pipeline with serving_namespace set, or `gated-training serving sync`")
        return result
    canary_of_champion = described["canary_percent"] > 0 and described["version"] == result["champion"]
    in_step = canary_of_champion or serving_version(described) == result["champion"]
    result["in_step"] = in_step
    if canary_of_champion:
        result["note"] = (f"canary: {described['canary_percent']} % to the champion {described['version']}, the rest to "
                          f"{described['stable_version']}; `gated-training serving promote` or `serving rollback`")
    if not in_step:
        result.update(behind="the InferenceService",
                      repair=f"`gated-training serving sync --namespace {namespace}` serves the champion {result['champion']}")
    return result


def _apply(client: kserve.KServeClient, namespace: str, name: str, patch: dict[str, Any], timeout: float,
           poll: float) -> tuple[bool, str]:
    client.patch(kserve.ISVC_PLURAL, namespace, name, patch)
    return client.wait_ready(namespace, name, timeout, poll=poll)


def promote_traffic(registry: ModelRegistry, client: kserve.KServeClient, namespace: str, *, timeout: float = 600,
                    poll: float = 5.0) -> str:
    """All traffic to the canary, which must be the champion."""
    obj = _service(client, registry, namespace)
    described = kserve.describe(obj)
    champion = registry.champion()
    if described["canary_percent"] == 0:
        raise kserve.ServingError(f"{described['name']}: no canary in progress (it serves {serving_version(described)})")
    if champion is None or described["version"] != champion.version:
        raise kserve.ServingError(f"{described['name']}: the canary is {described['version']}, the registry champion is "
                                  f"{champion.version if champion else None}; promote the version in the registry first "
                                  "(`gated-training promote`), or `serving rollback`")
    ready, why = _apply(client, namespace, described["name"], kserve.promote_patch(obj), timeout, poll)
    if not ready:
        raise kserve.ServingError(f"{described['name']}: all traffic moved to {described['version']}, but it is not Ready: "
                                  f"{why}. The registry and the service agree; `gated-training serving rollback` goes back")
    return f"{described['name']}: all traffic to {described['version']} (the champion)"


def rollback_traffic(registry: ModelRegistry, client: kserve.KServeClient, namespace: str, reason: str, *,
                     timeout: float = 600, poll: float = 5.0) -> str:
    """Back to the version before: a canary loses its traffic, else the previous champion serves all of it;
    the registry champion moves back with it."""
    obj = _service(client, registry, namespace)
    described = kserve.describe(obj)
    champion = registry.champion()
    if described["canary_percent"] > 0:
        client.patch(kserve.ISVC_PLURAL, namespace, described["name"], kserve.abort_patch(obj))
        moved = ""
        if champion is not None and champion.version == described["version"] and described["stable_version"]:
            rollback(registry, described["stable_version"], reason)
            moved = f"; registry champion back to {described['stable_version']}"
        return f"{described['name']}: canary {described['version']} has no traffic, {described['stable_version']} serves{moved}"
    pointer = rollback(registry, None, reason)
    followed = follow_registry(registry, client, namespace, timeout=timeout, poll=poll, moved=True)
    return f"registry champion back to {pointer['version']} (was {pointer['previous_version']}); {followed}"


def follow_registry(registry: ModelRegistry, client: kserve.KServeClient, namespace: str, *, timeout: float = 600,
                    poll: float = 5.0, moved: bool = False) -> str:
    """Make the InferenceService serve the registry champion with all traffic (after a registry
    rollback or promote, or to repair). Raises ServingError naming what is behind."""
    champion = registry.champion()
    if champion is None:
        raise RegistryError(f"{registry.pointer_uri}: no champion to serve")
    behind = (f"the registry champion is {champion.version}" + (" (just moved)" if moved else "")
              + "; the InferenceService is behind")
    repair = f"repair: `gated-training serving sync --namespace {namespace}` once the cause is fixed"
    try:
        obj = _service(client, registry, namespace)
        described = kserve.describe(obj)
        if serving_version(described) == champion.version and described["canary_percent"] == 0 \
                and described["version"] == champion.version:
            return f"{described['name']}: already serves the champion {champion.version}"
        if described["stable_version"] == champion.version and described["canary_percent"] > 0:
            ready, why = _apply(client, namespace, described["name"], kserve.abort_patch(obj), timeout, poll)
        else:
            ready, why = _apply(client, namespace, described["name"],
                                kserve.canary_patch(obj, release_for(registry, champion.version), 100), timeout, poll)
    except kserve.ServingError as exc:
        raise kserve.ServingError(f"{exc}. {behind}: {repair}") from exc
    if not ready:
        raise kserve.ServingError(f"{described['name']} does not become Ready on {champion.version}: {why}. {behind}: {repair}")
    return f"{described['name']}: all traffic to {champion.version} (the champion)"
