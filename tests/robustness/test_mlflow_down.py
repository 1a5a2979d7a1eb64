"""MLflow unreachable: training fails naming the tracking URI and nothing is deployed; MLflow
lost between training and deploy leaves the deploy standing with the mirror pending, and
`gated-training sync-mlflow` repairs it once the server is back."""

import json

import mlflow
import pytest

from gated_training.cli import main
from gated_training.registry.store import ModelRegistry
from gated_training.steps.deploy_model import deploy_model
from tests.builders import train_candidate
from tests.conftest import SAMPLE_DATA, synthetic_frame
from tests.integration.conftest import TEST_THRESHOLDS
from tests.mlflow_server import free_port, mlflow_server
from tests.robustness.conftest import deploy_arguments, gate_for

pytestmark = pytest.mark.slow


def test_training_with_mlflow_down_fails_naming_the_uri_and_deploys_nothing(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    workdir = tmp_path / "work"
    code = main(
        [
            "run",
            "--data",
            str(SAMPLE_DATA),
            "--target",
            "risk",
            "--workdir",
            str(workdir),
            "--registry",
            str(tmp_path / "registry"),
            "--tracking-uri",
            dead,
            *TEST_THRESHOLDS,
        ]
    )
    summary = json.loads((workdir / "summary.json").read_text())
    assert code == 1 and summary["outcome"] == "failed"
    # train-model failed (no outputs) and posted its own failure (no webhook configured here).
    assert summary["tasks_ran"] == ["check-drift", "engineer-features", "validate-data"]
    assert summary["notification"] == "not configured"
    assert summary["reasons"][0].startswith(f"train-model failed: TrackingError: MLflow at {dead}:")
    assert ModelRegistry(str(tmp_path / "registry"), "tabular-classifier").versions() == []


def test_mlflow_lost_before_deploy_leaves_the_mirror_pending_until_resynced(tmp_path, capsys):
    registry_uri = str(tmp_path / "registry")
    server_root = tmp_path / "server"
    server_root.mkdir()
    with mlflow_server(server_root) as url:
        candidate = train_candidate(tmp_path / "c", synthetic_frame(300, seed=5), tracking_uri=url)
        gate = gate_for(candidate, registry_uri, tmp_path / "gate.json")
    # The server is gone now: the deploy still stands, the registry pointer being the source of truth.
    outcome = deploy_model(**deploy_arguments(candidate, gate, registry_uri, tmp_path / "d.json", "run-1"))
    assert outcome.promoted
    assert outcome.mlflow_mirror.startswith(f"pending: MLflow at {url}: registering the champion failed")
    assert ModelRegistry(registry_uri, "m").champion().version == outcome.version

    with mlflow_server(server_root) as restarted:  # same store, new port
        assert main(["sync-mlflow", "--registry", registry_uri, "--model-name", "m", "--tracking-uri", restarted]) == 0
        assert "synced: MLflow m version 1 is the champion" in capsys.readouterr().out
        aliased = mlflow.MlflowClient(tracking_uri=restarted, registry_uri=restarted).get_model_version_by_alias(
            "m", "champion"
        )
        assert aliased.tags["registry_version"] == outcome.version
        assert main(["sync-mlflow", "--registry", registry_uri, "--model-name", "m", "--tracking-uri", restarted]) == 0
        assert "already in sync" in capsys.readouterr().out
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["sync-mlflow", "--registry", registry_uri, "--model-name", "m", "--tracking-uri", dead]) == 1
    assert f"MLflow at {dead}" in capsys.readouterr().err
