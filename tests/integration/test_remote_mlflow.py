"""A remote MLflow server, reached through MLFLOW_TRACKING_URI: tracking, registry and the champion alias."""

import json

import mlflow
import pytest

from gated_training.cli import main
from tests.conftest import SAMPLE_DATA
from tests.integration.conftest import DEPLOYED_TASKS, TEST_THRESHOLDS
from tests.mlflow_server import mlflow_server

pytestmark = pytest.mark.integration


def test_pipeline_tracks_and_registers_on_a_remote_server(tmp_path, monkeypatch):
    with mlflow_server(tmp_path) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        workdir = tmp_path / "work"
        code = main(["run", "--data", str(SAMPLE_DATA), "--target", "risk", "--workdir", str(workdir),
                     "--set", "n_estimators=10", *TEST_THRESHOLDS])
        summary = json.loads((workdir / "summary.json").read_text())
        assert code == 0 and summary["tasks_ran"] == DEPLOYED_TASKS and summary["outcome"] == "deployed"
        assert summary["parameters"]["mlflow_tracking_uri"] == url
        assert summary["deployed"]["mlflow_mirror"] == "synced"
        client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
        run = client.get_run(summary["mlflow_run_id"])
        assert run.data.tags["data_sha256"] == summary["data_sha256"]
        assert run.data.metrics["test_accuracy"] == pytest.approx(summary["candidate_metrics"]["accuracy"])
        champion = client.get_model_version_by_alias("tabular-classifier", "champion")
        assert champion.tags["registry_version"] == summary["deployed"]["version"]
        assert (tmp_path / "artifacts").is_dir()  # the model went through the server's artifact proxy
