"""Every manifest gated_training.serving.kserve renders, and every object its patches produce, per mode."""

from __future__ import annotations

from typing import Any

from gated_training.serving import manifests as kserve
from tests.kube_schema import merge_patch

REGISTRY = "gs://models/registry"


def release(version: str) -> kserve.Release:
    return kserve.Release(
        model_name="Credit_Model.v2",
        version=version,
        manifest_sha256="a" * 64,
        registry_uri=REGISTRY,
        storage_uri=f"{REGISTRY}/Credit_Model.v2/versions/{version}/serve",
    )


FIRST, SECOND = "20261123T100000000000Z-1a2b3c4d", "20261124T100000000000Z-5e6f7a8b"


def runtimes() -> list[dict[str, Any]]:
    return [
        kserve.serving_runtime(namespace="team-a", image="registry.example.com/kfp-gated-training-serving:0.1.0"),
        kserve.serving_runtime(
            namespace="team-a",
            image="registry.example.com/kfp-gated-training-serving@sha256:" + "0" * 64,
            registry_key_secret=("registry-key", "key"),
            gcs_key_secret=("gcs-key", "key.json"),
        ),
    ]


def services(mode: str) -> list[dict[str, Any]]:
    """Create, canary (10 %), promote; canary again and abort; a direct (100 %) rollout."""
    created = kserve.inference_service(
        namespace="team-a", release=release(FIRST), mode=mode, service_account="serving-sa"
    )
    canary = merge_patch(created, kserve.canary_patch(created, release(SECOND), 10, "serving-sa"))
    promoted = merge_patch(canary, kserve.promote_patch(canary))
    aborted = merge_patch(canary, kserve.abort_patch(canary))
    direct = merge_patch(created, kserve.canary_patch(created, release(SECOND), 100))
    return [created, canary, promoted, aborted, direct]


def all_manifests() -> list[dict[str, Any]]:
    return [*runtimes(), *services("Knative"), *services("Standard")]
