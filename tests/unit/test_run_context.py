"""Where a step runs: the run id from the artifact URI layout of every backend, and the refusal of
a registry or MLflow store that would vanish with the pod."""

from __future__ import annotations

import pytest

from gated_training import run_context
from gated_training.errors import ConfigError
from gated_training.run_context import check_outlives_pod, is_pod_local, mount_point, run_id_from_uri

RUN = "8f14e45f-ceea-467f-a0e6-4c2b8e1f0a11"


@pytest.mark.parametrize(
    ("uri", "task", "expected"),
    [
        # backend 2.2-2.4: <root>/<pipeline>/<run id>/<task>/<output>
        (f"gs://bucket/kfp/gated-training/{RUN}/validate-data/run_summary", "validate-data", RUN),
        # backend 2.5+: <root>/<pipeline>/<run id>/<task>/<salt>/<output>
        (f"gs://bucket/kfp/gated-training/{RUN}/deploy-model/5e1a2b/run_summary", "deploy-model", RUN),
        # a pipeline root that itself contains the task's name
        (
            f"minio://mlpipeline/v2/artifacts/check-drift/gated-training/{RUN}/check-drift/ab12/run_summary",
            "check-drift",
            RUN,
        ),
        # kfp.local: <root>/<pipeline>-<timestamp>/<task>/<output>
        (
            "/w/kfp-runs/gated-training-2026-11-23-17-44-09-352000/train-model/training_report",
            "train-model",
            "gated-training-2026-11-23-17-44-09-352000",
        ),
        ("", "train-model", ""),
        ("/tmp/out/training_report", "train-model", ""),
    ],
)
def test_the_run_id_is_the_folder_above_the_tasks_own(uri, task, expected):
    assert run_id_from_uri(uri, task) == expected


MOUNTINFO = """\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/var/lib/containers
23 22 0:22 / /proc rw,nosuid - proc proc rw
30 22 8:1 /var/lib/kubelet/pods/x/volumes/pvc /mnt/registry rw,relatime - ext4 /dev/sda1 rw
31 22 8:1 /var/lib/kubelet/pods/x/volumes/secret /var/secrets/gcs ro - tmpfs tmpfs ro
32 22 8:1 /x /mnt/with\\040space rw - ext4 /dev/sda1 rw
"""


def test_mount_points_and_what_lives_on_the_containers_own_file_system():
    assert mount_point(__import__("pathlib").Path("/mnt/registry/models/m"), MOUNTINFO) == "/mnt/registry"
    assert mount_point(__import__("pathlib").Path("/mnt/registryX"), MOUNTINFO) == "/"
    assert is_pod_local("/home/gated/.gated-training/registry", MOUNTINFO)
    assert not is_pod_local("/mnt/registry/r", MOUNTINFO)
    assert not is_pod_local("/mnt/with space/r", MOUNTINFO)


@pytest.fixture
def on_a_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv(run_context.ON_CLUSTER_ENV, "gated-training-x7k2p-system-container-impl-123")
    monkeypatch.delenv(run_context.ALLOW_POD_LOCAL_ENV, raising=False)
    monkeypatch.setattr(run_context, "MOUNTINFO", tmp_path / "mountinfo")
    (tmp_path / "mountinfo").write_text(MOUNTINFO)


def test_on_a_cluster_a_registry_or_mlflow_inside_the_pod_is_refused(on_a_cluster):
    with pytest.raises(
        ConfigError,
        match=r"registry_uri='.gated-training/registry' is inside this pod's own file "
        r"system and would vanish with the pod.*ALLOW_POD_LOCAL_STATE",
    ):
        check_outlives_pod(registry_uri=".gated-training/registry")
    with pytest.raises(ConfigError, match=r"MLflow tracking URI 'sqlite:///.gated-training/mlflow.db'"):
        check_outlives_pod(mlflow_tracking_uri="sqlite:///.gated-training/mlflow.db")
    with pytest.raises(ConfigError, match="MLflow tracking URI 'file:///tmp/mlruns'"):
        check_outlives_pod(mlflow_tracking_uri="file:///tmp/mlruns")
    # What outlives the pod passes: gs://, a mounted volume, an MLflow server.
    check_outlives_pod(registry_uri="gs://bucket/registry", mlflow_tracking_uri="https://mlflow.example.com")
    check_outlives_pod(registry_uri="/mnt/registry/r", mlflow_tracking_uri="sqlite:////mnt/registry/mlflow.db")


def test_allowing_pod_local_state_or_running_off_the_cluster_refuses_nothing(on_a_cluster, monkeypatch):
    monkeypatch.setenv(run_context.ALLOW_POD_LOCAL_ENV, "1")
    check_outlives_pod(registry_uri=".gated-training/registry", mlflow_tracking_uri="sqlite:///x.db")
    monkeypatch.delenv(run_context.ALLOW_POD_LOCAL_ENV)
    monkeypatch.delenv(run_context.ON_CLUSTER_ENV)
    check_outlives_pod(registry_uri=".gated-training/registry", mlflow_tracking_uri="sqlite:///x.db")


def test_the_registry_and_mlflow_entry_points_apply_the_check(on_a_cluster, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from gated_training.registry.store import ModelRegistry
    from gated_training.tracking.runs import resolve_tracking_uri

    with pytest.raises(ConfigError, match="registry_uri="):
        ModelRegistry(".gated-training/registry", "tabular-classifier")
    with pytest.raises(ConfigError, match="MLflow tracking URI"):
        resolve_tracking_uri("")


def test_the_image_and_the_local_runner_run_steps_with_the_allocator_settings(monkeypatch):
    """run_context.MEMORY_ENV lowers every step's peak RSS (docs/scaling.md): the image sets each one, and the
    local runner gives them to its step processes, keeping what the caller set and restoring the rest."""
    import os
    import subprocess
    import sys

    from gated_training.kubeflow.local_run import allocator_environment
    from gated_training.run_context import MEMORY_ENV
    from tests.conftest import REPO_ROOT

    dockerfile = (REPO_ROOT / "component_images" / "Dockerfile").read_text()
    for name, value in MEMORY_ENV.items():
        assert f"    {name}={value} \\" in dockerfile, name
    first, second = MEMORY_ENV
    monkeypatch.delenv(first, raising=False)
    monkeypatch.setenv(second, "mine")
    with allocator_environment():
        seen = subprocess.run(
            [sys.executable, "-c", f"import os; print(os.environ['{first}'], os.environ['{second}'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    assert seen == [MEMORY_ENV[first], "mine"]
    assert first not in os.environ and os.environ[second] == "mine"
