"""A Spark step's pod as ``pipelines/cluster.py`` compiles it with SPARK_IMAGE, pointed at the loopback
Kubernetes API (tests/kube_api_server.py), whose stand-in operator "runs the driver pod" with whatever callable
a test gives it: the image's real driver on local[2] (tests/spark/), or a forger (tests/robustness/)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gated_training.spark import remote
from tests.kube_api_server import KubeApiServer


@contextmanager
def spark_cluster(monkeypatch, staging: Path) -> Iterator[KubeApiServer]:
    with KubeApiServer() as api:
        for name, value in {
            remote.IMAGE_ENV: "registry.example/kfp-gated-training-spark:test",
            remote.STAGING_ENV: str(staging),
            remote.SERVICE_ACCOUNT_ENV: "default-editor",
            remote.NAMESPACE_ENV: "kubeflow-user",
            remote.KUBE_API_ENV: api.url,
            remote.POLL_ENV: "0.05",
        }.items():
            monkeypatch.setenv(name, value)
        yield api
