"""The compiled pipeline with a serving namespace, through kfp.local: deploy-model hands over to
serve-model, which talks to a loopback Kubernetes API (tests/kube_api_server.py) and reads a
gs:// registry on fake-gcs-server. What a cluster adds (pods, Knative revisions, the storage
initializer) only a cluster can prove: see docs/serving.md."""

from __future__ import annotations

import json

import pytest

from gated_training.cli import main
from gated_training.registry.store import ModelRegistry
from gated_training.step_table import tasks_ending_at
from tests.conftest import SAMPLE_DATA
from tests.gcs_server import fake_gcs
from tests.integration.conftest import DEPLOYED_TASKS, RERUN_SAME_DATA, TEST_THRESHOLDS
from tests.kube_api_server import KubeApiServer

pytestmark = pytest.mark.integration
BUCKET = "serving-registry"
REGISTRY = f"gs://{BUCKET}/registry"
SERVED_TASKS = tasks_ending_at("serve-model")
IMAGE = "registry.example.com/kfp-gated-training-serving:0.1.0"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with fake_gcs(tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log", BUCKET), KubeApiServer() as api:
        yield api


def run(tmp_path, name, *args):
    workdir = tmp_path / name
    code = main(
        [
            "run",
            "--data",
            str(SAMPLE_DATA),
            "--target",
            "risk",
            "--registry",
            REGISTRY,
            "--workdir",
            str(workdir),
            "--set",
            "n_estimators=20",
            *TEST_THRESHOLDS,
            *RERUN_SAME_DATA,
            *args,
        ]
    )
    return code, json.loads((workdir / "summary.json").read_text())


def test_serving_follows_the_deploy_then_a_failed_canary_restores_the_champion(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("GATED_TRAINING_KUBE_API", cluster.url)  # kfp.local's step processes inherit it
    monkeypatch.setenv("GATED_TRAINING_SERVING_IMAGE", IMAGE)  # what the component image names
    registry = ModelRegistry(REGISTRY, "tabular-classifier")

    # Without serving_namespace every other integration run deploys with DEPLOYED_TASKS and no serve-model.
    assert SERVED_TASKS == sorted([*DEPLOYED_TASKS, "serve-model"])
    code, summary = run(tmp_path, "served", "--set", "serving_namespace=team-a")
    assert code == 0 and summary["tasks_ran"] == SERVED_TASKS, summary["reasons"]
    assert (
        summary["outcome"] == "deployed" and summary["serving"]["served"] and summary["serving"]["action"] == "created"
    )
    first = summary["deployed"]["version"]
    service = cluster.objects[("inferenceservices", "team-a", "tabular-classifier")]
    model = service["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"{REGISTRY}/tabular-classifier/versions/{first}/serve"
    assert {e["name"]: e["value"] for e in model["env"]}[
        "GATED_TRAINING_MANIFEST_SHA256"
    ] == registry.champion().manifest_sha256
    runtime = cluster.objects[("servingruntimes", "team-a", "gated-training")]
    assert runtime["spec"]["containers"][0]["image"] == IMAGE
    assert "serve-model/summary" in summary["reports"]

    cluster.fail_new_versions = True
    code, summary = run(
        tmp_path,
        "canary-fails",
        "--set",
        "serving_namespace=team-a",
        "--set",
        "serving_ready_timeout_seconds=1",
        "--set",
        "canary_traffic_percent=20",
    )
    assert code == 0 and summary["tasks_ran"] == SERVED_TASKS
    assert summary["outcome"] == "blocked" and summary["blocked_by"] == "serving"
    assert summary["serving"]["action"] == "canary_aborted" and summary["serving"]["champion_restored_to"] == first
    assert f"champion restored to {first}" in summary["reasons"][0]
    assert registry.champion().version == first and registry.champion().pointer["action"] == "rollback"
    assert service is not cluster.objects[("inferenceservices", "team-a", "tabular-classifier")]
    stored = cluster.objects[("inferenceservices", "team-a", "tabular-classifier")]
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 0
