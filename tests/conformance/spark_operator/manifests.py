"""Every SparkApplication shape the product renders (gated_training.spark.application.manifest): with and
without secrets, for each Spark step, small and large resources."""

from __future__ import annotations

from typing import Any

from gated_training.spark.application import SparkJob, SparkResources, manifest


def all_manifests() -> list[dict[str, Any]]:
    found = []
    for step in ("validate-data", "check-drift"):
        for secrets in (False, True):
            job = SparkJob(
                step=step,
                request_uri="gs://bucket/runs/run-1/spark/request.json",
                namespace="kubeflow-user",
                image="registry.example/kfp-gated-training-spark:0.3.0",
                service_account="default-editor",
                run_id="run-1",
                resources=SparkResources(executor_instances=8, executor_memory="16g") if secrets else SparkResources(),
                gcp_key_secret="gcs-key" if secrets else "",
                env_secrets={"GATED_TRAINING_REGISTRY_KEY": ("registry-key", "key")} if secrets else {},
            )
            found.append(manifest(job, f"gt-{step}-run-1-abcdef"))
    return found
