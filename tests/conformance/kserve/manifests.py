"""Every manifest gated_training.serving.kserve renders, and every object its patches produce, per mode."""

from __future__ import annotations

from typing import Any

from gated_training.serving import manifests as kserve
from tests.kube_schema import merge_patch

REGISTRY = "gs://models/registry"


def release(version: str, logged: bool = False) -> kserve.Release:
    return kserve.Release(
        model_name="Credit_Model.v2",
        version=version,
        manifest_sha256="a" * 64,
        registry_uri=REGISTRY,
        storage_uri=f"{REGISTRY}/Credit_Model.v2/versions/{version}/serve",
        logger=kserve.logger_spec(model_name="Credit_Model.v2", namespace="team-a", headers=("X-Request-Id",))
        if logged
        else None,
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


def services(mode: str, logged: bool = False) -> list[dict[str, Any]]:
    """Create, canary (10 %), promote; canary again and abort; a direct (100 %) rollout (with the payload logger
    on when ``logged``)."""
    created = kserve.inference_service(
        namespace="team-a", release=release(FIRST, logged), mode=mode, service_account="serving-sa"
    )
    canary = merge_patch(created, kserve.canary_patch(created, release(SECOND, logged), 10, "serving-sa"))
    promoted = merge_patch(canary, kserve.promote_patch(canary))
    aborted = merge_patch(canary, kserve.abort_patch(canary))
    direct = merge_patch(created, kserve.canary_patch(created, release(SECOND, logged), 100))
    return [created, canary, promoted, aborted, direct]


def sinks() -> list[dict[str, Any]]:
    """The prediction-log sink's Deployment and Service, with and without a GCS key secret."""
    image = "registry.example.com/kfp-gated-training-serving:0.2.0"
    common = {
        "namespace": "team-a",
        "model_name": "Credit_Model.v2",
        "log_uri": "gs://logs/predictions",
        "image": image,
    }
    return [
        *kserve.prediction_log_sink(**common),
        *kserve.prediction_log_sink(**common, service_account="serving-sa", gcs_key_secret=("gcs-key", "key.json")),
    ]


def all_manifests() -> list[dict[str, Any]]:
    return [
        *runtimes(),
        *services("Knative"),
        *services("Standard"),
        *services("Knative", logged=True),
        *services("Standard", logged=True),
    ]
