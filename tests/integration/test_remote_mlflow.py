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


def test_the_mlflow_champion_served_by_mlflow_answers_as_the_registry_champion(tmp_path, monkeypatch):
    """`mlflow models serve` on the champion alias, on loopback: rows with missing values, a one-row
    request and the probabilities match ModelRegistry.load_verified on the same rows; the logged
    examples are strict JSON."""
    import subprocess
    import sys
    import time
    import urllib.request

    import numpy as np
    import pandas as pd

    from gated_training.registry import ModelRegistry
    from tests.mlflow_server import free_port

    with mlflow_server(tmp_path) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        workdir = tmp_path / "work"
        registry_path = tmp_path / "registry"
        assert main(["run", "--data", str(SAMPLE_DATA), "--target", "risk", "--workdir", str(workdir),
                     "--registry", str(registry_path), "--set", "n_estimators=10", *TEST_THRESHOLDS]) == 0
        model_dir = mlflow.artifacts.download_artifacts("models:/tabular-classifier@champion", dst_path=str(tmp_path / "m"))
        for example in ("input_example.json", "serving_input_example.json"):
            text = (tmp_path / "m" / example).read_text() if (tmp_path / "m" / example).exists() else \
                next((p.read_text() for p in (tmp_path / "m").rglob(example)), None)
            assert text is not None, example
            json.loads(text, parse_constant=lambda constant: pytest.fail(f"{example} holds a bare {constant}"))

        port = free_port()
        log = open(tmp_path / "serve.log", "w")
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_dir, "--env-manager",
                                   "local", "-h", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                        break
                except OSError:
                    assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                    time.sleep(0.5)

            rows = pd.read_csv(SAMPLE_DATA).drop(columns="risk").head(12).copy()
            rows.loc[0, "age"] = np.nan  # a missing number: the signature's double, not an HTTP 400
            rows.loc[1, "credit_amount"] = np.nan

            def served(frame: pd.DataFrame) -> pd.DataFrame:
                body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    return pd.DataFrame(json.loads(response.read())["predictions"])

            registry = ModelRegistry(str(registry_path), "tabular-classifier")
            champion = registry.champion()
            model, _ = registry.load_verified(champion.version)
            for frame in (rows, rows.head(1), rows.iloc[[1]]):
                answer = served(frame)
                assert list(answer["label"]) == [getattr(label, "item", lambda: label)() for label in model.predict(frame)]
                columns = [f"probability.{c}" for c in model.classes_]
                assert answer[columns].to_numpy() == pytest.approx(model.predict_proba(frame), abs=1e-9)
        finally:
            server.terminate()
            server.wait(timeout=30)
